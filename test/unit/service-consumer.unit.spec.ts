import assert from 'node:assert/strict';
import type { Consumer, ConsumerConfig, Kafka } from 'kafkajs';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import type { DeadLetterWriter } from '../../lib/dead-letters/index.ts';
import {
  CONSUMER_FETCH_MAX_WAIT_MS,
  createConsumerMetrics,
  createServiceConsumer,
  createTenantGate,
  done,
  observerCounting,
  serviceGroupConfig,
} from '../../lib/kafka/index.ts';

const settings = {
  KAFKA_SESSION_TIMEOUT_MS: 12_000,
  KAFKA_PARTITION_BUFFER: 100,
  KAFKA_FETCH_LINGER_MS: 25,
  HANDLER_CRASH_ATTEMPTS: 3,
  TENANT_MAX_WAIT_MS: 60_000,
};
const described = { messages: 'Events', tenants: 'organisations', transient: 'Kafka' };

const valueOf = async (registry: Registry, name: string, labels: Record<string, string> = {}) => {
  const metric = (await registry.getMetricsAsJSON()).find((each) => each.name === name);
  return metric?.values.find((value) =>
    Object.entries(labels).every(([key, label]) => value.labels[key] === label),
  )?.value;
};

describe('service consumer: the keyed consumer every service runs, with its metrics', () => {
  it('given a service name, when its consumer metrics are made, then each is named after the service', async () => {
    const registry = new Registry();
    createConsumerMetrics(registry, 'outbound', described);
    assert.deepEqual((await registry.getMetricsAsJSON()).map(({ name }) => name).sort(), [
      'outbound_dead_letters_total',
      'outbound_handler_failures_total',
      'outbound_parked_messages_replayed_total',
      'outbound_parked_messages_total',
      'outbound_tenants_waiting',
      'outbound_transient_retries_total',
    ]);
  });

  it('given what the consumer did, when observed, then each is counted in its metric (with its reason)', async () => {
    const registry = new Registry();
    const observer = observerCounting(createConsumerMetrics(registry, 'processor', described));
    observer.retried('Kafka down');
    observer.crashed(new Error('bug'), 1);
    observer.crashed(new Error('bug'), 2);
    observer.deadLettered('malformed_event');
    observer.parked('hubspot_budget');
    observer.replayed(5);
    assert.equal(await valueOf(registry, 'processor_transient_retries_total'), 1);
    assert.equal(await valueOf(registry, 'processor_handler_failures_total'), 2);
    assert.equal(await valueOf(registry, 'processor_dead_letters_total', { reason: 'malformed_event' }), 1);
    assert.equal(await valueOf(registry, 'processor_parked_messages_total', { reason: 'hubspot_budget' }), 1);
    assert.equal(await valueOf(registry, 'processor_parked_messages_replayed_total'), 5);
  });

  it('given the tenants a gate waits for, when scraped, then they are counted by reason', async () => {
    const registry = new Registry();
    const gate = createTenantGate({ initialBackoffMs: 1000, maxBackoffMs: 5000 });
    createConsumerMetrics(registry, 'outbound', described, gate.waiting);
    gate.close('org-1', 'opencx_unavailable');
    gate.close('org-2', 'opencx_unavailable');
    assert.equal(await valueOf(registry, 'outbound_tenants_waiting', { reason: 'opencx_unavailable' }), 2);
  });

  it('given a service’s settings, when its group is configured, then topics are never created by reading and its session timeout is kept', () => {
    assert.deepEqual(serviceGroupConfig('p.processor', settings), {
      groupId: 'p.processor',
      allowAutoTopicCreation: false,
      sessionTimeout: 12_000,
      heartbeatInterval: 1000,
      maxWaitTimeInMs: CONSUMER_FETCH_MAX_WAIT_MS,
    });
  });

  it('given onGroupJoin, when the consumer is built, then it listens for its group joins', () => {
    const configs: ConsumerConfig[] = [];
    const listened: string[] = [];
    const kafka = {
      consumer: (config: ConsumerConfig) => {
        configs.push(config);
        return {
          events: { GROUP_JOIN: 'consumer.group_join', FETCH: 'consumer.fetch' },
          on: (event: string) => void listened.push(event),
        } as unknown as Consumer;
      },
    } as unknown as Kafka;
    createServiceConsumer({
      kafka,
      groupId: 'outbound',
      topic: 'pipeline.domain-events',
      orderingKey: () => 'k',
      tenantOf: () => 'org-1',
      gate: createTenantGate({ initialBackoffMs: 1000, maxBackoffMs: 5000 }),
      handle: async () => done,
      deadLetters: {} as DeadLetterWriter,
      metrics: createConsumerMetrics(new Registry(), 'outbound', described),
      settings,
      logger: pino({ level: 'silent' }),
      onGroupJoin: () => undefined,
    });
    assert.deepEqual(configs, [serviceGroupConfig('outbound', settings)]);
    // Its group joins, and (KAFKA_FETCH_LINGER_MS above 0) its fetches, for the linger.
    assert.deepEqual(listened, ['consumer.group_join', 'consumer.fetch']);
  });
});
