import type { Logger } from '../../../lib/log.ts';
import type { OrgDirectory, OrgRepository } from '../../../lib/orgs/index.ts';
import type { Redis } from '../../../lib/redis.ts';
import { ErrorCode, PipelineError } from '../../../lib/errors.ts';
import type { HubSpotOAuth } from './oauth.ts';

/**
 * Refreshes OAuth access tokens before they expire (HubSpot's last 30 minutes). Every ingest
 * replica runs it; a Redis lock per organisation lets one of them do each refresh. A refused
 * refresh token marks the organisation "reconnect required" instead of trying forever.
 */
export const refreshExpiringTokens = async (deps: {
  orgs: Pick<OrgDirectory, 'all'>;
  oauth: HubSpotOAuth;
  orgRepository: Pick<OrgRepository, 'refreshTokens' | 'markReconnectRequired'>;
  redis: Redis;
  lockPrefix: string;
  marginMs: number;
  now: () => number;
  logger: Logger;
  onRefreshed: (outcome: 'refreshed' | 'reconnect_required' | 'failed') => void;
}): Promise<void> => {
  for (const org of deps.orgs.all()) {
    const { refreshToken, tokenExpiresAt, reconnectRequired } = org.hubspot;
    if (
      org.deleted ||
      reconnectRequired ||
      !refreshToken ||
      tokenExpiresAt === undefined ||
      tokenExpiresAt - deps.now() > deps.marginMs
    )
      continue;
    const lock = `${deps.lockPrefix}oauth-refresh:${org.orgId}`;
    if ((await deps.redis.set(lock, '1', 'PX', 30000, 'NX')) !== 'OK') continue;
    try {
      const tokens = await deps.oauth.refresh(refreshToken);
      // Deleted meanwhile: nothing to store.
      if ((await deps.orgRepository.refreshTokens(org.orgId, tokens)) === 'unknown') continue;
      deps.onRefreshed('refreshed');
      deps.logger.info(
        { orgId: org.orgId, expiresAt: new Date(tokens.expiresAt).toISOString() },
        'HubSpot access token refreshed',
      );
    } catch (error) {
      if (error instanceof PipelineError && error.code === ErrorCode.upstreamUnauthorized) {
        await deps.orgRepository.markReconnectRequired(org.orgId);
        deps.onRefreshed('reconnect_required');
        deps.logger.warn(
          { orgId: org.orgId, err: error },
          'HubSpot refused the refresh token: the organisation must reconnect the app',
        );
      } else {
        deps.onRefreshed('failed');
        deps.logger.warn({ orgId: org.orgId, err: error }, 'token refresh failed; will try again');
      }
    } finally {
      await deps.redis.del(lock);
    }
  }
};

/** Runs `refreshExpiringTokens` every `everyMs`; a failed pass is logged and the next one comes. */
export const startTokenRefresher = (
  deps: Parameters<typeof refreshExpiringTokens>[0],
  everyMs: number,
): { readonly stop: () => void } => {
  const timer = setInterval(() => {
    refreshExpiringTokens(deps).catch((error: unknown) =>
      deps.logger.error({ err: error }, 'token refresh pass failed'),
    );
  }, everyMs);
  return { stop: () => clearInterval(timer) };
};
