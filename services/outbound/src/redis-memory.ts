import { defineScript, type Redis } from '../../../lib/redis.ts';

/**
 * The time from which Redis remembers: a key set to Redis's own clock when it is missing. It
 * changes only when Redis lost its data (a restart without persistence, a flush, an eviction):
 * the AI-reply attempt markers (reply-attempts.ts) and the owed ticket look-ups
 * (owed-ticket-look-ups.ts) both live in Redis alone, and both ask it whether Redis may have
 * forgotten them.
 */
export const memorySinceKey = (prefix: string): string => `${prefix}attempt-memory-since`;

const READ_OR_START = `
local since = redis.call('GET', KEYS[1])
if since then return since end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('SET', KEYS[1], now)
return tostring(now)
`;

/** Reads the time Redis remembers from, starting it now when Redis has none. */
export const createRedisMemorySince = (redis: Redis, prefix: string): (() => Promise<number>) => {
  const script = defineScript(redis, READ_OR_START, 1);
  const key = memorySinceKey(prefix);
  return async () => Number(await script([key], []));
};
