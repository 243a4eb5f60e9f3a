import { defineScript, type Redis } from '../../../lib/redis.ts';
import { hashTag } from '../../../lib/redis-slots.ts';

/**
 * The time from which Redis remembers an organisation's keys: a key set to Redis's own clock
 * when it is missing. It changes only when Redis lost the data (a restart without persistence,
 * a flush, an eviction, a Cluster node that failed over to a replica behind it): the AI-reply
 * attempt markers (reply-attempts.ts) live in Redis alone, and ask it whether Redis may have
 * forgotten them. One per organisation, with the organisation's hash tag: on a Cluster it sits
 * in the same slot (so on the same node, lost with it) as the markers it speaks for.
 */
export const memorySinceKey = (prefix: string, orgId: string): string =>
  `${prefix}attempt-memory-since:${hashTag(`org:${orgId}`)}`;

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

/** Reads the time Redis remembers an organisation's keys from, starting it now when Redis has none. */
export const createRedisMemorySince = (
  redis: Redis,
  prefix: string,
): ((orgId: string) => Promise<number>) => {
  const script = defineScript(redis, READ_OR_START, 1);
  return async (orgId) => Number(await script([memorySinceKey(prefix, orgId)], []));
};
