import { ErrorCode, PipelineError } from './errors.ts';

/** A Redis node's address, as ioredis takes it for sentinels and cluster seed nodes. */
export type RedisNodeAddress = { readonly host: string; readonly port: number };

/**
 * Where the pipeline's Redis is: one server (`REDIS_URL`), a master found through Sentinel, or a
 * Redis Cluster. Exactly one; the single server is the default.
 */
export type RedisTopology =
  | { readonly kind: 'single'; readonly url: string; readonly password: string | undefined }
  | {
      readonly kind: 'sentinel';
      readonly sentinels: readonly RedisNodeAddress[];
      readonly name: string;
      readonly sentinelPassword: string | undefined;
      readonly username: string | undefined;
      readonly password: string | undefined;
    }
  | {
      readonly kind: 'cluster';
      readonly nodes: readonly RedisNodeAddress[];
      readonly username: string | undefined;
      readonly password: string | undefined;
    };

/** The variables that say where Redis is (lib/config.ts `redisEnv` parses them). */
export type RedisSettings = {
  readonly REDIS_URL: string;
  readonly REDIS_SENTINELS?: readonly RedisNodeAddress[] | undefined;
  readonly REDIS_SENTINEL_NAME?: string | undefined;
  readonly REDIS_SENTINEL_PASSWORD?: string | undefined;
  readonly REDIS_PASSWORD?: string | undefined;
  readonly REDIS_CLUSTER_NODES?: readonly RedisNodeAddress[] | undefined;
};

const configError = (message: string): PipelineError =>
  new PipelineError(ErrorCode.config, `invalid configuration: ${message}`, { retriable: false });

/** `host:port` → address; undefined when it is not one (the config schema reports it). */
export const parseNodeAddress = (text: string): RedisNodeAddress | undefined => {
  const match = /^\[?([^\s[\]]+?)\]?:(\d{1,5})$/.exec(text.trim());
  if (!match?.[1] || !match[2]) return undefined;
  const port = Number(match[2]);
  return port >= 1 && port <= 65535 ? { host: match[1], port } : undefined;
};

/**
 * The topology the settings name. The data nodes' password is REDIS_PASSWORD, else the one in
 * REDIS_URL; in Sentinel and Cluster mode REDIS_URL gives only its user and password (its host is
 * not used).
 */
export const redisTopologyOf = (settings: RedisSettings): RedisTopology => {
  const sentinels = settings.REDIS_SENTINELS ?? [];
  const clusterNodes = settings.REDIS_CLUSTER_NODES ?? [];
  if (sentinels.length > 0 && clusterNodes.length > 0)
    throw configError(
      'REDIS_SENTINELS and REDIS_CLUSTER_NODES are both set: Redis is either behind Sentinel or a Cluster, set one',
    );
  if (sentinels.length === 0 && settings.REDIS_SENTINEL_NAME !== undefined)
    throw configError('REDIS_SENTINEL_NAME is set but REDIS_SENTINELS is missing: name the sentinels too');
  if (sentinels.length === 0 && settings.REDIS_SENTINEL_PASSWORD !== undefined)
    throw configError(
      'REDIS_SENTINEL_PASSWORD is set but REDIS_SENTINELS is missing: name the sentinels too',
    );
  const url = new URL(settings.REDIS_URL);
  const username = url.username === '' ? undefined : decodeURIComponent(url.username);
  const password =
    settings.REDIS_PASSWORD ?? (url.password === '' ? undefined : decodeURIComponent(url.password));
  if (sentinels.length > 0) {
    if (settings.REDIS_SENTINEL_NAME === undefined)
      throw configError(
        'REDIS_SENTINELS is set but REDIS_SENTINEL_NAME is missing: the sentinels need the master name they monitor',
      );
    return {
      kind: 'sentinel',
      sentinels,
      name: settings.REDIS_SENTINEL_NAME,
      sentinelPassword: settings.REDIS_SENTINEL_PASSWORD,
      username,
      password,
    };
  }
  if (clusterNodes.length > 0) return { kind: 'cluster', nodes: clusterNodes, username, password };
  return { kind: 'single', url: settings.REDIS_URL, password: settings.REDIS_PASSWORD };
};

/** One line for logs and error messages: where Redis is looked for, without credentials. */
export const describeRedisTopology = (topology: RedisTopology): string => {
  const list = (nodes: readonly RedisNodeAddress[]) =>
    nodes.map(({ host, port }) => `${host}:${port}`).join(',');
  switch (topology.kind) {
    case 'single': {
      const url = new URL(topology.url);
      url.username = '';
      url.password = '';
      return url.toString();
    }
    case 'sentinel':
      return `master "${topology.name}" via sentinels ${list(topology.sentinels)}`;
    case 'cluster':
      return `cluster ${list(topology.nodes)}`;
    default: {
      const never: never = topology;
      return never;
    }
  }
};
