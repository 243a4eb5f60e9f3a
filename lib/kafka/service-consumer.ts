import type { ConsumerConfig, Kafka, KafkaMessage } from 'kafkajs';
import { Counter, Gauge, type Registry } from 'prom-client';
import type { DeadLetterWriter } from '../dead-letters/index.ts';
import type { Logger } from '../log.ts';
import { CONSUMER_FETCH_MAX_WAIT_MS } from './client.ts';
import {
  DEFAULT_CRASH_BUDGET,
  KeyedConsumer,
  type ConsumerObserver,
  type KeyedHandler,
} from './keyed-consumer/index.ts';
import type { TenantGate } from './tenant-gate.ts';

/**
 * What every service's consumer counts, named `<service>_…`: handler throws, transient retries,
 * dead letters, parked and replayed messages, and the tenants waited for now.
 */
export const createConsumerMetrics = (
  registry: Registry,
  service: string,
  described: {
    /** What a message is, in the help texts: "Raw events", "Events". */
    readonly messages: string;
    /** What a tenant is: "portals or organisations", "organisations". */
    readonly tenants: string;
    /** What a transient retry waited out. */
    readonly transient: string;
  },
  /** The tenants the service's gates wait for now (a gauge read at scrape time). */
  tenantsWaiting: TenantGate['waiting'] = () => [],
) => ({
  deadLettered: new Counter({
    name: `${service}_dead_letters_total`,
    help: `${described.messages} sent to the dead-letter topic, by reason (written once; a restart that finds a letter written does not count it again)`,
    labelNames: ['reason'] as const,
    registers: [registry],
  }),
  handlerFailures: new Counter({
    name: `${service}_handler_failures_total`,
    help: 'Handler throws (unclassified: a bug): retried a few times, then dead-lettered as handler_crashed',
    registers: [registry],
  }),
  transientRetries: new Counter({
    name: `${service}_transient_retries_total`,
    help: `${described.messages} tried again because ${described.transient} was in the way`,
    registers: [registry],
  }),
  parked: new Counter({
    name: `${service}_parked_messages_total`,
    help: 'Messages parked because their tenant must wait, by reason (hubspot_budget, opencx_unavailable, ...; tenant_waiting: parked behind an earlier one of its tenant)',
    labelNames: ['reason'] as const,
    registers: [registry],
  }),
  parkedReplayed: new Counter({
    name: `${service}_parked_messages_replayed_total`,
    help: 'Parked messages read again and handed to the handler once their tenant could take them',
    registers: [registry],
  }),
  tenantsWaiting: new Gauge({
    name: `${service}_tenants_waiting`,
    help: `Tenants (${described.tenants}) this replica is waiting for now, by reason: their events are parked`,
    labelNames: ['reason'] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const { reason } of tenantsWaiting()) this.inc({ reason });
    },
  }),
});
export type ConsumerMetrics = ReturnType<typeof createConsumerMetrics>;

/** What the keyed consumer did with a message, counted in the service's consumer metrics. */
export const observerCounting = (
  metrics: Pick<
    ConsumerMetrics,
    'transientRetries' | 'handlerFailures' | 'deadLettered' | 'parked' | 'parkedReplayed'
  >,
): Required<ConsumerObserver> => ({
  retried: () => metrics.transientRetries.inc(),
  crashed: () => metrics.handlerFailures.inc(),
  deadLettered: (reason) => metrics.deadLettered.inc({ reason }),
  parked: (reason) => metrics.parked.inc({ reason }),
  replayed: (count) => metrics.parkedReplayed.inc(count),
});

/** The configuration a service's consumer reads (every service's config has these). */
export type ServiceConsumerSettings = {
  readonly KAFKA_SESSION_TIMEOUT_MS: number;
  readonly KAFKA_PARTITION_BUFFER: number;
  readonly KAFKA_FETCH_LINGER_MS: number;
  readonly HANDLER_CRASH_ATTEMPTS: number;
  readonly TENANT_MAX_WAIT_MS: number;
};

/** The kafkajs group settings of a service's consumer: topics are never created by reading them. */
export const serviceGroupConfig = (groupId: string, settings: ServiceConsumerSettings): ConsumerConfig => ({
  groupId,
  allowAutoTopicCreation: false,
  sessionTimeout: settings.KAFKA_SESSION_TIMEOUT_MS,
  heartbeatInterval: 1000,
  maxWaitTimeInMs: CONSUMER_FETCH_MAX_WAIT_MS,
});

export type ServiceConsumerOptions = {
  readonly kafka: Kafka;
  readonly groupId: string;
  readonly topic: string;
  /** Messages with the same ordering key (one conversation) are handled one after another. */
  readonly orderingKey: (message: KafkaMessage) => string;
  /** The tenant a message belongs to, which is parked when it must wait. */
  readonly tenantOf: (message: KafkaMessage) => string | undefined;
  /** The tenants this consumer waits for. */
  readonly gate: TenantGate;
  readonly handle: KeyedHandler;
  readonly deadLetters: DeadLetterWriter;
  readonly metrics: ConsumerMetrics;
  readonly settings: ServiceConsumerSettings;
  readonly logger: Logger;
  /** Called each time the group (re)assigns this member its partitions. */
  readonly onGroupJoin?: () => void;
};

/**
 * One service consumer: a keyed consumer (one queue per conversation) on one topic that parks
 * the tenants its handler says must wait, writes dead letters once, and counts what it did.
 */
export const createServiceConsumer = (options: ServiceConsumerOptions): KeyedConsumer => {
  const { kafka, groupId, settings } = options;
  const consumer = kafka.consumer(serviceGroupConfig(groupId, settings));
  const { onGroupJoin } = options;
  if (onGroupJoin) consumer.on(consumer.events.GROUP_JOIN, () => onGroupJoin());
  return new KeyedConsumer({
    consumer,
    topics: [options.topic],
    orderingKey: options.orderingKey,
    handle: options.handle,
    deadLetters: options.deadLetters,
    logger: options.logger,
    observer: observerCounting(options.metrics),
    parking: {
      kafka,
      groupId,
      gate: options.gate,
      tenantOf: options.tenantOf,
      maxWaitMs: settings.TENANT_MAX_WAIT_MS,
    },
    crashBudget: { ...DEFAULT_CRASH_BUDGET, attempts: settings.HANDLER_CRASH_ATTEMPTS },
    maxBufferedMessages: settings.KAFKA_PARTITION_BUFFER,
    fetchLingerMs: settings.KAFKA_FETCH_LINGER_MS,
  });
};
