/**
 * The ingest HTTP surface: one error handler (every non-2xx is {"error","detail"}, a 5xx never
 * shows internals), health and metrics, and the route files: routes/webhooks.ts (HubSpot
 * deliveries), routes/admin.ts (organisations), routes/oauth.ts (the public app's install).
 */
import Koa from 'koa';
import Router from '@koa/router';
import type { Registry } from 'prom-client';
import type { Logger } from '../../../lib/log.ts';
import type { Org, OrgDirectory, OrgRepository } from '../../../lib/orgs/index.ts';
import type { IngestConfig } from './config.ts';
import { HttpError } from './http.ts';
import type { IngestMetrics } from './metrics.ts';
import type { HubSpotOAuth, SignedToken } from './oauth.ts';
import { adminRoutes, createAdminAuth } from './routes/admin.ts';
import { oauthRoutes } from './routes/oauth.ts';
import { webhookRoutes } from './routes/webhooks.ts';
import type { AcceptedEvent } from './webhook-batch.ts';

export { MAX_BODY_BYTES } from './http.ts';

export type WebhookRoute = 'OAUTH_APP' | 'PRIVATE_APP';

/** Writes a batch's events durably (acks from all in-sync replicas); rejects when Kafka cannot. */
export type RawEventSink = (
  route: WebhookRoute,
  events: readonly { event: AcceptedEvent; org: Org | undefined }[],
) => Promise<void>;

export type IngestDeps = {
  readonly config: IngestConfig;
  readonly orgs: OrgDirectory;
  readonly sink: RawEventSink;
  /** Every organisation edit (admin API, OAuth callback) goes through it. */
  readonly orgRepository: Pick<OrgRepository, 'put' | 'delete' | 'storeOAuthTokens'>;
  readonly isReady: () => boolean;
  readonly metrics: IngestMetrics;
  readonly registry: Registry;
  readonly logger: Logger;
  readonly now: () => number;
  /** Present when HUBSPOT_CLIENT_ID and HUBSPOT_CLIENT_SECRET are set. */
  readonly oauth: { readonly client: HubSpotOAuth; readonly tokens: SignedToken } | undefined;
};

export const createIngestApp = (deps: IngestDeps): Koa => {
  const { config, logger } = deps;
  const app = new Koa({ proxy: true });
  const router = new Router();

  // One error handler: every non-2xx is {"error","detail"}; a 5xx never shows internals.
  app.use(async (ctx, next) => {
    try {
      await next();
      if (ctx.status === 404 && ctx.body === undefined)
        throw new HttpError(404, 'not_found', `no route for ${ctx.method} ${ctx.path}`);
    } catch (error) {
      if (error instanceof HttpError) {
        ctx.status = error.status;
        ctx.body = { error: error.code, detail: error.detail };
      } else {
        logger.error({ err: error, path: ctx.path }, 'unhandled error in request');
        ctx.status = 500;
        ctx.body = { error: 'internal', detail: 'internal error; see the service log' };
      }
    }
  });

  router.get('/healthz', (ctx) => {
    ctx.body = { status: 'ok' };
  });
  router.get('/readyz', (ctx) => {
    if (!deps.isReady()) throw new HttpError(503, 'not_ready', 'the Kafka producer is not connected');
    ctx.body = { status: 'ready' };
  });
  router.get('/metrics', async (ctx) => {
    ctx.type = deps.registry.contentType;
    ctx.body = await deps.registry.metrics();
  });

  const authorise = createAdminAuth(config.ADMIN_TOKEN);
  webhookRoutes(router, deps);
  adminRoutes(router, deps, authorise);
  oauthRoutes(router, deps, authorise);
  app.use(router.routes());
  app.use(router.allowedMethods());
  return app;
};
