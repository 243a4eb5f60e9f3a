import { defineScript, type Redis } from '../../../lib/redis.ts';

/**
 * The time from which Redis remembers: a key set to Redis's own clock when it is missing. It
 * changes only when Redis lost its data (a restart without persistence, a flush, an eviction):
 * the AI-reply attempt markers (reply-attempts.ts) and the owed ticket look-ups
 * (owed-ticket-look-ups.ts) both live in Redis alone, and both ask it whether Redis may have
 * forgotten them.
 */
export const memorySinceKey = (prefix: string): string => `${prefix}attempt-memory-since`;

/**
 * Lua: `memorySince(key)` returns the time Redis remembers from (ms), setting it to Redis's clock
 * when missing. Every script that asks it starts with this text.
 */
export const MEMORY_SINCE_LUA = `
local function memorySince(key)
  local since = tonumber(redis.call('GET', key))
  if since then return since end
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  redis.call('SET', key, now)
  return now
end
`;

const READ_OR_START = `${MEMORY_SINCE_LUA}
return tostring(memorySince(KEYS[1]))
`;

/** Reads the time Redis remembers from, starting it now when Redis has none. */
export const createRedisMemorySince = (redis: Redis, prefix: string): (() => Promise<number>) => {
  const script = defineScript(redis, READ_OR_START, 1);
  const key = memorySinceKey(prefix);
  return async () => Number(await script([key], []));
};
