/**
 * processor: raw HubSpot events in, domain events out.
 * Data path: raw topic → KeyedConsumer (one queue per conversation) → handleRawEvent:
 * decode → parse → resolve organisation → dedup claim (Redis SET NX) → re-fetch from HubSpot
 * (rate limited per portal) → the seed's rules (rules/, pure) → domain events (Avro) → confirm.
 * Failures: the handler returns an outcome; the consumer retries transient ones, writes a
 * poison event's dead letter (once, lib/dead-letters) and goes on with its conversation.
 */
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import type { KafkaMessage } from 'kafkajs';
import { decodeRawWebhookEvent } from '../../../lib/contracts/index.ts';
import { createDeadLetterWriter } from '../../../lib/dead-letters/index.ts';
import { createRedisDedupStore } from '../../../lib/dedup-store.ts';
import { createGroupMembership, readinessProbe, watchDependencies } from '../../../lib/dependency-health.ts';
import { createDomainEventPublisher } from '../../../lib/domain-event-publisher.ts';
import { createPortalClients } from '../../../lib/hubspot/index.ts';
import {
  CONSUMER_FETCH_MAX_WAIT_MS,
  createTenantGate,
  DEFAULT_CRASH_BUDGET,
  KeyedConsumer,
  ORDERING_KEY_HEADER,
} from '../../../lib/kafka/index.ts';
import { createLogger, type Logger } from '../../../lib/log.ts';
import { closeServer, createMetricsRegistry, serveMetrics } from '../../../lib/metrics.ts';
import { registerOrgDirectoryMetrics } from '../../../lib/orgs/index.ts';
import { connectToPipeline } from '../../../lib/pipeline-connections.ts';
import { createRedisPropertyClock } from '../../../lib/property-clock.ts';
import { createRedisRateLimiter } from '../../../lib/rate-limiter.ts';
import { createRedis } from '../../../lib/redis.ts';
import { sleep } from '../../../lib/retry.ts';
import { isEntryPoint, runAsProcess } from '../../../lib/service.ts';
import { handlerSettings, loadProcessorConfig, type ProcessorConfig } from './config.ts';
import { createRawEventHandler } from './handle-raw-event.ts';
import { createProcessorMetrics } from './metrics.ts';

export type RunningProcessor = { readonly metricsPort: number; readonly stop: () => Promise<void> };

export const startProcessor = async (
  config: ProcessorConfig,
  logger: Logger = createLogger('processor', config.LOG_LEVEL),
): Promise<RunningProcessor> => {
  const instance = `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
  const registry = createMetricsRegistry('processor');
  // Tenants (the raw topic's key: an organisation, or `portal:<id>` for one ingest did not know)
  // this replica waits for: their events are parked, not held in memory.
  const gate = createTenantGate({
    initialBackoffMs: config.PARK_PROBE_INITIAL_MS,
    maxBackoffMs: config.PARK_PROBE_MAX_MS,
  });
  const metrics = createProcessorMetrics(registry, gate.waiting);

  // Adapters: Kafka (topics, Avro, producer), organisations and session links, Redis, HubSpot.
  const { kafka, topics, codec, producer, orgs, orgRepository, links, close } = await connectToPipeline(
    config,
    {
      clientId: 'processor',
      logger,
      withSessionLinks: true,
    },
  );
  if (!links) throw new Error('session links were not started');
  registerOrgDirectoryMetrics(registry, orgs);
  const redis = createRedis(config.REDIS_URL, logger);
  const events = await createDomainEventPublisher({
    kafka,
    codec,
    topics: [topics.domainEvents.name],
    logger,
  });
  const hubspotFor = createPortalClients({
    baseUrl: config.HUBSPOT_API_BASE_URL,
    timeoutMs: config.HUBSPOT_TIMEOUT_MS,
    limiter: createRedisRateLimiter(redis, {
      prefix: config.REDIS_KEY_PREFIX,
      max: config.HUBSPOT_RATE_LIMIT_MAX,
      windowMs: config.HUBSPOT_RATE_LIMIT_WINDOW_MS,
      onThrottled: (bucket) => metrics.hubspotThrottled.inc({ portal_id: bucket.replace('hubspot:', '') }),
    }),
    onCall: (portalId, purpose) => metrics.hubspotCalls.inc({ portal_id: String(portalId), purpose }),
    customerMaxWaitMs: config.PARK_AFTER_MS,
    waitingUntil: (org) => gate.waitingUntil(org.orgId),
  });

  const handleRawEvent = createRawEventHandler({
    decodeRaw: async (value) => decodeRawWebhookEvent(await codec.decodeRecord(value)),
    orgs,
    links,
    dedup: createRedisDedupStore(redis, {
      prefix: config.REDIS_KEY_PREFIX,
      owner: instance,
      leaseMs: config.DEDUP_CLAIM_LEASE_MS,
      doneTtlMs: config.DEDUP_TTL_MS,
    }),
    propertyClock: createRedisPropertyClock(redis, {
      prefix: config.REDIS_KEY_PREFIX,
      ttlMs: config.DEDUP_TTL_MS,
    }),
    hubspotFor,
    publish: (domainEvents) => events.publish(topics.domainEvents.name, domainEvents),
    markReconnectRequired: async (org) => void (await orgRepository.markReconnectRequired(org.orgId)),
    metrics,
    logger,
    settings: handlerSettings(config),
    now: Date.now,
    sleep,
  });

  // The data path: one queue per conversation, offsets committed behind the slowest one.
  // Built anew on each (re)join: a replica that cannot reach Redis or Kafka steps aside.
  const dependencies = watchDependencies({
    redis,
    brokers: config.KAFKA_BROKERS,
    clientId: 'processor',
    graceMs: config.DEPENDENCY_GRACE_MS,
    logger,
  });
  const deadLetters = createDeadLetterWriter({
    service: 'processor',
    topic: topics.deadLetters.name,
    producer,
    codec,
    redis,
    keyPrefix: config.REDIS_KEY_PREFIX,
  });
  const groupId = `${config.KAFKA_TOPIC_PREFIX}processor`;
  const joinRawEvents = () =>
    new KeyedConsumer({
      consumer: kafka.consumer({
        groupId,
        allowAutoTopicCreation: false,
        sessionTimeout: config.KAFKA_SESSION_TIMEOUT_MS,
        heartbeatInterval: 1000,
        maxWaitTimeInMs: CONSUMER_FETCH_MAX_WAIT_MS,
      }),
      topics: [topics.rawEvents.name],
      orderingKey: (message: KafkaMessage) =>
        message.headers?.[ORDERING_KEY_HEADER]?.toString() ?? message.key?.toString() ?? '',
      handle: handleRawEvent,
      deadLetters,
      logger,
      observer: {
        retried: () => metrics.transientRetries.inc(),
        crashed: () => metrics.handlerFailures.inc(),
        deadLettered: (reason) => metrics.deadLettered.inc({ reason }),
        parked: (reason) => metrics.parked.inc({ reason }),
        replayed: (count) => metrics.parkedReplayed.inc(count),
      },
      parking: {
        kafka,
        groupId,
        gate,
        // The raw topic is keyed by organisation (ingest), so a tenant's events share a partition.
        tenantOf: (message) => message.key?.toString(),
        maxWaitMs: config.TENANT_MAX_WAIT_MS,
      },
      crashBudget: { ...DEFAULT_CRASH_BUDGET, attempts: config.HANDLER_CRASH_ATTEMPTS },
      maxBufferedMessages: config.KAFKA_PARTITION_BUFFER,
    });
  const consumer = createGroupMembership({ join: joinRawEvents, health: dependencies.health, logger });
  await consumer.start();
  const metricsServer = await serveMetrics(
    registry,
    config.METRICS_PORT,
    readinessProbe(dependencies.health, consumer),
  );
  const address = metricsServer.address();
  logger.info({ instance, topic: topics.rawEvents.name }, 'processor consuming');

  return {
    metricsPort: typeof address === 'object' && address ? address.port : config.METRICS_PORT,
    stop: async () => {
      await consumer.stop();
      await dependencies.stop();
      await events.drain();
      await close();
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
