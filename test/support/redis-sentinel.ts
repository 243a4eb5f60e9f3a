/**
 * The Redis behind Sentinel that the Sentinel specs use: the set `infra/local/redis-sentinel.sh up`
 * started from this checkout (one master, one replica, three sentinels), named to the specs by
 * TEST_REDIS_SENTINELS and TEST_REDIS_SENTINEL_NAME (scripts/ci/redis-topologies.sh sets them
 * from the script's output). Those are not REDIS_SENTINELS: that name would reach every service
 * a spec of the same run starts, next to the REDIS_CLUSTER_NODES of TEST_REDIS_TOPOLOGY=cluster.
 */
import { Redis as RedisServer } from 'ioredis';
import { parseNodeAddress, type RedisNodeAddress } from '../../lib/redis-topology.ts';
import { runLocalInfraScript } from './processes.ts';

export type TestSentinels = { readonly sentinels: readonly RedisNodeAddress[]; readonly name: string };

/** The sentinels the specs are given; undefined when TEST_REDIS_SENTINELS or its name is not set. */
export const testSentinels = (): TestSentinels | undefined => {
  const sentinels = (process.env.TEST_REDIS_SENTINELS ?? '')
    .split(',')
    .flatMap((node) => parseNodeAddress(node) ?? []);
  const name = process.env.TEST_REDIS_SENTINEL_NAME;
  return sentinels.length > 0 && name ? { sentinels, name } : undefined;
};

/** The one line a Sentinel spec prints when it skips. */
export const SENTINELS_NOT_SET =
  'skipped: TEST_REDIS_SENTINELS and TEST_REDIS_SENTINEL_NAME are not set. Run bash infra/local/redis-sentinel.sh up and export its two lines with TEST_ in front (scripts/ci/redis-topologies.sh does; CI step "redis cluster")';

/** The variables that make a service find its Redis through these sentinels (and nothing else). */
export const sentinelRedisEnv = ({ sentinels, name }: TestSentinels): Record<string, string> => ({
  REDIS_SENTINELS: sentinels.map(({ host, port }) => `${host}:${port}`).join(','),
  REDIS_SENTINEL_NAME: name,
});

/** SENTINEL REPLICAS' answer: one flat [field, value, ...] list per replica. */
const fieldsOf = (flat: readonly string[]): Map<string, string> => {
  const fields = new Map<string, string>();
  for (let index = 0; index + 1 < flat.length; index += 2)
    fields.set(flat[index] as string, flat[index + 1] as string);
  return fields;
};

/**
 * A client of every sentinel of the set, to ask them what they see, and the fault and repair
 * of its data servers through infra/local/redis-sentinel.sh. The caller disconnects it.
 */
export const connectSentinels = ({ sentinels, name }: TestSentinels) => {
  const clients = sentinels.map(
    ({ host, port }) => new RedisServer({ host, port, lazyConnect: false, maxRetriesPerRequest: 1 }),
  );
  /** The master's address as one sentinel names it now; undefined when it does not answer. */
  const masterBy = async (client: RedisServer): Promise<RedisNodeAddress | undefined> => {
    const answer = await client.call('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', name).catch(() => undefined);
    if (!Array.isArray(answer)) return undefined;
    const port = Number(answer[1]);
    return typeof answer[0] === 'string' && Number.isInteger(port) ? { host: answer[0], port } : undefined;
  };
  const masterPortBy = async (client: RedisServer): Promise<number | undefined> =>
    (await masterBy(client))?.port;
  const replicasBy = async (client: RedisServer): Promise<Map<string, string>[]> => {
    const answer = (await client.call('SENTINEL', 'REPLICAS', name).catch(() => [])) as string[][];
    return answer.map(fieldsOf);
  };
  /** The script acts on the set these sentinels watch: their ports, and the data servers they know. */
  const scriptEnv = async (): Promise<Record<string, string>> => {
    const [first] = clients;
    const master = first && (await masterPortBy(first));
    const replicas = first ? await replicasBy(first) : [];
    return {
      REDIS_SENTINEL_PORTS: sentinels.map(({ port }) => port).join(' '),
      REDIS_SENTINEL_DATA_PORTS: [master, ...replicas.map((fields) => fields.get('port'))].join(' '),
    };
  };

  return {
    /** The master's port as each sentinel names it now (undefined for one that does not answer). */
    masterPorts: (): Promise<(number | undefined)[]> => Promise.all(clients.map(masterPortBy)),
    /**
     * The master (as the first sentinel names it) has a replica whose sync is done (INFO: state
     * online), and every sentinel knows that replica and does not think it down: a replica that
     * holds the master's data and that Sentinel would promote. (The sentinels' own view of the
     * replica's link lags: they read its INFO every 10 s.)
     */
    replicaInSync: async (): Promise<boolean> => {
      const [first] = clients;
      const master = first && (await masterBy(first));
      if (!master) return false;
      const server = new RedisServer({
        ...master,
        lazyConnect: true,
        maxRetriesPerRequest: 0,
        retryStrategy: () => null,
      });
      const info = await server
        .connect()
        .then(() => server.info('replication'))
        .catch(() => '')
        .finally(() => server.disconnect());
      const online = [...info.matchAll(/^slave\d+:.*\bport=(\d+),state=online/gm)].map((match) => match[1]);
      const views = await Promise.all(clients.map(replicasBy));
      return views.every((replicas) =>
        replicas.some((fields) => fields.get('flags') === 'slave' && online.includes(fields.get('port'))),
      );
    },
    /** kill -9 the server the sentinels name master now; resolves to its port. */
    killMaster: async (): Promise<number> =>
      Number((await runLocalInfraScript('redis-sentinel.sh', ['kill-master'], await scriptEnv())).trim()),
    /** Starts a killed data server again, as a replica of the master the sentinels name now. */
    startDataServer: async (port: number): Promise<void> => {
      // The sentinels keep a killed server on their list of replicas (as down), so it is named.
      await runLocalInfraScript('redis-sentinel.sh', ['start', String(port)], await scriptEnv());
    },
    disconnect: (): void => {
      for (const client of clients) client.disconnect();
    },
  };
};
export type SentinelSet = ReturnType<typeof connectSentinels>;
