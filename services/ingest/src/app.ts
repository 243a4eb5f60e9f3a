/**
 * The ingest HTTP surface: lib/http-server.ts's error handler, health and metrics, and the route
 * files: routes/webhooks.ts (HubSpot deliveries) and routes/oauth.ts (the public app's install).
 * The admin API and the operator's console are the console service's.
 */
import Koa from 'koa';
import Router from '@koa/router';
import { createAdminAuth } from '../../../lib/admin-auth.ts';
import { bodyDeadline, healthRoutes, jsonErrors } from '../../../lib/http-server.ts';
import type { IngestDeps } from './deps.ts';
import { oauthRoutes } from './routes/oauth.ts';
import { webhookRoutes } from './routes/webhooks.ts';

export { MAX_BODY_BYTES } from '../../../lib/http-server.ts';

export type { IngestDeps, RawEventSink } from './deps.ts';

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
  const oauthAppWebhook = webhookRoutes(router, deps);
  // The install link without a signed grant (from the admin API or the console) needs ADMIN_TOKEN.
  oauthRoutes(router, deps, createAdminAuth(config.ADMIN_TOKEN));
  app.use(oauthAppWebhook);
  app.use(router.routes());
  app.use(router.allowedMethods());
  return app;
};
