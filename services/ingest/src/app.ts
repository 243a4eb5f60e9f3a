/**
 * The ingest HTTP surface: lib/http-server.ts's error handler, health and metrics, and the route
 * files: routes/webhooks.ts (HubSpot deliveries) and routes/oauth.ts (the public app's install).
 * The admin API and the operator's console are the console service's.
 */
import Koa from 'koa';
import Router from '@koa/router';
import type { Registry } from 'prom-client';
import { createAdminAuth } from '../../../lib/admin-auth.ts';
import type { WebhookRoute } from '../../../lib/contracts/index.ts';
import { bodyDeadline, healthRoutes, jsonErrors } from '../../../lib/http-server.ts';
import type { Logger } from '../../../lib/log.ts';
import type { Org, OrgDirectory, OrgRepository } from '../../../lib/orgs/index.ts';
import type { SignedToken } from '../../../lib/signed-tokens.ts';
import type { IngestConfig } from './config.ts';
import type { IngestMetrics } from './metrics.ts';
import type { HubSpotOAuth, OAuthStateLedger } from './oauth.ts';
import { oauthRoutes } from './routes/oauth.ts';
import { webhookRoutes } from './routes/webhooks.ts';
import type { AcceptedEvent } from './webhook-batch.ts';

export { MAX_BODY_BYTES } from '../../../lib/http-server.ts';

/** Writes a batch's events durably (acks from all in-sync replicas); rejects when Kafka cannot. */
export type RawEventSink = (
  route: WebhookRoute,
  events: readonly { event: AcceptedEvent; org: Org | undefined }[],
) => Promise<void>;

export type IngestDeps = {
  readonly config: IngestConfig;
  readonly orgs: OrgDirectory;
  readonly sink: RawEventSink;
  /** The OAuth callback stores the tokens through it. */
  readonly orgRepository: Pick<OrgRepository, 'storeOAuthTokens'>;
  readonly isReady: () => boolean;
  readonly metrics: IngestMetrics;
  readonly registry: Registry;
  readonly logger: Logger;
  readonly now: () => number;
  /** Present when HUBSPOT_CLIENT_ID and HUBSPOT_CLIENT_SECRET are set. */
  readonly oauth:
    | {
        readonly client: HubSpotOAuth;
        readonly tokens: SignedToken;
        /** Spends each install's state once (Redis, shared by every replica). */
        readonly states: OAuthStateLedger;
      }
    | undefined;
};

export const createIngestApp = (deps: IngestDeps): Koa => {
  const { config, logger } = deps;
  // Forwarded headers decide the signed URL and the OAuth redirect_uri: trusted only when told.
  const app = new Koa({ proxy: config.TRUST_PROXY });
  const router = new Router();
  app.use(jsonErrors(router, logger));
  app.use(bodyDeadline(config.HTTP_BODY_TIMEOUT_MS));

  healthRoutes(router, {
    // Not ready while writes fail, not only when disconnected: a load balancer then sends elsewhere.
    isReady: deps.isReady,
    notReadyDetail:
      'writes to Kafka are failing (or the producer is not connected); HubSpot deliveries would get 503',
    registry: deps.registry,
  });
  webhookRoutes(router, deps);
  // The install link without a signed grant (from the admin API or the console) needs ADMIN_TOKEN.
  oauthRoutes(router, deps, createAdminAuth(config.ADMIN_TOKEN));
  app.use(router.routes());
  app.use(router.allowedMethods());
  return app;
};
