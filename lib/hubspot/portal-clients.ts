import { ErrorCode, PipelineError } from '../errors.ts';
import type { Org } from '../orgs/index.ts';
import type { RateLimiter } from '../rate-limiter.ts';
import { createHubSpotApi, type HubSpotApi } from './api.ts';

/**
 * One HubSpot client per organisation's portal and token (a refreshed or reconnected token gets
 * a new client), each rate limited per portal across all replicas.
 */
export const createPortalClients = (options: {
  baseUrl: string;
  timeoutMs: number;
  limiter: RateLimiter;
}): ((org: Org) => HubSpotApi) => {
  const clients = new Map<string, { token: string; api: HubSpotApi }>();
  return (org) => {
    const token = org.hubspot.accessToken;
    if (!token) {
      throw new PipelineError(
        ErrorCode.upstreamUnauthorized,
        `organisation ${org.orgId} has no HubSpot access token`,
        { retriable: false, upstream: 'hubspot' },
      );
    }
    const cached = clients.get(org.orgId);
    if (cached?.token === token) return cached.api;
    const api = createHubSpotApi({
      baseUrl: options.baseUrl,
      accessToken: token,
      timeoutMs: options.timeoutMs,
      beforeRequest: async () => {
        await options.limiter.acquire(`hubspot:${org.hubspot.portalId}`);
      },
    });
    clients.set(org.orgId, { token, api });
    return api;
  };
};
