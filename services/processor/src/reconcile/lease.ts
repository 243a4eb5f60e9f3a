import { defineScript, type Redis } from '../../../../lib/redis.ts';
import { hashTag } from '../../../../lib/redis-slots.ts';

/**
 * One replica reconciles an organisation at a time: a lease in Redis (SET NX PX), tagged by the
 * organisation so that on a Redis Cluster it sits with the organisation's other keys. The holder
 * renews it while its run lasts; a replica that dies mid-run leaves a lease that runs out within
 * RECONCILE_LEASE_MS (the processor's configuration), and the next run repeats its work.
 */
export type ReconcileLease = {
  /** True when this replica holds the organisation's lease now. */
  readonly take: (orgId: string) => Promise<boolean>;
  /** Extends the lease; false when it is no longer this replica's (it ran out, another took it). */
  readonly renew: (orgId: string) => Promise<boolean>;
  /** Lets go of the lease, only if it is still this replica's. */
  readonly release: (orgId: string) => Promise<void>;
};

export const reconcileLeaseKey = (prefix: string, orgId: string): string =>
  `${prefix}reconcile-lease:${hashTag(`org:${orgId}`)}`;

const RELEASE_IF_OWNER = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`;
const RENEW_IF_OWNER = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0`;

export const createRedisReconcileLease = (
  redis: Redis,
  options: { readonly prefix: string; readonly owner: string; readonly leaseMs: number },
): ReconcileLease => {
  const releaseIfOwner = defineScript(redis, RELEASE_IF_OWNER, 1);
  const renewIfOwner = defineScript(redis, RENEW_IF_OWNER, 1);
  return {
    take: async (orgId) =>
      (await redis.set(
        reconcileLeaseKey(options.prefix, orgId),
        options.owner,
        'PX',
        options.leaseMs,
        'NX',
      )) === 'OK',
    renew: async (orgId) =>
      Number(
        await renewIfOwner([reconcileLeaseKey(options.prefix, orgId)], [options.owner, options.leaseMs]),
      ) === 1,
    release: async (orgId) => {
      await releaseIfOwner([reconcileLeaseKey(options.prefix, orgId)], [options.owner]);
    },
  };
};

/**
 * Who holds an organisation's lease now and for how much longer (undefined: nobody): what an
 * operator is told when `npm run reconcile` finds the organisation taken.
 */
export const reconcileLeaseHolder = async (
  redis: Redis,
  prefix: string,
  orgId: string,
): Promise<{ readonly owner: string; readonly remainingMs: number } | undefined> => {
  const key = reconcileLeaseKey(prefix, orgId);
  const [owner, remainingMs] = await Promise.all([redis.get(key), redis.pttl(key)]);
  return owner === null ? undefined : { owner, remainingMs: Math.max(0, remainingMs) };
};
