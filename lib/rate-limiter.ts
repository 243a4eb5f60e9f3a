import { randomUUID } from 'node:crypto';
import type { Redis } from './redis.ts';
import { sleep } from './retry.ts';

/**
 * A rolling-window limit shared by every replica through Redis (HubSpot counts per installing
 * account over a rolling 10 s). `acquire` waits for a free slot; the wait holds only the caller
 * (one conversation), never other portals' work.
 */
const TAKE_SLOT = `
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000 + math.floor(tonumber(now_parts[2]) / 1000)
local window = tonumber(ARGV[1])
local max = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], 0, now - window)
if redis.call('ZCARD', KEYS[1]) < max then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], window)
  return 0
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return math.max(1, tonumber(oldest[2]) + window - now)
`;

export type RateLimiter = {
  /** Waits until a request for `bucket` is allowed; returns how long it waited. */
  readonly acquire: (bucket: string) => Promise<number>;
};

export const createRedisRateLimiter = (
  redis: Redis,
  options: {
    prefix: string;
    max: number;
    windowMs: number;
    onThrottled?: (bucket: string, waitMs: number) => void;
  },
): RateLimiter => ({
  acquire: async (bucket) => {
    let waited = 0;
    for (;;) {
      const waitMs = Number(
        await redis.eval(
          TAKE_SLOT,
          1,
          `${options.prefix}ratelimit:${bucket}`,
          options.windowMs,
          options.max,
          randomUUID(),
        ),
      );
      if (waitMs <= 0) return waited;
      options.onThrottled?.(bucket, waitMs);
      // Spread the waiters over half the wait again: they would otherwise all wake together
      // when the oldest slot frees, and all but one go back to sleep (a Redis call each).
      const jittered = waitMs + Math.floor(Math.random() * Math.min(waitMs, options.windowMs) * 0.5);
      await sleep(jittered);
      waited += jittered;
    }
  },
});
