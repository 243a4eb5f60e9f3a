import type { KafkaMessage } from 'kafkajs';
import { decodeRawWebhookEvent } from '../../../lib/contracts/index.ts';
import { createDeadLetterWriter } from '../../../lib/dead-letters/index.ts';
import { createRedisDedupStore } from '../../../lib/dedup-store.ts';
import { createDomainEventPublisher } from '../../../lib/domain-event-publisher.ts';
import type { DomainEvent } from '../../../lib/domain-events.ts';
import { createBudgetedPortalClients } from '../../../lib/hubspot/index.ts';
import {
  consumerGroupsFor,
  createServiceConsumer,
  ORDERING_KEY_HEADER,
  type KeyedConsumer,
  type TenantGate,
} from '../../../lib/kafka/index.ts';
import type { Logger } from '../../../lib/log.ts';
import { connectWithSessionLinks, type PipelineConnections } from '../../../lib/pipeline-connections.ts';
import { createRedisPropertyClock } from '../../../lib/property-clock.ts';
import { createRedis, type Redis } from '../../../lib/redis.ts';
import { sleep } from '../../../lib/retry.ts';
import type { SessionLinks } from '../../../lib/session-links.ts';
import { handlerSettings, type ProcessorConfig } from './config.ts';
import { createRawEventHandler } from './handle-raw-event.ts';
import type { ProcessorMetrics } from './metrics.ts';

/**
 * The processor's connections: Kafka (topics, Avro, producer), organisations and session links,
 * Redis, and the publisher of domain events. `close` drains the publisher, then lets go of them.
 */
export const connectProcessor = async (config: ProcessorConfig, clientId: string, logger: Logger) => {
  const connections = await connectWithSessionLinks(config, { clientId, logger });
  const { kafka, topics, codec } = connections;
  const redis = createRedis(config, logger);
  const events = await createDomainEventPublisher({
    kafka,
    codec,
    topics: [topics.domainEvents.name],
    logger,
  });
  return {
    connections,
    redis,
    events,
    close: async () => {
      await events.drain();
      await connections.close();
      redis.disconnect();
    },
  };
};

export type RawEventConsumerParts = {
  readonly config: ProcessorConfig;
  readonly connections: Pick<
    PipelineConnections,
    'kafka' | 'topics' | 'codec' | 'producer' | 'orgs' | 'orgRepository'
  > & { readonly links: SessionLinks };
  readonly redis: Redis;
  /** The tenants (organisations, or `portal:<id>` for one ingest did not know) this replica waits for. */
  readonly gate: TenantGate;
  readonly metrics: ProcessorMetrics;
  /** Writes the decided domain events durably. */
  readonly publish: (events: readonly DomainEvent[]) => Promise<void>;
  /** This replica, as the owner of its dedup claims. */
  readonly instance: string;
  readonly logger: Logger;
};

/**
 * The processor's data path from its adapters: Redis (dedup claims, property clocks, the
 * portals' HubSpot budgets), HubSpot, the raw-event handler and the consumer that runs it.
 * Returns how to join the group: a consumer built anew on each (re)join.
 */
export const rawEventConsumer = (parts: RawEventConsumerParts): (() => KeyedConsumer) => {
  const { config, connections, redis, gate, metrics, logger } = parts;
  const { kafka, topics, codec, orgs, links } = connections;
  const handle = createRawEventHandler({
    decodeRaw: async (value) => decodeRawWebhookEvent(await codec.decodeRecord(value)),
    orgs,
    links,
    dedup: createRedisDedupStore(redis, {
      prefix: config.REDIS_KEY_PREFIX,
      owner: parts.instance,
      leaseMs: config.DEDUP_CLAIM_LEASE_MS,
      doneTtlMs: config.DEDUP_TTL_MS,
    }),
    propertyClock: createRedisPropertyClock(redis, {
      prefix: config.REDIS_KEY_PREFIX,
      ttlMs: config.DEDUP_TTL_MS,
    }),
    hubspotFor: createBudgetedPortalClients(redis, config, {
      onThrottled: (bucket) => metrics.hubspotThrottled.inc({ portal_id: bucket.replace('hubspot:', '') }),
      onCall: (portalId, purpose) => metrics.hubspotCalls.inc({ portal_id: String(portalId), purpose }),
      customerMaxWaitMs: config.PARK_AFTER_MS,
      waitingUntil: (org) => gate.waitingUntil(org.orgId),
    }),
    publish: parts.publish,
    markReconnectRequired: async (org) =>
      void (await connections.orgRepository.markReconnectRequired(org.orgId)),
    metrics,
    logger,
    settings: handlerSettings(config),
    now: Date.now,
    sleep,
  });
  const deadLetters = createDeadLetterWriter({
    service: 'processor',
    topic: topics.deadLetters.name,
    producer: connections.producer,
    codec,
    redis,
    keyPrefix: config.REDIS_KEY_PREFIX,
  });
  return () =>
    createServiceConsumer({
      kafka,
      groupId: consumerGroupsFor(config.KAFKA_TOPIC_PREFIX).processor.groupId,
      topic: topics.rawEvents.name,
      // One queue per conversation: ingest names it in a header; the record's key is its organisation.
      orderingKey: (message: KafkaMessage) =>
        message.headers?.[ORDERING_KEY_HEADER]?.toString() ?? message.key?.toString() ?? '',
      // The raw topic is keyed by organisation (ingest), so a tenant's events share a partition.
      tenantOf: (message) => message.key?.toString(),
      gate,
      handle,
      deadLetters,
      metrics,
      settings: config,
      logger,
    });
};
