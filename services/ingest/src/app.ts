/**
 * The ingest HTTP surface: one error handler (every non-2xx is {"error","detail"}, a 5xx never
 * shows internals), health and metrics, and the route files: routes/webhooks.ts (HubSpot
 * deliveries), routes/admin.ts (organisations), routes/oauth.ts (the public app's install).
 */
import Koa from 'koa';
import Router from '@koa/router';
import type { Registry } from 'prom-client';
import type { WebhookRoute } from '../../../lib/contracts/index.ts';
import type { Logger } from '../../../lib/log.ts';
import type { Org, OrgDirectory, OrgRepository } from '../../../lib/orgs/index.ts';
import type { IngestConfig } from './config.ts';
import { consoleRoutes, type ConsoleDeps } from './console/index.ts';
import { bodyDeadline, HttpError } from './http.ts';
import type { IngestMetrics } from './metrics.ts';
import type { HubSpotOAuth, OAuthStateLedger, SignedToken } from './oauth.ts';
import { adminRoutes, createAdminAuth } from './routes/admin.ts';
import { oauthRoutes } from './routes/oauth.ts';
import { webhookRoutes } from './routes/webhooks.ts';
import type { AcceptedEvent } from './webhook-batch.ts';

export { MAX_BODY_BYTES } from './http.ts';

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
  readonly oauth:
    | {
        readonly client: HubSpotOAuth;
        readonly tokens: SignedToken;
        /** Spends each install's state once (Redis, shared by every replica). */
        readonly states: OAuthStateLedger;
      }
    | undefined;
  /** The operator's web console at /console (services/ingest/src/console). */
  readonly console?: ConsoleDeps;
};

export const createIngestApp = (deps: IngestDeps): Koa => {
  const { config, logger } = deps;
  // Forwarded headers decide the signed URL and the OAuth redirect_uri: trusted only when told.
  const app = new Koa({ proxy: config.TRUST_PROXY });
  const router = new Router();

  // One error handler: every non-2xx is {"error","detail"}; a 5xx never shows internals.
  app.use(async (ctx, next) => {
    try {
      await next();
      if (ctx.status === 404 && ctx.body === undefined)
        throw new HttpError(404, 'not_found', `no route for ${ctx.method} ${ctx.path}`);
      // allowedMethods answers these with an empty body; its Allow header stays.
      if (ctx.status === 405 && ctx.body === undefined)
        throw new HttpError(
          405,
          'method_not_allowed',
          `${ctx.method} is not allowed on ${ctx.path}; allowed: ${ctx.response.get('Allow')}`,
        );
      // koa-router answers a method it does not know at all (PROPFIND, ...) with 501. HubSpot and
      // monitors read any 5xx as "ingest is failing", so it is the 405 RFC 9110 also allows:
      // the method is not supported on this resource, and Allow says which are.
      if (ctx.status === 501 && ctx.body === undefined) {
        const allowed = [...new Set(router.match(ctx.path, 'GET').path.flatMap((layer) => layer.methods))];
        ctx.set('Allow', allowed.join(', '));
        throw new HttpError(
          405,
          'method_not_allowed',
          `${ctx.method} is not supported; allowed on ${ctx.path}: ${allowed.join(', ')}`,
        );
      }
    } catch (error) {
      const answer = asHttpError(error);
      if (answer) {
        ctx.status = answer.status;
        ctx.body = { error: answer.code, detail: answer.detail };
        // The rest of that body is never read: do not keep the connection for it.
        if (answer.status === 408 || answer.status === 413) ctx.set('Connection', 'close');
      } else {
        logger.error({ err: error, path: ctx.path }, 'unhandled error in request');
        ctx.status = 500;
        ctx.body = { error: 'internal', detail: 'internal error; see the service log' };
      }
    }
  });
  app.use(bodyDeadline(config.HTTP_BODY_TIMEOUT_MS));

  router.get('/healthz', (ctx) => {
    ctx.body = { status: 'ok' };
  });
  router.get('/readyz', (ctx) => {
    if (!deps.isReady())
      throw new HttpError(
        503,
        'not_ready',
        'writes to Kafka are failing (or the producer is not connected); HubSpot deliveries would get 503',
      );
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
  if (deps.console) consoleRoutes(router, deps.console);
  app.use(router.routes());
  app.use(router.allowedMethods());
  return app;
};

/**
 * Our own HttpError, or a client error thrown by koa or the router (an undecodable path is a
 * 400 `URIError` there): both are the client's fault and answered as such.
 */
const asHttpError = (error: unknown): HttpError | undefined => {
  if (error instanceof HttpError) return error;
  const status = (error as { status?: unknown; expose?: unknown } | undefined)?.status;
  if (typeof status === 'number' && status >= 400 && status < 500)
    return new HttpError(status, 'bad_request', error instanceof Error ? error.message : 'bad request');
  return undefined;
};
