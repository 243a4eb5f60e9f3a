import { createHash } from 'node:crypto';
import { Cluster, Redis, type RedisOptions } from 'ioredis';
import { describeError } from './errors.ts';
import type { Logger } from './log.ts';
import { groupBySlot } from './redis-slots.ts';
import {
  describeRedisTopology,
  redisTopologyOf,
  type RedisSettings,
  type RedisTopology,
} from './redis-topology.ts';

/**
 * The pipeline's Redis client: one server or a master behind Sentinel (`Redis`), or a Redis
 * Cluster (`Cluster`). Both take the same commands; on a Cluster, every multi-key command or
 * script must name keys of one slot (lib/redis-slots.ts; the key layout: docs/architecture.md,
 * "Where state lives").
 */
export type RedisClient = Redis | Cluster;
/** The name every adapter takes its client by. */
export type { RedisClient as Redis };

/** What every topology's connections share: a command fails after 3 reconnects; connect at once. */
const CONNECTION_OPTIONS = { maxRetriesPerRequest: 3, lazyConnect: false } satisfies RedisOptions;

const clientFor = (topology: RedisTopology): RedisClient => {
  switch (topology.kind) {
    case 'single':
      return new Redis(topology.url, {
        ...CONNECTION_OPTIONS,
        enableAutoPipelining: true,
        ...(topology.password === undefined ? {} : { password: topology.password }),
      });
    case 'sentinel':
      return new Redis({
        ...CONNECTION_OPTIONS,
        enableAutoPipelining: true,
        sentinels: topology.sentinels.map(({ host, port }) => ({ host, port })),
        name: topology.name,
        sentinelPassword: topology.sentinelPassword,
        username: topology.username,
        password: topology.password,
        // A failover: the sentinels announce the new master (reconnect to it at once), and a
        // command that reached the old one after its demotion (READONLY) is sent again there.
        failoverDetector: true,
        reconnectOnError: (error) => (error.message.startsWith('READONLY') ? 2 : false),
      });
    case 'cluster':
      // ioredis groups automatic pipelines per node on a Cluster, so single-key commands of
      // one turn of the event loop still travel together.
      return new Cluster(
        topology.nodes.map(({ host, port }) => ({ host, port })),
        {
          enableAutoPipelining: true,
          lazyConnect: false,
          redisOptions: { ...CONNECTION_OPTIONS, username: topology.username, password: topology.password },
        },
      );
    default: {
      const never: never = topology;
      return never;
    }
  }
};

/**
 * A Redis client for `where` (a URL, or the REDIS_* settings: one server, Sentinel or Cluster)
 * that reports its connection through `logger`: one line when it becomes unreachable, one when
 * it is back. ioredis emits an 'error' on every failed reconnect, and without a listener prints
 * each with its stack trace to stderr; the failing commands reject with the error anyway, so
 * nothing is lost by logging only the changes.
 */
export const createRedis = (where: string | RedisSettings, logger: Logger): RedisClient => {
  const topology = redisTopologyOf(typeof where === 'string' ? { REDIS_URL: where } : where);
  const redis = clientFor(topology);
  if (topology.kind !== 'single') logger.info({ redis: describeRedisTopology(topology) }, 'Redis topology');
  let reachable: boolean | undefined;
  redis.on('ready', () => {
    if (reachable === false) logger.info('Redis reachable again');
    reachable = true;
  });
  redis.on('error', (error: unknown) => {
    if (reachable === false) return;
    reachable = false;
    logger.warn({ error: describeError(error) }, 'Redis unreachable; reconnecting');
  });
  return redis;
};

/** A Lua script bound to a client: `run(keys, args)`. */
export type RedisScript = (keys: readonly string[], args: readonly (string | number)[]) => Promise<unknown>;

/**
 * A Lua script called by its SHA1 (EVALSHA; ioredis loads it, and loads it again with EVAL after a
 * Redis restart emptied the script cache). `redis.eval` sends the whole script on every call and
 * makes Redis hash it each time: for the rate limiter's script, once per HubSpot or OpenCX call.
 */
export const defineScript = (redis: RedisClient, lua: string, numberOfKeys: number): RedisScript => {
  const name = `script_${createHash('sha1').update(lua).digest('hex').slice(0, 16)}`;
  const client = redis as unknown as Record<
    string,
    ((...args: (string | number)[]) => Promise<unknown>) | undefined
  >;
  if (client[name] === undefined) redis.defineCommand(name, { numberOfKeys, lua });
  return (keys, args) => {
    const command = client[name];
    if (!command) throw new Error(`Redis script ${name} not defined`);
    return command.call(redis, ...keys, ...args);
  };
};

/**
 * MGET that also works on a Cluster, where one MGET may only name keys of one slot: there, one
 * MGET per slot (sent together; ioredis pipelines them per node). On one server: one MGET.
 * Values in the keys' order.
 */
export const mgetAcrossSlots = async (
  redis: Pick<RedisClient, 'mget'> & { readonly isCluster?: boolean },
  keys: readonly string[],
): Promise<(string | null)[]> => {
  if (keys.length === 0) return [];
  if (redis.isCluster !== true) return redis.mget(...keys);
  const values = new Array<string | null>(keys.length).fill(null);
  await Promise.all(
    groupBySlot(keys).map(async (positions) => {
      const found = await redis.mget(...positions.map((position) => keys[position] ?? ''));
      positions.forEach((position, index) => (values[position] = found[index] ?? null));
    }),
  );
  return values;
};
