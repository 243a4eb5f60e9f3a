/**
 * The admin API: PUT, GET and DELETE /admin/orgs/{orgId}, with `Authorization: Bearer
 * $ADMIN_TOKEN`. Every edit goes through the organisation repository (the orgs topic).
 */
import type { Context } from 'koa';
import type Router from '@koa/router';
import type { z } from 'zod';
import { createAdminAuth } from '../../../../lib/admin-auth.ts';
import { ErrorCode, PipelineError } from '../../../../lib/errors.ts';
import { HttpError, readBody } from '../../../../lib/http-server.ts';
import type { Logger } from '../../../../lib/log.ts';
import { OrgInput, publicView, type OrgDirectory, type OrgRepository } from '../../../../lib/orgs/index.ts';
import { installLink, type SignedToken } from '../../../../lib/signed-tokens.ts';

export type AdminDeps = {
  readonly adminToken: string | undefined;
  readonly orgs: Pick<OrgDirectory, 'lookupById'>;
  readonly orgRepository: Pick<OrgRepository, 'put' | 'delete'>;
  /** Where HubSpot and browsers reach ingest: the webhook and install URLs point there. */
  readonly ingestPublicUrl: string;
  /** Signs install links; undefined when the OAuth app is not configured. */
  readonly installGrants: SignedToken | undefined;
  readonly logger: Logger;
};

/** The body as JSON of `schema`: 400 `malformed_body` when it is not JSON, `invalidCode` when not the schema. */
const readJson = async <T>(ctx: Context, schema: z.ZodType<T>, invalidCode: string): Promise<T> => {
  const raw = await readBody(ctx);
  let json: unknown;
  try {
    json = JSON.parse(raw.toString('utf8'));
  } catch {
    throw new HttpError(400, 'malformed_body', 'body is not JSON');
  }
  const input = schema.safeParse(json);
  if (!input.success) {
    const issue = input.error.issues[0];
    throw new HttpError(400, invalidCode, `${issue?.path.join('.') ?? ''}: ${issue?.message ?? 'invalid'}`);
  }
  return input.data;
};

/** PUT, GET and DELETE /admin/orgs/{orgId}. */
export const adminRoutes = (router: Router, deps: AdminDeps): void => {
  const { orgs, orgRepository, logger, ingestPublicUrl } = deps;
  const authorise = createAdminAuth(deps.adminToken);

  const orgIdOf = (ctx: Context & { params: Record<string, string> }): string => {
    const orgId = ctx.params.orgId ?? '';
    if (!/^[A-Za-z0-9._-]{1,64}$/.test(orgId))
      throw new HttpError(400, 'invalid_org_id', 'orgId: 1-64 of A-Z a-z 0-9 . _ -');
    return orgId;
  };
  /** The organisation as the admin API shows it, with its install link when the OAuth app is configured. */
  const viewOf = (org: Parameters<typeof publicView>[0]) => {
    const view = publicView(org, ingestPublicUrl);
    return deps.installGrants
      ? { ...view, oauthInstallUrl: installLink(deps.installGrants, ingestPublicUrl, view.orgId) }
      : view;
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
    const input = await readJson(ctx, OrgInput, 'invalid_org');
    const result = await stored(
      () => orgRepository.put(orgId, input),
      orgId,
      'the organisation could not be stored; try again',
    );
    switch (result.kind) {
      case 'portal_taken':
        throw new HttpError(
          409,
          'portal_taken',
          `portal ${input.hubspot.portalId} already belongs to organisation ${result.owner}`,
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
          { orgId, portalId: input.hubspot.portalId, oauthTokensDropped: result.oauthTokensDropped },
          `organisation ${result.kind}`,
        );
        ctx.status = result.kind === 'created' ? 201 : 200;
        ctx.body = viewOf(result.org);
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
    ctx.body = viewOf(found.org);
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
