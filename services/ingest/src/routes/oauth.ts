import type { Context } from 'koa';
import type Router from '@koa/router';
import { HttpError, publicBaseUrl } from '../../../../lib/http-server.ts';
import { isInstallGrantFor } from '../../../../lib/signed-tokens.ts';
import type { IngestDeps } from '../deps.ts';

const OAUTH_STATE_TTL_MS = 15 * 60 * 1000;

/** GET /oauth/hubspot/install and /oauth/hubspot/callback (the public app's install flow). */
export const oauthRoutes = (router: Router, deps: IngestDeps, authorise: (ctx: Context) => void): void => {
  const { config, orgs, logger } = deps;
  const baseUrl = (ctx: Context): string => publicBaseUrl(ctx, config.PUBLIC_BASE_URL);

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
    const grant = typeof ctx.query.grant === 'string' ? ctx.query.grant : undefined;
    if (!isInstallGrantFor(oauth.tokens, grant, orgId)) authorise(ctx);
    if (!orgs.byId(orgId))
      throw new HttpError(
        404,
        'unknown_org',
        `no organisation ${orgId}: create it with PUT /admin/orgs/${orgId} (on the console) first`,
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
        ? oauth.tokens.verify<{ kind: string; orgId: string; nonce: string; exp: number }>(ctx.query.state)
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
    // Spent before the code is exchanged: a replayed state never reaches HubSpot or the org.
    let first: boolean;
    try {
      first = await oauth.states.spend(state.nonce, state.exp);
    } catch (error) {
      logger.error({ err: error, orgId: state.orgId }, 'OAuth state could not be checked');
      throw new HttpError(503, 'redis_unavailable', 'the install could not be checked; try again shortly');
    }
    if (!first)
      throw new HttpError(
        400,
        'state_used',
        'this install link has already completed a callback; start again from the install link',
      );
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
    let outcome;
    try {
      outcome = await deps.orgRepository.storeOAuthTokens(state.orgId, portalId, tokens);
    } catch (error) {
      logger.error({ err: error, orgId: state.orgId }, 'OAuth tokens not stored');
      throw new HttpError(
        503,
        'kafka_unavailable',
        'the tokens could not be stored; start again from the install link',
      );
    }
    if (outcome.kind === 'unknown') throw new HttpError(404, 'unknown_org', `no organisation ${state.orgId}`);
    if (outcome.kind === 'portal_taken')
      throw new HttpError(
        409,
        'portal_taken',
        `portal ${portalId} already belongs to organisation ${outcome.owner}`,
      );
    logger.info({ orgId: state.orgId, portalId }, 'HubSpot portal connected through OAuth');
    ctx.body = { connected: true, orgId: state.orgId, portalId };
  });
};
