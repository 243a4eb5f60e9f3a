import { defineScript, type Redis } from './redis.ts';

/**
 * The newest `occurredAt` handled per organisation, object and property, so that a property
 * change HubSpot delivers late (it retries for 24 h, unordered) does not overwrite a newer one.
 * Kept in Redis: every replica and every restart sees the same clock.
 */
export type PropertyClock = {
  /** occurredAt of the newest change of this property handled so far, if any. */
  readonly lastApplied: (key: PropertyClockKey) => Promise<number | undefined>;
  /** Raises the clock to `occurredAt`; never lowers it (atomic compare-and-set). */
  readonly advance: (key: PropertyClockKey, occurredAt: number) => Promise<void>;
};

export type PropertyClockKey = {
  readonly orgId: string;
  /** 'ticket' or 'conversation'. */
  readonly objectType: string;
  readonly objectId: string;
  readonly propertyName: string;
};

// Only ever raises. The TTL is refreshed either way, so a property that keeps changing keeps
// its clock. Lua numbers are doubles: epoch milliseconds are exact.
const RAISE = `
local current = tonumber(redis.call('GET', KEYS[1]))
local candidate = tonumber(ARGV[1])
if current == nil or candidate > current then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 0`;

export const createRedisPropertyClock = (
  redis: Redis,
  options: {
    readonly prefix: string;
    /** Longer than HubSpot's 24 h retry window: after it, no older delivery can still come. */
    readonly ttlMs: number;
  },
): PropertyClock => {
  const full = (key: PropertyClockKey): string =>
    `${options.prefix}property-clock:${key.orgId}:${key.objectType}:${key.objectId}:${key.propertyName}`;
  const raise = defineScript(redis, RAISE, 1);
  return {
    lastApplied: async (key) => {
      const value = await redis.get(full(key));
      if (value === null) return undefined;
      const parsed = Number(value);
      return Number.isFinite(parsed) ? parsed : undefined;
    },
    advance: async (key, occurredAt) => {
      await raise([full(key)], [String(occurredAt), String(options.ttlMs)]);
    },
  };
};
