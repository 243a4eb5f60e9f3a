import { ErrorCode, PipelineError } from '../errors.ts';
import type { Org } from '../orgs/index.ts';
import type { RateLimiter } from '../rate-limiter.ts';
import { callClassOf, createHubSpotApi, type HubSpotApi, type HubSpotCallPurpose } from './api.ts';

/**
 * How long a bookkeeping call (a ticket look-up) may wait for a slot before it gives up: 0, it
 * takes a free slot or none. Its caller tries again later; waiting would hold the caller. A
 * caller that holds nothing while it waits (the reconciler) says otherwise (`bookkeepingMaxWaitMs`).
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
  /**
   * How long a customer call may wait for a slot (PARK_AFTER_MS): beyond it the call fails with
   * TENANT_WAITING and its event is parked rather than held in memory. Unbounded when absent.
   */
  customerMaxWaitMs?: number;
  /**
   * How long a bookkeeping call may wait for a slot (BOOKKEEPING_MAX_WAIT_MS when absent). It
   * still never takes one while a customer call waits or past the bookkeeping share: it only
   * waits for one of those to free instead of giving up at once.
   */
  bookkeepingMaxWaitMs?: number;
  /** When the organisation is waited for (parked after failures): its calls fail at once. */
  waitingUntil?: (org: Org) => number | undefined;
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
        const parkedUntil = options.waitingUntil?.(org);
        if (parkedUntil !== undefined) {
          throw new PipelineError(
            ErrorCode.tenantWaiting,
            `organisation ${org.orgId} is waited for until ${new Date(parkedUntil).toISOString()}`,
            { retriable: false, retryAfterMs: Math.max(0, parkedUntil - Date.now()), upstream: 'hubspot' },
          );
        }
        const maxWaitMs =
          callClass === 'bookkeeping'
            ? (options.bookkeepingMaxWaitMs ?? BOOKKEEPING_MAX_WAIT_MS)
            : options.customerMaxWaitMs;
        try {
          await options.limiter.acquire(`hubspot:${org.hubspot.portalId}`, {
            callClass,
            ...(maxWaitMs === undefined ? {} : { maxWaitMs }),
          });
        } catch (error) {
          // A customer call over the grace: the portal's budget is spent for a while. Its event is
          // parked (TENANT_WAITING is not retried in memory); a bookkeeping caller tries later.
          throw callClass === 'customer' ? asTenantWaiting(error) : error;
        }
        options.onCall?.(org.hubspot.portalId, purpose);
      },
    });
    clients.set(org.orgId, { token, api });
    return api;
  };
};

/** HubSpot's 429 as TENANT_WAITING, with HubSpot's wait; any other error as it is. */
const asTenantWaiting = (error: unknown): unknown =>
  error instanceof PipelineError && error.code === ErrorCode.upstreamRateLimited
    ? new PipelineError(ErrorCode.tenantWaiting, error.message, {
        retriable: false,
        retryAfterMs: error.retryAfterMs ?? 1000,
        upstream: 'hubspot',
        cause: error,
      })
    : error;

/**
 * A HubSpot call whose 429 is not retried in memory: HubSpot says the portal's budget is spent
 * for its interval, so the event's tenant is parked until then (TENANT_WAITING, with HubSpot's
 * wait), instead of holding a conversation (and a tenant's handler slot) through retries.
 */
export const parkOnRateLimit = async <T>(work: () => Promise<T>): Promise<T> => {
  try {
    return await work();
  } catch (error) {
    throw asTenantWaiting(error);
  }
};
