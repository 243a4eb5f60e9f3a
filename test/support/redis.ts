/**
 * The Redis the tests use, in the topology TEST_REDIS_TOPOLOGY names: `single` (the default:
 * REDIS_URL) or `cluster` (REDIS_CLUSTER_NODES, e.g. from `infra/local/redis-cluster.sh up`).
 * The pipeline under test gets the same (`testRedisEnv`), so a spec runs unchanged on both.
 * Keys are cleaned by prefix only: the Redis may be shared with other runs (never FLUSHALL).
 */
import { Cluster, type Redis as RedisServer } from 'ioredis';
import { createLogger } from '../../lib/log.ts';
import { createRedis, type Redis } from '../../lib/redis.ts';
import { keySlot } from '../../lib/redis-slots.ts';
import { parseNodeAddress, type RedisSettings } from '../../lib/redis-topology.ts';

export type TestRedisTopology = 'single' | 'cluster';

export const testRedisTopology = (): TestRedisTopology => {
  const named = process.env.TEST_REDIS_TOPOLOGY ?? 'single';
  if (named !== 'single' && named !== 'cluster')
    throw new Error(`TEST_REDIS_TOPOLOGY=${named}: expected single or cluster`);
  return named;
};

/** The variables a service under test gets for the test Redis (with REDIS_URL, set by test/setup.ts). */
export const testRedisEnv = (): Record<string, string> => {
  if (testRedisTopology() === 'single') return {};
  const nodes = process.env.REDIS_CLUSTER_NODES;
  if (!nodes)
    throw new Error(
      'TEST_REDIS_TOPOLOGY=cluster needs REDIS_CLUSTER_NODES (bash infra/local/redis-cluster.sh up prints it)',
    );
  return { REDIS_CLUSTER_NODES: nodes };
};

/** The test Redis's settings, as createRedis takes them. */
export const testRedisSettings = (): RedisSettings => {
  const url = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
  const nodes = testRedisEnv().REDIS_CLUSTER_NODES;
  if (nodes === undefined) return { REDIS_URL: url };
  return {
    REDIS_URL: url,
    REDIS_CLUSTER_NODES: nodes.split(',').map((node) => {
      const address = parseNodeAddress(node);
      if (!address) throw new Error(`REDIS_CLUSTER_NODES: "${node}" is not host:port`);
      return address;
    }),
  };
};

/** A client of the test Redis (the caller disconnects it). */
export const createTestRedis = (name = 'test'): Redis =>
  createRedis(testRedisSettings(), createLogger(name, 'silent'));

/** The servers that hold keys: every master of a Cluster, else the one server. */
const serversOf = (redis: Redis): RedisServer[] =>
  redis instanceof Cluster ? redis.nodes('master') : [redis];

/** Deletes the keys matching `pattern` (SCAN on every master, one DEL per key), as a data loss would. */
export const deleteKeysMatching = async (redis: Redis, pattern: string): Promise<number> => {
  if (redis instanceof Cluster && redis.status !== 'ready')
    await new Promise((resolve) => redis.once('ready', resolve));
  let deleted = 0;
  for (const server of serversOf(redis)) {
    let cursor = '0';
    do {
      const [next, keys] = await server.scan(cursor, 'MATCH', pattern, 'COUNT', 500);
      cursor = next;
      const counts = await Promise.all(keys.map((key) => redis.del(key)));
      deleted += counts.reduce((sum, count) => sum + count, 0);
    } while (cursor !== '0');
  }
  return deleted;
};

/** The server that holds `key` (on a Cluster, the master of its slot), e.g. for MONITOR. */
export const serverOf = async (redis: Redis, key: string): Promise<RedisServer> => {
  if (!(redis instanceof Cluster)) return redis;
  if (redis.status !== 'ready') await new Promise((resolve) => redis.once('ready', resolve));
  const [address] = redis.slots[keySlot(key)] ?? [];
  const server = redis
    .nodes('master')
    .find((node) => `${node.options.host ?? ''}:${node.options.port ?? ''}` === address);
  if (!server) throw new Error(`no master known for ${key} (slot ${keySlot(key)})`);
  return server;
};
