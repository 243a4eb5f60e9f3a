import {
  Kafka,
  Partitioners,
  logLevel,
  type Admin,
  type ConfigResourceTypes,
  type ITopicConfig,
  type Producer,
} from 'kafkajs';
import { isDependencyUnavailable } from '../errors.ts';
import type { Logger } from '../log.ts';
import { linearDelay, sleep, withRetry } from '../retry.ts';
import { KAFKA_DEFAULT_MAX_BATCH_BYTES, type TopicLimit } from './batching-publisher.ts';
import type { TopicSpec } from './topics.ts';

export type KafkaOptions = {
  readonly clientId: string;
  readonly brokers: readonly string[];
  readonly logger: Logger;
};

const levelNames: Record<number, 'error' | 'warn' | 'info' | 'debug'> = {
  [logLevel.ERROR]: 'error',
  [logLevel.WARN]: 'warn',
  [logLevel.INFO]: 'info',
  [logLevel.DEBUG]: 'debug',
};

/**
 * How long a service consumer's fetch waits for records when its partitions are idle (kafkajs:
 * 5,000 ms). It is also how long a partition paused for back-pressure (KeyedConsumer) can wait
 * after it is resumed: kafkajs cannot cut short the fetch in flight for the other partitions, and
 * when every partition is paused it sleeps this long before it looks again. At 1,000 ms a
 * backlog would drain one partition buffer (5,000 records, gone in ~70 ms) per second, a
 * fraction of what the handlers manage. An idle consumer pays one fetch request
 * per broker every 100 ms. kafkajs's disconnect waits for the fetch in flight, so this also
 * bounds how long a replica takes to leave its group on a stop.
 */
export const CONSUMER_FETCH_MAX_WAIT_MS = 100;

export const createKafka = (options: KafkaOptions): Kafka =>
  new Kafka({
    clientId: options.clientId,
    brokers: [...options.brokers],
    connectionTimeout: 3000,
    requestTimeout: 10000,
    retry: { initialRetryTime: 100, retries: 5, maxRetryTime: 3000 },
    logLevel: logLevel.WARN,
    logCreator:
      () =>
      ({ level, log }) => {
        const { message, ...extra } = log;
        options.logger[levelNames[level] ?? 'info']({ kafka: extra }, `kafkajs: ${message}`);
      },
  });

/**
 * Creates the topics that do not exist yet, with `min.insync.replicas` when one is given.
 * Existing ones are left as they are, but for a retention shorter than their spec asks or a
 * min.insync.replicas lower than asked (both raised, see ensureTopicConfig); fewer replicas than
 * asked is only warned about (adding replicas is a partition reassignment, not a setting).
 */
export const ensureTopics = async (
  admin: Admin,
  specs: readonly TopicSpec[],
  defaults: {
    partitions?: number | undefined;
    replicationFactor?: number | undefined;
    minInsyncReplicas?: number | undefined;
    logger?: Logger | undefined;
  },
): Promise<void> => {
  const existing = new Set(await admin.listTopics());
  const { minInsyncReplicas } = defaults;
  const missing: ITopicConfig[] = specs
    .filter((spec) => !existing.has(spec.name))
    .map((spec) => ({
      topic: spec.name,
      numPartitions: spec.partitions ?? defaults.partitions ?? -1,
      replicationFactor: defaults.replicationFactor ?? -1,
      configEntries: [
        ...(spec.compacted
          ? [
              { name: 'cleanup.policy', value: 'compact' },
              { name: 'min.compaction.lag.ms', value: '60000' },
            ]
          : []),
        ...(spec.retentionMs === undefined
          ? []
          : [{ name: 'retention.ms', value: String(spec.retentionMs) }]),
        ...(minInsyncReplicas === undefined
          ? []
          : [{ name: 'min.insync.replicas', value: String(minInsyncReplicas) }]),
      ],
    }));
  if (missing.length > 0) {
    try {
      await admin.createTopics({ topics: missing, waitForLeaders: true });
    } catch (error) {
      // Another replica may have created them between our list and create: fine if they exist now.
      const now = new Set(await admin.listTopics());
      if (!missing.every((topic) => now.has(topic.topic))) throw error;
    }
  }
  const replicas = await waitForLeaders(
    admin,
    specs.map((spec) => spec.name),
  );
  for (const spec of specs.filter((candidate) => existing.has(candidate.name))) {
    const has = replicas.get(spec.name) ?? 0;
    if (defaults.replicationFactor !== undefined && has < defaults.replicationFactor)
      defaults.logger?.warn(
        { topic: spec.name, replicas: has, wanted: defaults.replicationFactor },
        `topic ${spec.name} has ${has} replicas, fewer than KAFKA_REPLICATION_FACTOR = ${defaults.replicationFactor}: a broker's loss may lose or stop it. Fix: add replicas with kafka-reassign-partitions.sh`,
      );
    await ensureTopicConfig(
      admin,
      spec,
      {
        retentionMs: spec.retentionMs,
        ...(minInsyncReplicas === undefined
          ? {}
          : { minInsyncReplicas: { wanted: minInsyncReplicas, replicas: has } }),
      },
      defaults.logger,
    );
  }
};

/** kafkajs's ConfigSource for a topic's own override (DYNAMIC_TOPIC_CONFIG). */
const DYNAMIC_TOPIC_CONFIG = 1;

/** `ensureTopicConfig` for the retention alone. */
export const ensureRetention = async (
  admin: Admin,
  spec: TopicSpec,
  logger: Logger | undefined,
): Promise<void> => ensureTopicConfig(admin, spec, { retentionMs: spec.retentionMs }, logger);

type ConfigChange = { readonly name: string; readonly value: number; readonly from: number | null };

/**
 * A topic created before its spec asked for a retention or a min.insync.replicas (or by hand, or
 * by the broker's auto-creation) keeps the broker's defaults (7 days; 1 replica in sync) or what
 * it was given. If that is less than asked, raise it; more, someone chose it: left alone. A
 * min.insync.replicas the topic's replicas cannot meet would refuse every write: warned about,
 * not set. AlterConfigs (kafkajs has no incremental variant) replaces all of a topic's overrides,
 * so the others are sent back as they are, and both settings go in one change (two would race
 * another replica's). A cluster that refuses (ACLs) gets a warning with the command that does it.
 */
export const ensureTopicConfig = async (
  admin: Admin,
  spec: TopicSpec,
  wanted: {
    readonly retentionMs?: number | undefined;
    readonly minInsyncReplicas?: { readonly wanted: number; readonly replicas: number } | undefined;
  },
  logger: Logger | undefined,
): Promise<void> => {
  const asked: ConfigChange[] = [
    ...(wanted.retentionMs === undefined
      ? []
      : [{ name: 'retention.ms', value: wanted.retentionMs, from: null }]),
    ...(wanted.minInsyncReplicas === undefined
      ? []
      : [{ name: 'min.insync.replicas', value: wanted.minInsyncReplicas.wanted, from: null }]),
  ];
  if (asked.length === 0) return;
  let changes: ConfigChange[] = [];
  try {
    const described = await whileLeadersSettle(`reading the configuration of ${spec.name}`, () =>
      admin.describeConfigs({
        includeSynonyms: false,
        resources: [{ type: TOPIC_RESOURCE, name: spec.name }],
      }),
    );
    const entries = described.resources[0]?.configEntries ?? [];
    const current = (name: string): number =>
      Number(entries.find((entry) => entry.configName === name)?.configValue);
    for (const change of asked) {
      const now = current(change.name);
      // retention.ms -1 keeps records forever: longer than anything we would set.
      if ((change.name === 'retention.ms' && now === -1) || (Number.isFinite(now) && now >= change.value))
        continue;
      const replicas = wanted.minInsyncReplicas?.replicas ?? 0;
      if (change.name === 'min.insync.replicas' && replicas < change.value) {
        logger?.warn(
          {
            topic: spec.name,
            replicas,
            minInsyncReplicas: Number.isFinite(now) ? now : null,
            wanted: change.value,
          },
          `topic ${spec.name} has ${replicas} replicas, too few for min.insync.replicas = ${change.value}: left as it is. Fix: add replicas with kafka-reassign-partitions.sh, then restart`,
        );
        continue;
      }
      changes.push({ ...change, from: Number.isFinite(now) ? now : null });
    }
    if (changes.length === 0) return;
    const changed = new Set(changes.map((change) => change.name));
    const overrides = entries
      .filter(
        (entry) =>
          (entry as { configSource?: number }).configSource === DYNAMIC_TOPIC_CONFIG &&
          !changed.has(entry.configName) &&
          !entry.isSensitive,
      )
      .map((entry) => ({ name: entry.configName, value: entry.configValue }));
    await admin.alterConfigs({
      validateOnly: false,
      resources: [
        {
          type: TOPIC_RESOURCE,
          name: spec.name,
          configEntries: [
            ...overrides,
            ...changes.map((change) => ({ name: change.name, value: String(change.value) })),
          ],
        },
      ],
    });
    for (const change of changes)
      if (change.name === 'retention.ms')
        logger?.info(
          { topic: spec.name, fromMs: change.from, toMs: change.value },
          'topic retention raised to its configured value',
        );
      else
        logger?.info(
          { topic: spec.name, from: change.from, to: change.value },
          'topic min.insync.replicas raised to its configured value',
        );
  } catch (error) {
    const err = error instanceof Error ? error.message : String(error);
    if (changes.length === 0) changes = asked;
    for (const change of changes) {
      const fix = `kafka-configs.sh --bootstrap-server <broker> --alter --entity-type topics --entity-name ${spec.name} --add-config ${change.name}=${change.value}`;
      if (change.name === 'retention.ms')
        logger?.warn(
          { topic: spec.name, wantedMs: change.value, err },
          `could not check or raise the retention of ${spec.name} to ${change.value} ms; records may expire sooner. Fix: ${fix}`,
        );
      else
        logger?.warn(
          { topic: spec.name, wanted: change.value, err },
          `could not check or raise min.insync.replicas of ${spec.name} to ${change.value}; an acknowledged write may rest on fewer brokers. Fix: ${fix}`,
        );
    }
  }
};

/**
 * Topics another service has only just created may have no partition leaders yet; using them
 * then fails ("not the leader for that topic-partition"). Services starting together wait here.
 * Resolves with each topic's replica count (the fewest of its partitions).
 */
const waitForLeaders = async (
  admin: Admin,
  topics: readonly string[],
  timeoutMs = 30000,
): Promise<ReadonlyMap<string, number>> => {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const metadata = await admin.fetchTopicMetadata({ topics: [...topics] }).catch(() => undefined);
    const ready = metadata?.topics.every(
      (topic) => topic.partitions.length > 0 && topic.partitions.every((partition) => partition.leader >= 0),
    );
    if (metadata && ready)
      return new Map(
        metadata.topics.map((topic) => [
          topic.name,
          Math.min(...topic.partitions.map((partition) => partition.replicas.length)),
        ]),
      );
    if (Date.now() > deadline)
      throw new Error(
        `topics ${topics.join(', ')} have no partition leaders after ${timeoutMs} ms: is the Kafka cluster healthy?`,
      );
    await sleep(200);
  }
};

/**
 * Idempotent producer, acks from all in-sync replicas: a send that resolves is durable and not
 * duplicated by the producer's own retries.
 */
export const createDurableProducer = (kafka: Kafka): Producer =>
  kafka.producer({
    idempotent: true,
    maxInFlightRequests: 1,
    // murmur2, as the Java client: keys land on the same partitions as other Kafka tools expect.
    createPartitioner: Partitioners.DefaultPartitioner,
    allowAutoTopicCreation: false,
    retry: { initialRetryTime: 100, retries: 5, maxRetryTime: 3000 },
  });

// kafkajs's ConfigResourceTypes enum is not reachable as a named ESM import of its CommonJS build.
const TOPIC_RESOURCE = 2 as ConfigResourceTypes;
const BROKER_RESOURCE = 4 as ConfigResourceTypes;

const positiveInteger = (value: string | undefined): number | undefined => {
  const parsed = Number(value);
  return Number.isInteger(parsed) && parsed > 0 ? parsed : undefined;
};

/** The broker's `message.max.bytes`: the limit of a topic that sets none of its own. */
const readBrokerLimit = async (admin: Admin): Promise<number> => {
  const { brokers } = await admin.describeCluster();
  const broker = brokers[0];
  if (!broker) return KAFKA_DEFAULT_MAX_BATCH_BYTES;
  const described = await admin.describeConfigs({
    includeSynonyms: false,
    resources: [{ type: BROKER_RESOURCE, name: String(broker.nodeId), configNames: ['message.max.bytes'] }],
  });
  const entry = described.resources[0]?.configEntries.find(
    (config) => config.configName === 'message.max.bytes',
  );
  return positiveInteger(entry?.configValue) ?? KAFKA_DEFAULT_MAX_BATCH_BYTES;
};

/**
 * What each topic can store: its `max.message.bytes` (else the broker's `message.max.bytes`)
 * and its partition count. Read once at start; a record over it is refused before it is sent.
 */
export const readTopicLimits = async (
  admin: Admin,
  topics: readonly string[],
): Promise<ReadonlyMap<string, TopicLimit>> => {
  const [described, metadata] = await whileLeadersSettle(`reading the limits of ${topics.join(', ')}`, () =>
    Promise.all([
      admin.describeConfigs({
        includeSynonyms: false,
        resources: topics.map((name) => ({ type: TOPIC_RESOURCE, name, configNames: ['max.message.bytes'] })),
      }),
      admin.fetchTopicMetadata({ topics: [...topics] }),
    ]),
  );
  let brokerLimit: number | undefined;
  const limits = new Map<string, TopicLimit>();
  for (const topic of topics) {
    const entry = described.resources
      .find((resource) => resource.resourceName === topic)
      ?.configEntries.find((config) => config.configName === 'max.message.bytes');
    const partitions = metadata.topics.find((candidate) => candidate.name === topic)?.partitions.length ?? 0;
    if (partitions === 0) throw new Error(`topic ${topic} has no partitions: was it created?`);
    const maxBatchBytes =
      positiveInteger(entry?.configValue) ?? (brokerLimit ??= await readBrokerLimit(admin));
    limits.set(topic, { maxBatchBytes, partitions });
  }
  return limits;
};

/**
 * Runs a start-up step that talks to Kafka (a connect, a read of offsets or configs) again while
 * Kafka answers with a retriable error or does not answer, for up to `timeoutMs`. A topic another
 * service created a moment ago has a leader in the metadata before that broker serves it ("This
 * server is not the leader for that topic-partition"), and a broker restarting while a replica
 * starts refuses connections for seconds; kafkajs's own retries (about 3 s) run out before
 * either is over, and the service would exit half started.
 */
export const whileLeadersSettle = async <T>(
  what: string,
  read: () => Promise<T>,
  timeoutMs = 30000,
): Promise<T> =>
  withRetry(
    { attempts: Number.POSITIVE_INFINITY, delayMs: linearDelay(100, 1000), giveUpAfterMs: timeoutMs },
    read,
    {
      retryIf: (error) =>
        (error as { retriable?: unknown }).retriable === true || isDependencyUnavailable(error),
      giveUp: (error) =>
        new Error(`${what}: Kafka still refuses after ${timeoutMs} ms: ${String(error)}`, { cause: error }),
    },
  );

/** Removes a short-lived reader's consumer group now (best effort: an empty group also expires). */
export const deleteThrowawayGroup = async (kafka: Kafka, groupId: string): Promise<void> => {
  const admin = kafka.admin();
  try {
    await admin.connect();
    await admin.deleteGroups([groupId]);
  } catch {
    // Best effort: an empty group expires by itself (offsets.retention.minutes).
  } finally {
    await admin.disconnect();
  }
};
