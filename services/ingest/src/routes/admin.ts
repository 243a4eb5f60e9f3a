import { timingSafeEqual, createHash } from 'node:crypto';
import type { Context } from 'koa';
import type Router from '@koa/router';
import { ErrorCode, PipelineError } from '../../../../lib/errors.ts';
import { OrgInput, publicView } from '../../../../lib/orgs/index.ts';
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
  const { config, orgs, orgRepository, logger } = deps;
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

  /** Only a failed Kafka write is a 503: once Kafka has the record, the change is made. */
  const stored = async <T>(edit: () => Promise<T>, orgId: string, detail: string): Promise<T> => {
    try {
      return await edit();
    } catch (error) {
      if (!(error instanceof PipelineError && error.code === ErrorCode.kafkaUnavailable)) throw error;
      logger.error({ err: error, orgId }, 'organisation edit not written');
      throw new HttpError(503, 'kafka_unavailable', detail);
    }
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
    const result = await stored(
      () => orgRepository.put(orgId, input.data),
      orgId,
      'the organisation could not be stored; try again',
    );
    switch (result.kind) {
      case 'portal_taken':
        throw new HttpError(
          409,
          'portal_taken',
          `portal ${input.data.hubspot.portalId} already belongs to organisation ${result.owner}`,
        );
      case 'secrets_unreadable':
        throw new HttpError(
          422,
          'secrets_unreadable',
          `the stored ${result.fields.join(', ')} cannot be opened with SECRETS_KEY nor SECRETS_KEY_PREVIOUS: send ${result.fields.length === 1 ? 'it' : 'them'} again in this PUT, or set SECRETS_KEY_PREVIOUS to the key that sealed ${result.fields.length === 1 ? 'it' : 'them'}`,
        );
      case 'created':
      case 'replaced': {
        logger.info(
          { orgId, portalId: input.data.hubspot.portalId, oauthTokensDropped: result.oauthTokensDropped },
          `organisation ${result.kind}`,
        );
        ctx.status = result.kind === 'created' ? 201 : 200;
        ctx.body = withInstallUrl(publicView(result.org, baseUrl(ctx)), ctx);
        return;
      }
      default: {
        const unreachable: never = result;
        return unreachable;
      }
    }
  });

  router.get('/admin/orgs/:orgId', (ctx) => {
    authorise(ctx);
    const orgId = orgIdOf(ctx);
    const found = orgs.lookupById(orgId);
    if (found.kind === 'unreadable') throw new HttpError(409, 'org_unreadable', found.detail);
    if (found.kind !== 'org') throw new HttpError(404, 'unknown_org', `no organisation ${orgId}`);
    ctx.body = withInstallUrl(publicView(found.org, baseUrl(ctx)), ctx);
  });

  router.delete('/admin/orgs/:orgId', async (ctx) => {
    authorise(ctx);
    const orgId = orgIdOf(ctx);
    const outcome = await stored(
      () => orgRepository.delete(orgId),
      orgId,
      'the deletion could not be stored; try again',
    );
    if (outcome === 'unknown') throw new HttpError(404, 'unknown_org', `no organisation ${orgId}`);
    logger.info({ orgId }, 'organisation deleted');
    ctx.status = 204;
  });
};
