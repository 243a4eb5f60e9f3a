import { randomBytes, timingSafeEqual, createHash } from 'node:crypto';
import type { Context } from 'koa';
import type Router from '@koa/router';
import { OrgInput, hashWebhookToken, publicView, type StoredOrg } from '../../../../lib/orgs/index.ts';
import type { IngestDeps } from '../app.ts';
import { HttpError, publicBaseUrl, readBody } from '../http.ts';

const INSTALL_GRANT_TTL_MS = 15 * 60 * 1000;

/** Checks `Authorization: Bearer $ADMIN_TOKEN` in constant time; 503 when no token is configured. */
export const createAdminAuth = (token: string | undefined): ((ctx: Context) => void) => {
  const adminToken = token === undefined ? undefined : createHash('sha256').update(token).digest();
  return (ctx) => {
    if (!adminToken) throw new HttpError(503, 'admin_disabled', 'set ADMIN_TOKEN to enable the admin API');
    const given = /^Bearer (.+)$/.exec(ctx.get('authorization'))?.[1];
    const digest = createHash('sha256')
      .update(given ?? '')
      .digest();
    if (!given || !timingSafeEqual(digest, adminToken))
      throw new HttpError(401, 'unauthorised', 'Authorization: Bearer $ADMIN_TOKEN required');
  };
};

/** PUT, GET and DELETE /admin/orgs/{orgId}. */
export const adminRoutes = (router: Router, deps: IngestDeps, authorise: (ctx: Context) => void): void => {
  const { config, orgs, logger } = deps;
  const baseUrl = (ctx: Context): string => publicBaseUrl(ctx, config.PUBLIC_BASE_URL);

  const orgIdOf = (ctx: Context & { params: Record<string, string> }): string => {
    const orgId = ctx.params.orgId ?? '';
    if (!/^[A-Za-z0-9._-]{1,64}$/.test(orgId))
      throw new HttpError(400, 'invalid_org_id', 'orgId: 1-64 of A-Z a-z 0-9 . _ -');
    return orgId;
  };
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
};
