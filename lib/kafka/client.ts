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
 * Creates the topics that do not exist yet; existing ones are left as they are, but for a
 * retention shorter than their spec asks (raised, see ensureRetention).
 */
export const ensureTopics = async (
  admin: Admin,
  specs: readonly TopicSpec[],
  defaults: { partitions?: number; replicationFactor?: number; logger?: Logger | undefined },
): Promise<void> => {
  const existing = new Set(await admin.listTopics());
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
  await waitForLeaders(
    admin,
    specs.map((spec) => spec.name),
  );
  const kept = specs.filter((spec) => spec.retentionMs !== undefined && existing.has(spec.name));
  for (const spec of kept) await ensureRetention(admin, spec, defaults.logger);
};

/** kafkajs's ConfigSource for a topic's own override (DYNAMIC_TOPIC_CONFIG). */
const DYNAMIC_TOPIC_CONFIG = 1;

/**
 * A topic created before its spec asked for a retention (or by hand, or by the broker's
 * auto-creation) keeps the broker's default, 7 days, or whatever it was given. If that is shorter
 * than the spec, raise it. AlterConfigs (kafkajs has no incremental variant) replaces all of a
 * topic's overrides, so the others are sent back as they are. A cluster that refuses (ACLs) gets
 * a warning with the command that does it; a longer retention someone chose is left alone.
 */
export const ensureRetention = async (
  admin: Admin,
  spec: TopicSpec,
  logger: Logger | undefined,
): Promise<void> => {
  const wanted = spec.retentionMs;
  if (wanted === undefined) return;
  const fix = `kafka-configs.sh --bootstrap-server <broker> --alter --entity-type topics --entity-name ${spec.name} --add-config retention.ms=${wanted}`;
  try {
    const described = await whileLeadersSettle(`reading the configuration of ${spec.name}`, () =>
      admin.describeConfigs({
        includeSynonyms: false,
        resources: [{ type: TOPIC_RESOURCE, name: spec.name }],
      }),
    );
    const entries = described.resources[0]?.configEntries ?? [];
    const current = Number(entries.find((entry) => entry.configName === 'retention.ms')?.configValue);
    // -1 keeps records forever: longer than anything we would set.
    if (current === -1 || (Number.isFinite(current) && current >= wanted)) return;
    const overrides = entries
      .filter(
        (entry) =>
          (entry as { configSource?: number }).configSource === DYNAMIC_TOPIC_CONFIG &&
          entry.configName !== 'retention.ms' &&
          !entry.isSensitive,
      )
      .map((entry) => ({ name: entry.configName, value: entry.configValue }));
    await admin.alterConfigs({
      validateOnly: false,
      resources: [
        {
          type: TOPIC_RESOURCE,
          name: spec.name,
          configEntries: [...overrides, { name: 'retention.ms', value: String(wanted) }],
        },
      ],
    });
    logger?.info(
      { topic: spec.name, fromMs: Number.isFinite(current) ? current : null, toMs: wanted },
      'topic retention raised to its configured value',
    );
  } catch (error) {
    logger?.warn(
      { topic: spec.name, wantedMs: wanted, err: error instanceof Error ? error.message : String(error) },
      `could not check or raise the retention of ${spec.name} to ${wanted} ms; records may expire sooner. Fix: ${fix}`,
    );
  }
};

/**
 * Topics another service has only just created may have no partition leaders yet; using them
 * then fails ("not the leader for that topic-partition"). Services starting together wait here.
 */
const waitForLeaders = async (admin: Admin, topics: readonly string[], timeoutMs = 30000): Promise<void> => {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const metadata = await admin.fetchTopicMetadata({ topics: [...topics] }).catch(() => undefined);
    const ready = metadata?.topics.every(
      (topic) => topic.partitions.length > 0 && topic.partitions.every((partition) => partition.leader >= 0),
    );
    if (ready) return;
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
