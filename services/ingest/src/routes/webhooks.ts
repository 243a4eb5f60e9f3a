import type { Context, Middleware } from 'koa';
import type Router from '@koa/router';
import { ErrorCode, PipelineError } from '../../../../lib/errors.ts';
import type { Org } from '../../../../lib/orgs/index.ts';
import type { WebhookRoute } from '../../../../lib/contracts/index.ts';
import { exactRoute, HttpError, publicBaseUrl, readBody } from '../../../../lib/http-server.ts';
import type { IngestDeps } from '../deps.ts';
import { verifyHubSpotSignature } from '../signature.ts';
import { parseWebhookBatch } from '../webhook-batch.ts';

const SIGNATURE_MAX_AGE_MS = 5 * 60 * 1000;

/**
 * POST /webhooks/hubspot (OAuth app) and /webhooks/hubspot/private/{token} (legacy private app).
 * Returns the OAuth app's route as a middleware for ahead of the router: HubSpot's deliveries are
 * nearly every request ingest answers, and the router matches each request against every route
 * and builds a middleware chain for it. The router keeps the route too, for its 405s.
 */
export const webhookRoutes = (router: Router, deps: IngestDeps): Middleware => {
  const { config, orgs, metrics, logger } = deps;

  const reject = (route: WebhookRoute, status: number, code: string, detail: string): never => {
    metrics.rejections.inc({ reason: code });
    metrics.requests.inc({ route, status });
    throw new HttpError(status, code, detail);
  };

  const acceptBatch = async (
    ctx: Context,
    route: WebhookRoute,
    secret: string,
    fixedOrg: Org | undefined,
  ): Promise<void> => {
    let rawBody: Buffer;
    try {
      rawBody = await readBody(ctx);
    } catch (error) {
      if (error instanceof HttpError) reject(route, error.status, error.code, error.detail);
      throw error;
    }
    const check = verifyHubSpotSignature(
      {
        method: ctx.method,
        url: `${publicBaseUrl(ctx, config.PUBLIC_BASE_URL)}${ctx.originalUrl}`,
        rawBody,
        headers: ctx.headers,
      },
      {
        clientSecret: secret,
        maxAgeMs: SIGNATURE_MAX_AGE_MS,
        allowLegacyVersions: config.HUBSPOT_ACCEPT_LEGACY_SIGNATURES,
      },
      deps.now(),
    );
    if (!check.ok)
      reject(
        route,
        401,
        check.reason,
        'the request signature does not verify; check the app client secret and PUBLIC_BASE_URL',
      );

    const batch = parseWebhookBatch(rawBody, deps.now());
    if (!batch.ok) return reject(route, 400, 'malformed_body', batch.detail);

    const routed = batch.events.map((event) => ({ event, org: fixedOrg ?? orgs.byPortal(event.portalId) }));
    const started = performance.now();
    try {
      await deps.sink(route, routed);
    } catch (error) {
      if (error instanceof PipelineError && error.code === ErrorCode.recordTooLarge)
        reject(
          route,
          413,
          'record_too_large',
          `the raw topic cannot store an event of this batch: ${error.message}`,
        );
      logger.warn(
        { err: error, events: routed.length },
        'batch not durable: answering 503 so HubSpot redelivers',
      );
      reject(route, 503, 'kafka_unavailable', 'events could not be written durably; HubSpot will retry');
    }
    metrics.durableLatency.observe((performance.now() - started) / 1000);
    // One counter update per run of a type, not per event (a batch is mostly of one type).
    let unrouted = 0;
    let runStart = 0;
    for (let index = 0; index < routed.length; index++) {
      const { event, org } = routed[index] as (typeof routed)[number];
      if (!org) unrouted++;
      const next = routed[index + 1];
      if (next === undefined || next.event.subscriptionType !== event.subscriptionType) {
        metrics.events.inc({ subscription_type: event.subscriptionType }, index + 1 - runStart);
        runStart = index + 1;
      }
    }
    if (unrouted > 0) metrics.unroutedEvents.inc(unrouted);
    metrics.requests.inc({ route, status: 200 });
    ctx.status = 200;
    // The type set first and the JSON written here: koa would look the type up and stringify an
    // object on every webhook.
    ctx.set('Content-Type', 'application/json; charset=utf-8');
    ctx.body = `{"accepted":${routed.length}}`;
  };

  const oauthAppWebhook = async (ctx: Context): Promise<void> => {
    if (!config.HUBSPOT_CLIENT_SECRET) {
      reject(
        'OAUTH_APP',
        503,
        'not_configured',
        'HUBSPOT_CLIENT_SECRET is not set, so signatures cannot be verified; HubSpot will retry',
      );
    }
    await acceptBatch(ctx, 'OAUTH_APP', config.HUBSPOT_CLIENT_SECRET ?? '', undefined);
  };
  router.post('/webhooks/hubspot', oauthAppWebhook);

  router.post('/webhooks/hubspot/private/:token', async (ctx) => {
    const token = ctx.params.token ?? '';
    // Its secret cannot be opened, so the signature cannot be checked: 503 makes HubSpot retry
    // (for 24 h) while the operator restores the key, instead of losing the events. The detail
    // of what does not open is the operator's (logs, admin API), not the caller's.
    if (orgs.lookupByWebhookToken(token).kind === 'unreadable')
      reject(
        'PRIVATE_APP',
        503,
        'org_unreadable',
        'this organisation cannot be read with the configured SECRETS_KEY; HubSpot will retry',
      );
    const org = orgs.byWebhookToken(token);
    if (!org)
      reject(
        'PRIVATE_APP',
        404,
        'unknown_webhook_token',
        'no organisation has this webhook URL; copy it again from the admin API',
      );
    const secret = org?.hubspot.privateAppClientSecret;
    if (!secret) {
      reject(
        'PRIVATE_APP',
        503,
        'not_configured',
        `organisation ${org?.orgId ?? '?'} has no privateAppClientSecret; set it with PUT /admin/orgs`,
      );
    }
    await acceptBatch(ctx, 'PRIVATE_APP', secret ?? '', org);
  });
  return exactRoute('POST', '/webhooks/hubspot', oauthAppWebhook);
};
