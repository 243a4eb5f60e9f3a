import { ErrorCode, PipelineError } from './errors.ts';
import { defineScript, type Redis } from './redis.ts';

export type ClaimResult = 'claimed' | 'duplicate' | 'in-flight';

/**
 * Dedup in three steps so a crash loses nothing: `claim` (SET NX with a short lease) before the
 * work, `confirm` (the key becomes "done" for longer than HubSpot's 24 h retry window) only once
 * the effect is durable. A process that dies after claiming leaves a lease that expires, and the
 * redelivered event is claimed again; one that dies after emitting but before confirming emits
 * again, and the deterministic event id makes that second emit harmless downstream.
 */
export type DedupStore = {
  readonly claim: (key: string) => Promise<ClaimResult>;
  readonly confirm: (key: string) => Promise<void>;
  readonly release: (key: string) => Promise<void>;
  /** Extends our claim's lease; false when it is no longer ours (expired, taken, or done). */
  readonly renew: (key: string) => Promise<boolean>;
};

/** A dedup key's value once its event's effect is durable. */
export const DEDUP_DONE = 'done';
const DONE = DEDUP_DONE;

/** The Redis key of a dedup key (the reconciler reads them to tell what the processor handled). */
export const dedupRedisKey = (prefix: string, key: string): string => `${prefix}dedup:${key}`;

// A claim in one round trip, whatever the key holds: free → ours for a lease; "done" → a
// duplicate; our own claim (a retried batch in this process) → extended, ours; anyone else's
// live claim → in flight.
const CLAIM = `
local current = redis.call('GET', KEYS[1])
if not current then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 'claimed'
end
if current == ARGV[3] then return 'duplicate' end
if current == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 'claimed'
end
return 'in-flight'
`;
// Deletes the claim only if it is still ours (never someone else's claim or a "done").
const RELEASE_IF_OWNER = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`;
// Extends the lease only if the claim is still ours.
const RENEW_IF_OWNER = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0`;

export const createRedisDedupStore = (
  redis: Redis,
  options: { prefix: string; owner: string; leaseMs: number; doneTtlMs: number },
): DedupStore => {
  const full = (key: string): string => dedupRedisKey(options.prefix, key);
  const owner = `claim:${options.owner}`;
  const claimKey = defineScript(redis, CLAIM, 1);
  const releaseIfOwner = defineScript(redis, RELEASE_IF_OWNER, 1);
  const renewIfOwner = defineScript(redis, RENEW_IF_OWNER, 1);
  return {
    claim: async (key) => {
      const result = await claimKey([full(key)], [owner, options.leaseMs, DONE]);
      return result === 'claimed' || result === 'duplicate' ? result : 'in-flight';
    },
    confirm: async (key) => {
      await redis.set(full(key), DONE, 'PX', options.doneTtlMs);
    },
    release: async (key) => {
      await releaseIfOwner([full(key)], [owner]);
    },
    renew: async (key) => Number(await renewIfOwner([full(key)], [owner, options.leaseMs])) === 1,
  };
};

/**
 * Claims `key`, waiting while another replica holds a live claim (it may finish, or die and let
 * its lease run out). Gives up with a retriable error after two leases.
 */
export const claimOrWait = async (
  store: DedupStore,
  key: string,
  options: { leaseMs: number; now: () => number; sleep: (ms: number) => Promise<void> },
): Promise<'claimed' | 'duplicate'> => {
  const deadline = options.now() + options.leaseMs * 2;
  for (;;) {
    const result = await store.claim(key);
    if (result !== 'in-flight') return result;
    if (options.now() > deadline) {
      throw new PipelineError(ErrorCode.dedupInFlight, `dedup key ${key} stays claimed by another replica`, {
        retriable: true,
      });
    }
    await options.sleep(Math.max(50, Math.min(1000, options.leaseMs / 4)));
  }
};
