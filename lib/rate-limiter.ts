import { randomUUID } from 'node:crypto';
import { ErrorCode, PipelineError } from './errors.ts';
import { defineScript, type Redis } from './redis.ts';
import { hashTag } from './redis-slots.ts';
import { sleep } from './retry.ts';

/**
 * Who a call serves. A portal's budget (HubSpot: 100 calls per rolling 10 s, shared by every
 * replica) is spent first on calls a waiting customer needs (re-fetching their message,
 * completing it, posting the AI's answer); bookkeeping (ticket look-ups) takes what is left.
 */
export const CallClass = { customer: 'customer', bookkeeping: 'bookkeeping' } as const;
export type CallClass = (typeof CallClass)[keyof typeof CallClass];

/**
 * The share of a window bookkeeping never takes: a burst of customers always finds these slots,
 * and when a full window frees up, the slot goes to a customer before any bookkeeping call.
 */
export const CUSTOMER_RESERVE = 0.2;

/**
 * A rolling-window limit shared by every replica through Redis (HubSpot counts per installing
 * account over a rolling 10 s), in one atomic script per attempt:
 * - a customer call takes a slot while the window holds fewer than `max`; one that has to wait
 *   registers as a waiter (until a little after it will try again, so a dead replica's waiter
 *   lapses on its own);
 * - a bookkeeping call takes a slot only while the window holds fewer than `max - reserve` AND no
 *   customer call is waiting. Otherwise it is told how long to wait like a customer one, and
 *   gives up after its `maxWaitMs` (the caller tries again later instead of holding a
 *   conversation).
 * Returns 0 (slot taken) or the wait in ms.
 */
const TAKE_SLOT = `
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000 + math.floor(tonumber(now_parts[2]) / 1000)
local window = tonumber(ARGV[1])
local max = tonumber(ARGV[2])
local member = ARGV[3]
local class = ARGV[4]
local reserve = tonumber(ARGV[5])
local waiter = ARGV[6]
redis.call('ZREMRANGEBYSCORE', KEYS[1], 0, now - window)
redis.call('ZREMRANGEBYSCORE', KEYS[2], 0, now)
local count = redis.call('ZCARD', KEYS[1])
local limit = max
if class == 'bookkeeping' then
  limit = max - reserve
  if redis.call('ZCARD', KEYS[2]) > 0 then
    return math.max(1, math.floor(window / 20))
  end
end
if count < limit then
  redis.call('ZADD', KEYS[1], now, member)
  redis.call('PEXPIRE', KEYS[1], window)
  if class == 'customer' then redis.call('ZREM', KEYS[2], waiter) end
  return 0
end
-- Slots free in the order they were taken: wait for the one that brings the count under limit.
local index = count - limit
local freeing = redis.call('ZRANGE', KEYS[1], index, index, 'WITHSCORES')
local wait = math.max(1, tonumber(freeing[2]) + window - now)
if class == 'customer' then
  redis.call('ZADD', KEYS[2], now + math.floor(wait * 1.5) + 1000, waiter)
  redis.call('PEXPIRE', KEYS[2], window * 2 + 1000)
end
return wait
`;

/**
 * Up to ARGV[3] customer slots in one call, as many as the window has room for (members
 * ARGV[4]..':'..i): what that many single customer calls arriving together would take, in one
 * script call. Customer calls do not look at the waiting set (only bookkeeping ones do), so
 * this is TAKE_SLOT's customer path for each. Returns how many were taken; the callers left
 * over go through TAKE_SLOT one by one (their wait, their waiter entry).
 */
const TAKE_CUSTOMER_SLOTS = `
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000 + math.floor(tonumber(now_parts[2]) / 1000)
local window = tonumber(ARGV[1])
local max = tonumber(ARGV[2])
local wanted = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], 0, now - window)
local taken = math.min(wanted, max - redis.call('ZCARD', KEYS[1]))
if taken <= 0 then return 0 end
local members = {}
for i = 1, taken do
  members[#members + 1] = now
  members[#members + 1] = ARGV[4] .. ':' .. i
end
redis.call('ZADD', KEYS[1], unpack(members))
redis.call('PEXPIRE', KEYS[1], window)
return taken
`;
/** Customer calls of one bucket asked together, at most (Lua's unpack takes a few thousand). */
const MAX_SLOTS_PER_CALL = 256;

/**
 * A bucket's window (sorted set of taken slots) and its waiting customer calls, which TAKE_SLOT
 * reads together: both carry the bucket as hash tag, so on a Cluster they share a slot while
 * the buckets (a portal, an organisation) spread over the slots.
 */
export const rateLimitKeys = (prefix: string, bucket: string): { window: string; waiting: string } => ({
  window: `${prefix}ratelimit:${hashTag(bucket)}`,
  waiting: `${prefix}ratelimit:${hashTag(bucket)}:waiting`,
});

export type AcquireOptions = {
  /** Customer unless said otherwise. */
  readonly callClass?: CallClass;
  /**
   * Give up (PipelineError upstreamRateLimited, retriable, with `retryAfterMs`) rather than wait
   * longer than this; unbounded when absent.
   */
  readonly maxWaitMs?: number;
};

export type RateLimiter = {
  /** Waits until a request for `bucket` is allowed; returns how long it waited. */
  readonly acquire: (bucket: string, options?: AcquireOptions) => Promise<number>;
};

export const createRedisRateLimiter = (
  redis: Redis,
  options: {
    prefix: string;
    max: number;
    windowMs: number;
    /** The share of `max` bookkeeping calls leave to customer ones (at least one slot). */
    customerReserve?: number;
    onThrottled?: (bucket: string, waitMs: number, callClass: CallClass) => void;
  },
): RateLimiter => {
  // At least one slot, and never all of them: a limit of 1 leaves bookkeeping its one slot.
  const reserve =
    options.max > 1
      ? Math.min(
          options.max - 1,
          Math.max(1, Math.ceil(options.max * (options.customerReserve ?? CUSTOMER_RESERVE))),
        )
      : 0;
  const takeSlot = defineScript(redis, TAKE_SLOT, 2);
  const takeCustomerSlots = defineScript(redis, TAKE_CUSTOMER_SLOTS, 1);
  /**
   * Customer calls for a bucket that arrive in the same turn of the event loop (a fetched
   * batch's conversations start together) ask Redis once, together: one script call per OpenCX
   * or HubSpot call would be most of outbound's Redis time. Each resolves true when it got
   * a slot that way, false when the window had no room for it (it then asks on its own).
   */
  const pending = new Map<string, ((taken: boolean) => void)[]>();
  const askTogether = (bucket: string): Promise<boolean> =>
    new Promise((resolve) => {
      const waiting = pending.get(bucket);
      if (waiting) {
        waiting.push(resolve);
        return;
      }
      pending.set(bucket, [resolve]);
      setImmediate(() => {
        const callers = pending.get(bucket) ?? [];
        pending.delete(bucket);
        for (let from = 0; from < callers.length; from += MAX_SLOTS_PER_CALL) {
          const group = callers.slice(from, from + MAX_SLOTS_PER_CALL);
          takeCustomerSlots(
            [rateLimitKeys(options.prefix, bucket).window],
            [options.windowMs, options.max, group.length, randomUUID()],
          ).then(
            (taken) => group.forEach((caller, index) => caller(index < Number(taken))),
            // Redis failing: each asks on its own, and meets the error there.
            () => group.forEach((caller) => caller(false)),
          );
        }
      });
    });
  return {
    acquire: async (bucket, { callClass = CallClass.customer, maxWaitMs } = {}) => {
      if (callClass === CallClass.customer && (await askTogether(bucket))) return 0;
      const waiter = randomUUID();
      const keys = rateLimitKeys(options.prefix, bucket);
      let waited = 0;
      for (;;) {
        const waitMs = Number(
          await takeSlot(
            [keys.window, keys.waiting],
            [options.windowMs, options.max, randomUUID(), callClass, reserve, waiter],
          ),
        );
        if (waitMs <= 0) return waited;
        options.onThrottled?.(bucket, waitMs, callClass);
        // Spread the waiters over half the wait again: they would otherwise all wake together
        // when the oldest slot frees, and all but one go back to sleep (a Redis call each).
        const jittered = waitMs + Math.floor(Math.random() * Math.min(waitMs, options.windowMs) * 0.5);
        if (maxWaitMs !== undefined && waited + jittered > maxWaitMs) {
          throw new PipelineError(
            ErrorCode.upstreamRateLimited,
            `${bucket}: no ${callClass} slot within ${maxWaitMs} ms (the budget is kept for customer calls)`,
            { retriable: true, retryAfterMs: jittered },
          );
        }
        await sleep(jittered);
        waited += jittered;
      }
    },
  };
};
