import { defineScript, type Redis } from '../../../lib/redis.ts';
import { hashTag } from '../../../lib/redis-slots.ts';
import { MEMORY_SINCE_LUA, memorySinceKey } from './redis-memory.ts';

/**
 * Attempt markers of AI reply posts (HubSpot's message API takes no idempotency key). A marker
 * says "a post of this reply may have gone out": the next attempt reads the thread's history
 * before posting. Markers live in Redis, so a Redis that restarts without its data (or is
 * flushed) forgets them; a reply posted just before, whose "posted" record did not reach Kafka
 * (a broker restart at that moment), would then be posted again.
 *
 * So Redis also holds the time from which it remembers (`memory-since`, per organisation, set when missing), and
 * an attempt counts as the first only when its marker is new AND Redis has remembered since
 * before the reply's customer message occurred (less `MEMORY_MARGIN_MS` for clock skew between
 * HubSpot and Redis): an earlier attempt would have left its marker. Otherwise the thread's
 * history is read first. After a Redis data loss that costs one HubSpot read per reply to a
 * message from before it; nothing before.
 */
const MARK = `${MEMORY_SINCE_LUA}
local since = memorySince(KEYS[2])
local fresh = redis.call('SET', KEYS[1], '1', 'PX', tonumber(ARGV[1]), 'NX')
if fresh and tonumber(ARGV[2]) >= since + tonumber(ARGV[3]) then return 1 end
return 0
`;

/** Clock skew allowed between HubSpot's occurredAt and Redis's clock. */
export const MEMORY_MARGIN_MS = 60_000;

export type ReplyAttempts = {
  /** True only for a surely first attempt (see above); false: read the thread before posting. */
  readonly mark: (orgId: string, key: string, occurredAt: number) => Promise<boolean>;
  readonly clear: (orgId: string, key: string) => Promise<void>;
};

/** MARK reads the marker and the organisation's memory-since together: both carry its hash tag. */
export const attemptKey = (prefix: string, orgId: string, key: string): string =>
  `${prefix}attempt:${hashTag(`org:${orgId}`)}:${key}`;

export const createRedisReplyAttempts = (redis: Redis, prefix: string, ttlMs: number): ReplyAttempts => {
  const script = defineScript(redis, MARK, 2);
  return {
    mark: async (orgId, key, occurredAt) =>
      (await script(
        [attemptKey(prefix, orgId, key), memorySinceKey(prefix, orgId)],
        [ttlMs, occurredAt, MEMORY_MARGIN_MS],
      )) === 1,
    clear: async (orgId, key) => {
      await redis.del(attemptKey(prefix, orgId, key));
    },
  };
};
