import type { Kafka, Producer } from 'kafkajs';
import { resolveSecretsKey } from './config.ts';
import {
  createDurableProducer,
  createKafka,
  ensureTopics,
  minInsyncReplicasFor,
  topicsFor,
  whileLeadersSettle,
  type Topics,
} from './kafka/index.ts';
import { isDependencyUnavailable } from './errors.ts';
import type { Logger } from './log.ts';
import {
  OrgDirectory,
  createOrgRepository,
  createSecretBox,
  type OrgRepository,
  type SecretBox,
} from './orgs/index.ts';
import { AvroCodec } from './registry.ts';
import { withRetry } from './retry.ts';
import { SessionLinks } from './session-links.ts';

/** The configuration every service shares (lib/config.ts commonEnv, plus topic creation settings). */
export type ConnectionConfig = {
  readonly NODE_ENV: string;
  readonly KAFKA_BROKERS: readonly string[];
  readonly KAFKA_TOPIC_PREFIX: string;
  readonly SCHEMA_REGISTRY_URL: string;
  readonly SECRETS_KEY?: Buffer | undefined;
  readonly SECRETS_KEY_PREVIOUS?: Buffer | undefined;
  readonly KAFKA_PARTITIONS?: number | undefined;
  readonly KAFKA_REPLICATION_FACTOR?: number | undefined;
  readonly KAFKA_MIN_INSYNC_REPLICAS?: number | undefined;
  readonly DEAD_LETTER_RETENTION_MS?: number | undefined;
  readonly KAFKA_STARTUP_WAIT_MS?: number | undefined;
};

export type PipelineConnections = {
  readonly kafka: Kafka;
  readonly topics: Topics;
  readonly codec: AvroCodec;
  /** Idempotent, acks=all. */
  readonly producer: Producer;
  /** Seals with SECRETS_KEY; opens with it, then with SECRETS_KEY_PREVIOUS. */
  readonly secrets: SecretBox;
  readonly secretsKey: Buffer;
  readonly orgs: OrgDirectory;
  /** Every edit of an organisation goes through it. */
  readonly orgRepository: OrgRepository;
  readonly close: () => Promise<void>;
};

/** The connections of a service that routes by conversation (processor and outbound). */
export type LinkedPipelineConnections = PipelineConnections & {
  /** The thread/ticket ↔ OpenCX session links, materialised from their compacted topic. */
  readonly links: SessionLinks;
};

/**
 * What every service needs before its data path can run: the topics (created if missing), the
 * Avro schemas (registered), a durable producer, and the organisations (and session links)
 * materialised from their compacted topics.
 */
export const connectToPipeline = async (
  config: ConnectionConfig,
  options: { clientId: string; logger: Logger },
): Promise<PipelineConnections> => {
  const { logger } = options;
  const secretsKey = resolveSecretsKey(config);
  if (secretsKey.insecure)
    logger.warn('SECRETS_KEY is not set: using the development key (refused when NODE_ENV=production)');
  const topics = topicsFor(config.KAFKA_TOPIC_PREFIX, {
    ...(config.DEAD_LETTER_RETENTION_MS === undefined
      ? {}
      : { deadLetterRetentionMs: config.DEAD_LETTER_RETENTION_MS }),
  });
  const minInsyncReplicas = minInsyncReplicasFor(
    config.KAFKA_REPLICATION_FACTOR,
    config.KAFKA_MIN_INSYNC_REPLICAS,
  );
  const kafka = createKafka({ clientId: options.clientId, brokers: config.KAFKA_BROKERS, logger });

  const admin = kafka.admin();
  await untilKafkaAnswers(() => admin.connect(), {
    brokers: config.KAFKA_BROKERS,
    waitMs: config.KAFKA_STARTUP_WAIT_MS ?? DEFAULT_KAFKA_STARTUP_WAIT_MS,
    logger,
  });
  try {
    await ensureTopics(admin, Object.values(topics), {
      partitions: config.KAFKA_PARTITIONS,
      replicationFactor: config.KAFKA_REPLICATION_FACTOR,
      minInsyncReplicas,
      logger,
    });
  } finally {
    await admin.disconnect();
  }
  const codec = new AvroCodec({ url: config.SCHEMA_REGISTRY_URL, subjectPrefix: config.KAFKA_TOPIC_PREFIX });
  await codec.registerAll();
  const producer = createDurableProducer(kafka);
  // The broker may restart between the first answer and here: waited out, not an exit.
  await whileLeadersSettle('connecting the producer', () => producer.connect(), 60_000);

  if (secretsKey.previous)
    logger.info(
      'SECRETS_KEY_PREVIOUS is set: records it sealed are opened; run npm run orgs:reseal, then unset it',
    );
  const secrets = createSecretBox(secretsKey.key, { previous: secretsKey.previous });
  const orgs = new OrgDirectory({
    kafka,
    topic: topics.orgs.name,
    groupPrefix: config.KAFKA_TOPIC_PREFIX,
    secrets,
    logger,
  });
  await orgs.start();
  const orgRepository = createOrgRepository({ directory: orgs, producer, secrets, now: Date.now });

  return {
    kafka,
    topics,
    codec,
    producer,
    secrets,
    secretsKey: secretsKey.key,
    orgs,
    orgRepository,
    close: async () => {
      await producer.disconnect();
      await orgs.stop();
    },
  };
};

/** `connectToPipeline`, and the session links read whole before it resolves. */
export const connectWithSessionLinks = async (
  config: ConnectionConfig,
  options: { clientId: string; logger: Logger },
): Promise<LinkedPipelineConnections> => {
  const connections = await connectToPipeline(config, options);
  const links = new SessionLinks({
    kafka: connections.kafka,
    topic: connections.topics.sessionLinks.name,
    groupPrefix: config.KAFKA_TOPIC_PREFIX,
    logger: options.logger,
  });
  try {
    await links.start();
  } catch (error) {
    await connections.close();
    throw error;
  }
  return {
    ...connections,
    links,
    close: async () => {
      await connections.close();
      await links.stop();
    },
  };
};

const DEFAULT_KAFKA_STARTUP_WAIT_MS = 120_000;

/**
 * Connects once Kafka answers: a service started while its broker restarts (or before it, when
 * a stack comes up in any order) waits up to `waitMs`, saying so, instead of exiting at once
 * into a supervisor's growing restart back-off. Any other error, or the wait running out,
 * fails the start with what to check.
 */
export const untilKafkaAnswers = async (
  connect: () => Promise<void>,
  options: { brokers: readonly string[]; waitMs: number; logger: Logger },
): Promise<void> => {
  const started = Date.now();
  await withRetry(
    {
      attempts: Number.POSITIVE_INFINITY,
      delayMs: (attempt) => Math.min(5000, 500 * 2 ** Math.min(attempt - 1, 4)),
      giveUpAfterMs: options.waitMs,
    },
    async (attempt) => {
      await connect();
      if (attempt > 1) options.logger.info({ waitedMs: Date.now() - started }, 'Kafka answers: starting');
    },
    {
      retryIf: isDependencyUnavailable,
      onRetry: ({ attempt, delayMs, error }) =>
        options.logger.warn(
          {
            brokers: options.brokers,
            attempt,
            waitedMs: Date.now() - started,
            delayMs,
            err: error instanceof Error ? error.message : String(error),
          },
          'Kafka does not answer yet: trying again (a broker restarting, or the stack still starting)',
        ),
      giveUp: (error, { elapsedMs }) =>
        new Error(
          `Kafka at ${options.brokers.join(',')} did not answer for ${Math.round(elapsedMs / 1000)} s (KAFKA_STARTUP_WAIT_MS): check that the brokers run and KAFKA_BROKERS names them (${error instanceof Error ? error.message : String(error)})`,
          { cause: error },
        ),
    },
  );
};
