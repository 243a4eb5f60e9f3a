/**
 * processor: raw HubSpot events in, domain events out.
 * Data path: raw topic → KeyedConsumer (one queue per conversation) → handleRawEvent:
 * decode → parse → resolve organisation → dedup claim (Redis SET NX) → re-fetch from HubSpot
 * (rate limited per portal) → the seed's rules (rules/, pure) → domain events (Avro) → confirm.
 * Failures: retriable ones are retried; a poison event goes to the dead-letter topic.
 */
import { hostname } from 'node:os';
import { randomUUID } from 'node:crypto';
import type { KafkaMessage } from 'kafkajs';
import { resolveSecretsKey } from '../../../lib/config.ts';
import { writeDeadLetter } from '../../../lib/dead-letters.ts';
import { orderingKeyOf, type DomainEvent } from '../../../lib/domain-events.ts';
import { ErrorCode, PipelineError } from '../../../lib/errors.ts';
import { createHubSpotApi, type HubSpotApi } from '../../../lib/hubspot/index.ts';
import {
  BatchingPublisher,
  KeyedConsumer,
  ORDERING_KEY_HEADER,
  createDurableProducer,
  createKafka,
  ensureTopics,
  topicsFor,
} from '../../../lib/kafka/index.ts';
import { createLogger, type Logger } from '../../../lib/log.ts';
import { closeServer, createMetricsRegistry, serveMetrics } from '../../../lib/metrics.ts';
import { OrgDirectory, createSecretBox, type Org } from '../../../lib/orgs/index.ts';
import { createRedisRateLimiter } from '../../../lib/rate-limiter.ts';
import { createRedis } from '../../../lib/redis.ts';
import { AvroCodec } from '../../../lib/registry.ts';
import { sleep } from '../../../lib/retry.ts';
import { isEntryPoint, runAsProcess } from '../../../lib/service.ts';
import { SessionLinks } from '../../../lib/session-links.ts';
import { loadProcessorConfig, type ProcessorConfig } from './config.ts';
import { createRawEventHandler, type RawWebhookEvent } from './handle-raw-event.ts';
import { createProcessorMetrics } from './metrics.ts';
import { createRedisDedupStore } from '../../../lib/dedup-store.ts';

export type RunningProcessor = { readonly metricsPort: number; readonly stop: () => Promise<void> };

export const startProcessor = async (
  config: ProcessorConfig,
  logger: Logger = createLogger('processor', config.LOG_LEVEL),
): Promise<RunningProcessor> => {
  const topics = topicsFor(config.KAFKA_TOPIC_PREFIX);
  const instance = `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
  const registry = createMetricsRegistry('processor');
  const metrics = createProcessorMetrics(registry);

  // Adapters: Kafka, the schema registry, Redis, the organisations and session links, HubSpot.
  const kafka = createKafka({ clientId: 'processor', brokers: config.KAFKA_BROKERS, logger });
  const admin = kafka.admin();
  await admin.connect();
  await ensureTopics(admin, Object.values(topics), {
    partitions: config.KAFKA_PARTITIONS,
    replicationFactor: config.KAFKA_REPLICATION_FACTOR,
  });
  await admin.disconnect();
  const codec = new AvroCodec({ url: config.SCHEMA_REGISTRY_URL, subjectPrefix: config.KAFKA_TOPIC_PREFIX });
  await codec.registerAll();
  const redis = createRedis(config.REDIS_URL);
  const producer = createDurableProducer(kafka);
  await producer.connect();
  const publisher = new BatchingPublisher(producer, {
    lingerMs: 1,
    maxBatchMessages: 500,
    sendTimeoutMs: 10000,
  });

  const orgs = new OrgDirectory({
    kafka,
    topic: topics.orgs.name,
    groupPrefix: config.KAFKA_TOPIC_PREFIX,
    secrets: createSecretBox(resolveSecretsKey(config).key),
    logger,
  });
  const links = new SessionLinks({
    kafka,
    topic: topics.sessionLinks.name,
    groupPrefix: config.KAFKA_TOPIC_PREFIX,
    logger,
  });
  await Promise.all([orgs.start(), links.start()]);

  const limiter = createRedisRateLimiter(redis, {
    prefix: config.REDIS_KEY_PREFIX,
    max: config.HUBSPOT_RATE_LIMIT_MAX,
    windowMs: config.HUBSPOT_RATE_LIMIT_WINDOW_MS,
    onThrottled: (bucket) => metrics.hubspotThrottled.inc({ portal_id: bucket.replace('hubspot:', '') }),
  });
  // One client per portal and token; a new token (refresh, reconnect) gets a new client.
  const hubspotClients = new Map<string, { token: string; api: HubSpotApi }>();
  const hubspotFor = (org: Org): HubSpotApi => {
    const token = org.hubspot.accessToken;
    if (!token)
      throw new PipelineError(
        ErrorCode.upstreamUnauthorized,
        `organisation ${org.orgId} has no HubSpot access token`,
        { retriable: false },
      );
    const cached = hubspotClients.get(org.orgId);
    if (cached?.token === token) return cached.api;
    const api = createHubSpotApi({
      baseUrl: config.HUBSPOT_API_BASE_URL,
      accessToken: token,
      timeoutMs: config.HUBSPOT_TIMEOUT_MS,
      beforeRequest: async () => {
        await limiter.acquire(`hubspot:${org.hubspot.portalId}`);
      },
    });
    hubspotClients.set(org.orgId, { token, api });
    return api;
  };

  const publish = async (events: readonly DomainEvent[]): Promise<void> => {
    const messages = await Promise.all(
      events.map(async (event) => ({
        key: orderingKeyOf(event),
        value: await codec.encodeEvent(event),
        headers: { 'event-type': event.type, 'event-id': event.eventId },
      })),
    );
    await publisher.publish(topics.domainEvents.name, messages).catch((error: unknown) => {
      throw new PipelineError(ErrorCode.kafkaUnavailable, `domain events not written: ${String(error)}`, {
        retriable: true,
        cause: error,
      });
    });
  };

  const handleRawEvent = createRawEventHandler({
    decodeRaw: async (value) => (await codec.decodeRecord(value)).record as RawWebhookEvent,
    orgs,
    links,
    dedup: createRedisDedupStore(redis, {
      prefix: config.REDIS_KEY_PREFIX,
      owner: instance,
      leaseMs: config.DEDUP_CLAIM_LEASE_MS,
      doneTtlMs: config.DEDUP_TTL_MS,
    }),
    hubspotFor,
    publish,
    deadLetter: (input) =>
      writeDeadLetter(
        producer,
        codec,
        topics.deadLetters.name,
        input,
        {
          service: 'processor',
          reason: input.reason,
          error: input.error,
          attempts: input.attempts,
          orgId: input.orgId,
          eventType: input.eventType,
          eventId: null,
        },
        Date.now(),
      ),
    markReconnectRequired: async (org) => {
      const stored = orgs.stored(org.orgId);
      if (stored && !stored.hubspot.reconnectRequired)
        await orgs.write(producer, {
          ...stored,
          hubspot: { ...stored.hubspot, reconnectRequired: true },
          updatedAt: Date.now(),
        });
    },
    metrics,
    logger,
    settings: {
      emailDelayMs: config.EMAIL_DELAY_MS,
      claimLeaseMs: config.DEDUP_CLAIM_LEASE_MS,
      retry: {
        attempts: config.HUBSPOT_RETRY_ATTEMPTS,
        initialDelayMs: config.HUBSPOT_RETRY_INITIAL_MS,
        maxDelayMs: 30000,
      },
    },
    now: Date.now,
    sleep,
  });

  // The data path: one queue per conversation, offsets committed behind the slowest one.
  const consumer = new KeyedConsumer({
    consumer: kafka.consumer({
      groupId: `${config.KAFKA_TOPIC_PREFIX}processor`,
      allowAutoTopicCreation: false,
      sessionTimeout: config.KAFKA_SESSION_TIMEOUT_MS,
      heartbeatInterval: 1000,
    }),
    topics: [topics.rawEvents.name],
    orderingKey: (message: KafkaMessage) =>
      message.headers?.[ORDERING_KEY_HEADER]?.toString() ?? message.key?.toString() ?? '',
    handle: handleRawEvent,
    logger,
    onHandlerError: () => metrics.handlerFailures.inc(),
  });
  await consumer.start();
  const metricsServer = await serveMetrics(registry, config.METRICS_PORT);
  const address = metricsServer.address();
  logger.info({ instance, topic: topics.rawEvents.name }, 'processor consuming');

  return {
    metricsPort: typeof address === 'object' && address ? address.port : config.METRICS_PORT,
    stop: async () => {
      await consumer.stop();
      await publisher.drain();
      await producer.disconnect();
      await Promise.all([orgs.stop(), links.stop()]);
      redis.disconnect();
      await closeServer(metricsServer);
    },
  };
};

if (isEntryPoint(import.meta.url)) {
  runAsProcess('processor', () => {
    const config = loadProcessorConfig(process.env);
    return startProcessor(config, createLogger('processor', config.LOG_LEVEL));
  });
}
