import { ErrorCode, PipelineError } from '../../../lib/errors.ts';
import type { TenantGate } from '../../../lib/kafka/index.ts';
import type { Org } from '../../../lib/orgs/index.ts';
import { createRedisRateLimiter } from '../../../lib/rate-limiter.ts';
import type { Redis } from '../../../lib/redis.ts';
import type { OutboundConfig } from './config.ts';
import { createOpenCxApi, type OpenCxApi } from './opencx/client.ts';

/**
 * One OpenCX client per organisation and API key (a rotated key gets a new client). Each call
 * first fails at once while its organisation is waited for (OpenCX kept failing: its events are
 * parked), then takes a slot of the organisation's OpenCX budget, shared by every replica.
 */
export const createOpenCxClients = (
  config: Pick<
    OutboundConfig,
    | 'OPENCX_API_BASE_URL'
    | 'OPENCX_TIMEOUT_MS'
    | 'OPENCX_RATE_LIMIT_MAX'
    | 'OPENCX_RATE_LIMIT_WINDOW_MS'
    | 'REDIS_KEY_PREFIX'
  >,
  redis: Redis,
  gate: Pick<TenantGate, 'waitingUntil'>,
): ((org: Org) => OpenCxApi) => {
  const limiter = createRedisRateLimiter(redis, {
    prefix: config.REDIS_KEY_PREFIX,
    max: config.OPENCX_RATE_LIMIT_MAX,
    windowMs: config.OPENCX_RATE_LIMIT_WINDOW_MS,
  });
  const failIfWaitedFor = (org: Org): void => {
    const until = gate.waitingUntil(org.orgId);
    if (until !== undefined)
      throw new PipelineError(
        ErrorCode.tenantWaiting,
        `organisation ${org.orgId} is waited for until ${new Date(until).toISOString()} (OpenCX kept failing)`,
        { retriable: false, retryAfterMs: Math.max(0, until - Date.now()), upstream: 'opencx' },
      );
  };
  const clients = new Map<string, { apiKey: string; api: OpenCxApi }>();
  return (org) => {
    const cached = clients.get(org.orgId);
    if (cached?.apiKey === org.opencx.apiKey) return cached.api;
    const api = createOpenCxApi({
      baseUrl: config.OPENCX_API_BASE_URL,
      apiKey: org.opencx.apiKey,
      timeoutMs: config.OPENCX_TIMEOUT_MS,
      beforeRequest: async () => {
        failIfWaitedFor(org);
        await limiter.acquire(`opencx:${org.orgId}`);
      },
    });
    clients.set(org.orgId, { apiKey: org.opencx.apiKey, api });
    return api;
  };
};
