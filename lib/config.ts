import { z } from 'zod';
import { ErrorCode, PipelineError } from './errors.ts';
import { parseNodeAddress, redisTopologyOf, type RedisNodeAddress } from './redis-topology.ts';

/**
 * Variables every service reads (contract.md, "Configuration"). Each service extends this with
 * its own, then calls `loadConfig` once at start: a bad value stops start-up with one line
 * naming the variable.
 */
const brokerList = z
  .string()
  .min(1)
  .transform((value) => value.split(',').map((broker) => broker.trim()))
  .pipe(z.array(z.string().regex(/^[^:\s]+:\d+$/, 'expected host:port[,host:port...]')).min(1));

const redisNodeList = z
  .string()
  .min(1)
  .transform((value, context): RedisNodeAddress[] => {
    const nodes = value.split(',').map((node) => parseNodeAddress(node));
    if (nodes.length === 0 || nodes.some((node) => node === undefined)) {
      context.addIssue({ code: 'custom', message: 'expected host:port[,host:port...]' });
      return z.NEVER;
    }
    return nodes.filter((node) => node !== undefined);
  });

const secretsKey = z
  .string()
  .transform((value) => Buffer.from(value, 'base64'))
  .refine((key) => key.length === 32, 'must be 32 bytes, base64-encoded (openssl rand -base64 32)');

export const commonEnv = {
  NODE_ENV: z.enum(['development', 'production', 'test']).default('development'),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  KAFKA_BROKERS: brokerList.default(['127.0.0.1:9092']),
  KAFKA_TOPIC_PREFIX: z
    .string()
    .regex(/^[A-Za-z0-9._-]*$/, 'only letters, digits, ".", "_" and "-"')
    .default(''),
  SCHEMA_REGISTRY_URL: z.url().default('http://127.0.0.1:8081/apis/ccompat/v7'),
  REDIS_URL: z.url().default('redis://127.0.0.1:6379'),
  /**
   * Not in the contract's table: Redis behind Sentinel (the sentinels, the master's name, their
   * password) or a Redis Cluster (seed nodes). At most one of the two; unset, REDIS_URL is used.
   */
  REDIS_SENTINELS: redisNodeList.optional(),
  REDIS_SENTINEL_NAME: z.string().min(1).optional(),
  REDIS_SENTINEL_PASSWORD: z.string().min(1).optional(),
  REDIS_CLUSTER_NODES: redisNodeList.optional(),
  /** Not in the contract's table: the data nodes' password (else REDIS_URL's), for any topology. */
  REDIS_PASSWORD: z.string().min(1).optional(),
  /** Not in the contract's table: prefixes every Redis key, so runs and deployments can share a Redis. */
  REDIS_KEY_PREFIX: z.string().default('hubspot-opencx:'),
  HUBSPOT_API_BASE_URL: z.url().default('https://api.hubapi.com'),
  OPENCX_API_BASE_URL: z.url().default('https://api.open.cx'),
  SECRETS_KEY: secretsKey.optional(),
  /** The key before a rotation: opens records it sealed, never seals (contract.md). */
  SECRETS_KEY_PREVIOUS: secretsKey.optional(),
  METRICS_PORT: z.coerce.number().int().min(0).max(65535),
  /** Not in the contract's table: how soon a dead consumer's partitions move to another replica. */
  KAFKA_SESSION_TIMEOUT_MS: z.coerce.number().int().min(6000).default(10000),
  /** Not in the contract's table: messages one partition may hold in memory before it is paused. */
  KAFKA_PARTITION_BUFFER: z.coerce.number().int().min(1).default(5000),
  /**
   * Not in the contract's table: after a fetch that brought records, how long the processor's
   * and outbound's consumers wait before they fetch again (0: at once). Under a steady trickle
   * each fetch otherwise brings a record or two, and every one is a wake-up with its own Redis
   * round trips and sends: 50 ms roughly halves the processor's CPU per event at 200 events/s
   * (bench/README.md), for at most 50 ms more per hop. A record that comes to an idle consumer
   * is fetched at once.
   */
  KAFKA_FETCH_LINGER_MS: z.coerce.number().int().min(0).max(1000).default(50),
  /** Not in the contract's table: how long Redis or Kafka may be unreachable before a replica steps aside. */
  DEPENDENCY_GRACE_MS: z.coerce.number().int().min(1000).default(15000),
  /**
   * Not in the contract's table: how long a starting service waits for Kafka to answer (a broker
   * restarting, a stack coming up in any order) before it gives up with exit code 1.
   */
  KAFKA_STARTUP_WAIT_MS: z.coerce.number().int().min(0).default(120_000),
  /** Not in the contract's table: attempts of a handler that throws (a bug) before its message is dead-lettered. */
  HANDLER_CRASH_ATTEMPTS: z.coerce.number().int().min(1).max(100).default(5),
  /**
   * Not in the contract's table: how long one call may wait for a tenant's budget (HubSpot's per
   * portal) before the tenant is parked and its events leave memory.
   */
  PARK_AFTER_MS: z.coerce.number().int().min(0).default(2000),
  /** Not in the contract's table: the first and the longest wait before a failing tenant is tried again. */
  PARK_PROBE_INITIAL_MS: z.coerce.number().int().min(100).default(5000),
  PARK_PROBE_MAX_MS: z.coerce.number().int().min(100).default(60000),
  /**
   * Not in the contract's table: a tenant that keeps failing this long with nothing handled in
   * between gets the event first in line dead-lettered (retries_exhausted), so no tenant waits
   * forever on one event that always fails. HubSpot itself gives up on a webhook after 24 h.
   */
  TENANT_MAX_WAIT_MS: z.coerce.number().int().min(1000).default(86_400_000),
};

/** Not in the contract's table: partitions and replication of the topics a service creates. */
export const topicCreationEnv = {
  KAFKA_PARTITIONS: z.coerce.number().int().min(1).optional(),
  KAFKA_REPLICATION_FACTOR: z.coerce.number().int().min(1).optional(),
  /**
   * min.insync.replicas of the topics a service creates (and raised on those that have fewer):
   * an acks=all write is refused while fewer replicas are in sync. Unset: 2 when
   * KAFKA_REPLICATION_FACTOR is 2 or more, else the broker's default.
   */
  KAFKA_MIN_INSYNC_REPLICAS: z.coerce.number().int().min(1).optional(),
  /** How long the dead-letter topic keeps a letter (retention.ms); raised at start on a topic that keeps less. */
  DEAD_LETTER_RETENTION_MS: z.coerce
    .number()
    .int()
    .min(60 * 60 * 1000)
    .default(14 * 24 * 60 * 60 * 1000),
};

/** HubSpot calls, rate limited per portal across replicas (OAuth apps get 110 / 10 s: a margin). */
export const hubspotClientEnv = {
  HUBSPOT_RATE_LIMIT_MAX: z.coerce.number().int().min(1).default(100),
  HUBSPOT_RATE_LIMIT_WINDOW_MS: z.coerce.number().int().min(1).default(10000),
  HUBSPOT_TIMEOUT_MS: z.coerce.number().int().min(100).default(10000),
};

/** Dedup claims: how long a claim holds before another replica may take over; how long "done" lasts. */
export const dedupEnv = {
  DEDUP_CLAIM_LEASE_MS: z.coerce.number().int().min(100).default(30000),
  /** Longer than HubSpot's 24 h retry window. */
  DEDUP_TTL_MS: z.coerce
    .number()
    .int()
    .min(1000)
    .default(48 * 60 * 60 * 1000),
};

/**
 * What the processor and outbound read alike: the common variables, topic creation, HubSpot's
 * client and dedup claims. Each adds its own (METRICS_PORT's default, its outside system).
 */
export const pipelineServiceEnv = {
  ...commonEnv,
  ...topicCreationEnv,
  ...hubspotClientEnv,
  ...dedupEnv,
};

export type ConfigSource = Readonly<Record<string, string | undefined>>;

/**
 * Parses only the variables the schema names (the environment holds many others), empty strings
 * counting as unset, and freezes the result.
 */
export const loadConfig = <S extends z.ZodRawShape>(
  shape: S,
  source: ConfigSource,
): Readonly<z.infer<z.ZodObject<S>>> => {
  const picked: Record<string, string> = {};
  for (const name of Object.keys(shape)) {
    const value = source[name];
    if (value !== undefined && value !== '') picked[name] = value;
  }
  const result = z.strictObject(shape).safeParse(picked);
  if (!result.success) {
    const issue = result.error.issues[0];
    const name = String(issue?.path[0] ?? '?');
    const given = picked[name];
    throw new PipelineError(
      ErrorCode.config,
      `invalid configuration: ${name} ${given === undefined ? 'is missing' : `= ${JSON.stringify(redact(name, given))}`}: ${issue?.message ?? 'invalid'}`,
      { retriable: false },
    );
  }
  // Variables valid one by one that contradict each other (Sentinel and Cluster both named).
  if ('REDIS_URL' in shape) redisTopologyOf(result.data as Parameters<typeof redisTopologyOf>[0]);
  return Object.freeze(result.data);
};

const redact = (name: string, value: string): string =>
  /SECRET|TOKEN|KEY|PASSWORD/i.test(name) ? `<${value.length} characters>` : value;

/**
 * A well-known key for local development only, so that `npm start` works without set-up.
 * Production refuses to start without SECRETS_KEY (contract.md).
 */
const DEVELOPMENT_SECRETS_KEY = Buffer.alloc(32, 'hubspot-opencx-development-key!!');

export type SecretsKeys = {
  /** Seals and opens. */
  readonly key: Buffer;
  /** Only opens: records sealed before a rotation, until `npm run orgs:reseal` rewrote them. */
  readonly previous: Buffer | undefined;
  readonly insecure: boolean;
};

export const resolveSecretsKey = (config: {
  NODE_ENV: string;
  SECRETS_KEY?: Buffer | undefined;
  SECRETS_KEY_PREVIOUS?: Buffer | undefined;
}): SecretsKeys => {
  const previous = config.SECRETS_KEY_PREVIOUS;
  if (config.SECRETS_KEY) return { key: config.SECRETS_KEY, previous, insecure: false };
  // Only the old key set is a rotation half done (or a renamed variable): sealing with the
  // development key would write records no production key opens.
  if (previous) {
    throw new PipelineError(
      ErrorCode.config,
      'invalid configuration: SECRETS_KEY_PREVIOUS is set but SECRETS_KEY is missing: a rotation needs the new key in SECRETS_KEY',
      { retriable: false },
    );
  }
  if (config.NODE_ENV === 'production') {
    throw new PipelineError(
      ErrorCode.config,
      'invalid configuration: SECRETS_KEY is missing: production needs a 32-byte base64 key (openssl rand -base64 32)',
      { retriable: false },
    );
  }
  return { key: DEVELOPMENT_SECRETS_KEY, previous: undefined, insecure: true };
};
