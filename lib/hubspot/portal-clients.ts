import { ErrorCode, PipelineError } from '../errors.ts';
import type { Org } from '../orgs/index.ts';
import type { RateLimiter } from '../rate-limiter.ts';
import { callClassOf, createHubSpotApi, type HubSpotApi, type HubSpotCallPurpose } from './api.ts';

/**
 * How long a bookkeeping call (a ticket look-up) may wait for a slot before it gives up: 0, it
 * takes a free slot or none. Its caller tries again later; waiting would hold the caller.
 */
export const BOOKKEEPING_MAX_WAIT_MS = 0;

/**
 * One HubSpot client per organisation's portal and token (a refreshed or reconnected token gets
 * a new client), each rate limited per portal across all replicas, customer calls first.
 */
export const createPortalClients = (options: {
  baseUrl: string;
  timeoutMs: number;
  limiter: RateLimiter;
  /** Each request that got its slot and is sent: counted per portal and purpose. */
  onCall?: (portalId: number, purpose: HubSpotCallPurpose) => void;
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
      beforeRequest: async (purpose) => {
        const callClass = callClassOf[purpose];
        await options.limiter.acquire(`hubspot:${org.hubspot.portalId}`, {
          callClass,
          ...(callClass === 'bookkeeping' ? { maxWaitMs: BOOKKEEPING_MAX_WAIT_MS } : {}),
        });
        options.onCall?.(org.hubspot.portalId, purpose);
      },
    });
    clients.set(org.orgId, { token, api });
    return api;
  };
};
