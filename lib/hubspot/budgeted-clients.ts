import { createRedisRateLimiter, type CallClass } from '../rate-limiter.ts';
import type { Redis } from '../redis.ts';
import { createPortalClients } from './portal-clients.ts';

/** The configuration the portals' clients read (every service's and tool's config that calls HubSpot). */
export type HubSpotClientSettings = {
  readonly HUBSPOT_API_BASE_URL: string;
  readonly HUBSPOT_TIMEOUT_MS: number;
  readonly HUBSPOT_RATE_LIMIT_MAX: number;
  readonly HUBSPOT_RATE_LIMIT_WINDOW_MS: number;
  readonly REDIS_KEY_PREFIX: string;
};

type PortalClientOptions = Parameters<typeof createPortalClients>[0];

/**
 * One HubSpot client per portal, each taking its slots from the portal's call budget in Redis,
 * shared by every replica and tool: a reprocess or a second replica never starves live traffic.
 */
export const createBudgetedPortalClients = (
  redis: Redis,
  settings: HubSpotClientSettings,
  options: Pick<
    PortalClientOptions,
    'onCall' | 'customerMaxWaitMs' | 'bookkeepingMaxWaitMs' | 'waitingUntil'
  > & {
    /** A call found no slot in its portal's budget (`bucket` is `hubspot:<portalId>`). */
    readonly onThrottled?: (bucket: string, waitMs: number, callClass: CallClass) => void;
  } = {},
) => {
  const { onThrottled, ...clientOptions } = options;
  return createPortalClients({
    baseUrl: settings.HUBSPOT_API_BASE_URL,
    timeoutMs: settings.HUBSPOT_TIMEOUT_MS,
    limiter: createRedisRateLimiter(redis, {
      prefix: settings.REDIS_KEY_PREFIX,
      max: settings.HUBSPOT_RATE_LIMIT_MAX,
      windowMs: settings.HUBSPOT_RATE_LIMIT_WINDOW_MS,
      ...(onThrottled ? { onThrottled } : {}),
    }),
    ...clientOptions,
  });
};
