import { randomBytes, timingSafeEqual, createHash } from 'node:crypto';
import Koa, { type Context } from 'koa';
import Router from '@koa/router';
import getRawBody from 'raw-body';
import type { Registry } from 'prom-client';
import type { Logger } from '../../../lib/log.ts';
import {
  OrgInput,
  hashWebhookToken,
  publicView,
  type Org,
  type OrgDirectory,
  type SecretBox,
  type StoredOrg,
} from '../../../lib/orgs/index.ts';
import type { IngestConfig } from './config.ts';
import type { IngestMetrics } from './metrics.ts';
import { verifyHubSpotSignature } from './signature.ts';
import { parseWebhookBatch, type AcceptedEvent } from './webhook-batch.ts';
import type { HubSpotOAuth, SignedToken } from './oauth.ts';

export const MAX_BODY_BYTES = 1024 * 1024;
const SIGNATURE_MAX_AGE_MS = 5 * 60 * 1000;

export type WebhookRoute = 'OAUTH_APP' | 'PRIVATE_APP';

/** Writes a batch's events durably (acks from all in-sync replicas); rejects when Kafka cannot. */
export type RawEventSink = (
  route: WebhookRoute,
  events: readonly { event: AcceptedEvent; org: Org | undefined }[],
) => Promise<void>;

export type IngestDeps = {
  readonly config: IngestConfig;
  readonly orgs: OrgDirectory;
  readonly secrets: SecretBox;
  readonly sink: RawEventSink;
  readonly writeOrg: (record: StoredOrg) => Promise<void>;
  readonly isReady: () => boolean;
  readonly metrics: IngestMetrics;
  readonly registry: Registry;
  readonly logger: Logger;
  readonly now: () => number;
  /** Present when HUBSPOT_CLIENT_ID and HUBSPOT_CLIENT_SECRET are set. */
  readonly oauth: { readonly client: HubSpotOAuth; readonly tokens: SignedToken } | undefined;
};

const INSTALL_GRANT_TTL_MS = 15 * 60 * 1000;
const OAUTH_STATE_TTL_MS = 15 * 60 * 1000;

class HttpError extends Error {
  readonly status: number;
  readonly code: string;
  readonly detail: string;
  constructor(status: number, code: string, detail: string) {
    super(`${code}: ${detail}`);
    this.status = status;
    this.code = code;
    this.detail = detail;
  }
}

const publicUrl = (ctx: Context, configured: string | undefined): string =>
  configured
    ? `${configured.replace(/\/$/, '')}${ctx.originalUrl}`
    : `${ctx.protocol}://${ctx.host}${ctx.originalUrl}`;

export const createIngestApp = (deps: IngestDeps): Koa => {
  const { config, orgs, metrics, logger } = deps;
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

  const readBody = async (ctx: Context): Promise<Buffer> => {
    try {
      return await getRawBody(ctx.req, { limit: MAX_BODY_BYTES });
    } catch (error) {
      const type = (error as { type?: string }).type;
      if (type === 'entity.too.large')
        throw new HttpError(413, 'payload_too_large', `body over ${MAX_BODY_BYTES} bytes`);
      throw new HttpError(400, 'unreadable_body', String((error as Error).message));
    }
  };

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
    const rawBody = await readBody(ctx).catch((error: unknown) => {
      if (error instanceof HttpError) reject(route, error.status, error.code, error.detail);
      throw error;
    });
    const check = verifyHubSpotSignature(
      { method: ctx.method, url: publicUrl(ctx, config.PUBLIC_BASE_URL), rawBody, headers: ctx.headers },
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

    const batch = parseWebhookBatch(rawBody);
    if (!batch.ok) return reject(route, 400, 'malformed_body', batch.detail);

    const routed = batch.events.map((event) => ({ event, org: fixedOrg ?? orgs.byPortal(event.portalId) }));
    const started = performance.now();
    try {
      await deps.sink(route, routed);
    } catch (error) {
      logger.warn(
        { err: error, events: routed.length },
        'batch not durable: answering 503 so HubSpot redelivers',
      );
      reject(route, 503, 'kafka_unavailable', 'events could not be written durably; HubSpot will retry');
    }
    metrics.durableLatency.observe((performance.now() - started) / 1000);
    for (const { event, org } of routed) {
      metrics.events.inc({ subscription_type: event.subscriptionType });
      if (!org) metrics.unroutedEvents.inc();
    }
    metrics.requests.inc({ route, status: 200 });
    ctx.status = 200;
    ctx.body = { accepted: routed.length };
  };

  router.post('/webhooks/hubspot', async (ctx) => {
    if (!config.HUBSPOT_CLIENT_SECRET) {
      reject(
        'OAUTH_APP',
        503,
        'not_configured',
        'HUBSPOT_CLIENT_SECRET is not set, so signatures cannot be verified; HubSpot will retry',
      );
    }
    await acceptBatch(ctx, 'OAUTH_APP', config.HUBSPOT_CLIENT_SECRET ?? '', undefined);
  });

  router.post('/webhooks/hubspot/private/:token', async (ctx) => {
    const org = orgs.byWebhookToken(ctx.params.token ?? '');
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

  // Admin API: organisations.
  const adminToken =
    config.ADMIN_TOKEN === undefined ? undefined : createHash('sha256').update(config.ADMIN_TOKEN).digest();
  const authorise = (ctx: Context): void => {
    if (!adminToken) throw new HttpError(503, 'admin_disabled', 'set ADMIN_TOKEN to enable the admin API');
    const given = /^Bearer (.+)$/.exec(ctx.get('authorization'))?.[1];
    const digest = createHash('sha256')
      .update(given ?? '')
      .digest();
    if (!given || !timingSafeEqual(digest, adminToken))
      throw new HttpError(401, 'unauthorised', 'Authorization: Bearer $ADMIN_TOKEN required');
  };
  const orgIdOf = (ctx: Context & { params: Record<string, string> }): string => {
    const orgId = ctx.params.orgId ?? '';
    if (!/^[A-Za-z0-9._-]{1,64}$/.test(orgId))
      throw new HttpError(400, 'invalid_org_id', 'orgId: 1-64 of A-Z a-z 0-9 . _ -');
    return orgId;
  };
  const baseUrl = (ctx: Context): string => config.PUBLIC_BASE_URL ?? `${ctx.protocol}://${ctx.host}`;
  /** A short-lived link an operator can open in a browser to connect the org's HubSpot portal. */
  const withInstallUrl = <T extends { orgId: string }>(
    view: T,
    ctx: Context,
  ): T & { oauthInstallUrl?: string } => {
    if (!deps.oauth) return view;
    const grant = deps.oauth.tokens.sign({ kind: 'install', orgId: view.orgId }, INSTALL_GRANT_TTL_MS);
    return {
      ...view,
      oauthInstallUrl: `${baseUrl(ctx)}/oauth/hubspot/install?orgId=${encodeURIComponent(view.orgId)}&grant=${grant}`,
    };
  };

  router.put('/admin/orgs/:orgId', async (ctx) => {
    authorise(ctx);
    const orgId = orgIdOf(ctx);
    const raw = await readBody(ctx);
    let json: unknown;
    try {
      json = JSON.parse(raw.toString('utf8'));
    } catch {
      throw new HttpError(400, 'malformed_body', 'body is not JSON');
    }
    const input = OrgInput.safeParse(json);
    if (!input.success) {
      const issue = input.error.issues[0];
      throw new HttpError(
        400,
        'invalid_org',
        `${issue?.path.join('.') ?? ''}: ${issue?.message ?? 'invalid'}`,
      );
    }
    const owner = orgs.byPortal(input.data.hubspot.portalId);
    if (owner && owner.orgId !== orgId) {
      throw new HttpError(
        409,
        'portal_taken',
        `portal ${input.data.hubspot.portalId} already belongs to organisation ${owner.orgId}`,
      );
    }
    const previous = orgs.stored(orgId);
    const seal = deps.secrets.seal;
    const token =
      previous && !previous.deleted
        ? deps.secrets.open(previous.webhookToken)
        : randomBytes(24).toString('base64url');
    const { hubspot } = input.data;
    const record: StoredOrg = {
      orgId,
      deleted: false,
      updatedAt: deps.now(),
      hubspot: {
        portalId: hubspot.portalId,
        aiActorId: hubspot.aiActorId,
        defaultOwnerActorId: hubspot.defaultOwnerActorId,
        // A PUT without tokens keeps those an OAuth install stored.
        accessToken: hubspot.accessToken ? seal(hubspot.accessToken) : previous?.hubspot.accessToken,
        refreshToken: hubspot.accessToken ? undefined : previous?.hubspot.refreshToken,
        tokenExpiresAt: hubspot.accessToken ? undefined : previous?.hubspot.tokenExpiresAt,
        privateAppClientSecret: hubspot.privateAppClientSecret
          ? seal(hubspot.privateAppClientSecret)
          : previous?.hubspot.privateAppClientSecret,
        reconnectRequired: false,
      },
      opencx: { apiKey: seal(input.data.opencx.apiKey) },
      settings: input.data.settings,
      webhookToken: seal(token),
      webhookTokenHash: hashWebhookToken(token),
    };
    try {
      await deps.writeOrg(record);
    } catch (error) {
      logger.error({ err: error, orgId }, 'organisation not written');
      throw new HttpError(503, 'kafka_unavailable', 'the organisation could not be stored; try again');
    }
    logger.info(
      { orgId, portalId: hubspot.portalId },
      previous ? 'organisation replaced' : 'organisation created',
    );
    const org = orgs.byId(orgId);
    if (!org) throw new Error(`organisation ${orgId} not visible after write`);
    ctx.status = previous && !previous.deleted ? 200 : 201;
    ctx.body = withInstallUrl(publicView(org, baseUrl(ctx)), ctx);
  });

  router.get('/admin/orgs/:orgId', (ctx) => {
    authorise(ctx);
    const org = orgs.byId(orgIdOf(ctx));
    if (!org) throw new HttpError(404, 'unknown_org', `no organisation ${ctx.params.orgId ?? ''}`);
    ctx.body = withInstallUrl(publicView(org, baseUrl(ctx)), ctx);
  });

  router.delete('/admin/orgs/:orgId', async (ctx) => {
    authorise(ctx);
    const orgId = orgIdOf(ctx);
    const previous = orgs.stored(orgId);
    if (!previous || previous.deleted) throw new HttpError(404, 'unknown_org', `no organisation ${orgId}`);
    try {
      await deps.writeOrg({ ...previous, deleted: true, updatedAt: deps.now() });
    } catch (error) {
      logger.error({ err: error, orgId }, 'organisation not deleted');
      throw new HttpError(503, 'kafka_unavailable', 'the deletion could not be stored; try again');
    }
    logger.info({ orgId }, 'organisation deleted');
    ctx.status = 204;
  });

  // OAuth install: the operator (admin token, or the signed link from the admin API) is sent to
  // HubSpot's consent screen; the callback stores the tokens and maps the installing portal.
  const requireOAuth = (): NonNullable<IngestDeps['oauth']> => {
    if (!deps.oauth)
      throw new HttpError(
        503,
        'oauth_not_configured',
        'set HUBSPOT_CLIENT_ID and HUBSPOT_CLIENT_SECRET to enable the OAuth install',
      );
    return deps.oauth;
  };
  router.get('/oauth/hubspot/install', (ctx) => {
    const oauth = requireOAuth();
    const orgId = typeof ctx.query.orgId === 'string' ? ctx.query.orgId : '';
    const grant =
      typeof ctx.query.grant === 'string'
        ? oauth.tokens.verify<{ kind: string; orgId: string }>(ctx.query.grant)
        : undefined;
    if (!(grant?.kind === 'install' && grant.orgId === orgId)) authorise(ctx);
    if (!orgs.byId(orgId))
      throw new HttpError(
        404,
        'unknown_org',
        `no organisation ${orgId}: create it with PUT /admin/orgs/${orgId} first`,
      );
    const state = oauth.tokens.sign({ kind: 'state', orgId }, OAUTH_STATE_TTL_MS);
    const target = new URL(config.HUBSPOT_AUTHORIZE_URL);
    target.searchParams.set('client_id', config.HUBSPOT_CLIENT_ID ?? '');
    target.searchParams.set('redirect_uri', `${baseUrl(ctx)}/oauth/hubspot/callback`);
    target.searchParams.set('scope', config.HUBSPOT_OAUTH_SCOPES);
    target.searchParams.set('state', state);
    ctx.redirect(target.toString());
  });

  router.get('/oauth/hubspot/callback', async (ctx) => {
    const oauth = requireOAuth();
    const code = typeof ctx.query.code === 'string' ? ctx.query.code : '';
    const state =
      typeof ctx.query.state === 'string'
        ? oauth.tokens.verify<{ kind: string; orgId: string }>(ctx.query.state)
        : undefined;
    if (!code)
      throw new HttpError(
        400,
        'missing_code',
        'HubSpot did not send an authorization code; start again from the install link',
      );
    if (state?.kind !== 'state')
      throw new HttpError(
        400,
        'invalid_state',
        'the install link expired or was tampered with; start again from the install link',
      );
    const stored = orgs.stored(state.orgId);
    if (!stored || stored.deleted) throw new HttpError(404, 'unknown_org', `no organisation ${state.orgId}`);
    let tokens;
    let portalId;
    try {
      tokens = await oauth.client.exchangeCode(code, `${baseUrl(ctx)}/oauth/hubspot/callback`);
      portalId = await oauth.client.portalOf(tokens.accessToken);
    } catch (error) {
      logger.warn({ err: error, orgId: state.orgId }, 'OAuth code exchange failed');
      throw new HttpError(
        502,
        'oauth_exchange_failed',
        'HubSpot did not accept the authorization code; start again from the install link',
      );
    }
    const owner = orgs.byPortal(portalId);
    if (owner && owner.orgId !== state.orgId)
      throw new HttpError(
        409,
        'portal_taken',
        `portal ${portalId} already belongs to organisation ${owner.orgId}`,
      );
    const seal = deps.secrets.seal;
    try {
      await deps.writeOrg({
        ...stored,
        updatedAt: deps.now(),
        hubspot: {
          ...stored.hubspot,
          portalId,
          accessToken: seal(tokens.accessToken),
          refreshToken: seal(tokens.refreshToken),
          tokenExpiresAt: tokens.expiresAt,
          reconnectRequired: false,
        },
      });
    } catch (error) {
      logger.error({ err: error, orgId: state.orgId }, 'OAuth tokens not stored');
      throw new HttpError(
        503,
        'kafka_unavailable',
        'the tokens could not be stored; start again from the install link',
      );
    }
    logger.info({ orgId: state.orgId, portalId }, 'HubSpot portal connected through OAuth');
    ctx.body = { connected: true, orgId: state.orgId, portalId };
  });

  app.use(router.routes());
  app.use(router.allowedMethods());
  return app;
};
