import type { Consumer, Kafka, KafkaMessage } from 'kafkajs';
import type { DeadLetterReason, DeadLetterWriter } from '../../dead-letters/index.ts';
import type { Logger } from '../../log.ts';
import type { RetryPolicy } from '../../retry.ts';
import type { HandlerOutcome } from '../handler-outcome.ts';
import type { TenantGate } from '../tenant-gate.ts';

/** Says what became of one message; throws only for what it cannot classify (a bug). */
export type KeyedHandler = (
  message: KafkaMessage,
  partition: number,
  topic: string,
) => Promise<HandlerOutcome>;

/** What the consumer did with a message, for the service's metrics. */
export type ConsumerObserver = {
  /** The handler asked for the same message again (classified transient trouble). */
  readonly retried?: (error: string) => void;
  /** The handler threw (attempt counts from 1); after the crash budget the message is dead-lettered. */
  readonly crashed?: (error: unknown, attempt: number) => void;
  /** A dead letter was written for the message (not counted again when a restart finds it written). */
  readonly deadLettered?: (reason: DeadLetterReason) => void;
  /** A message was parked because its tenant must wait (by its handler's outcome, or a closed gate). */
  readonly parked?: (reason: string) => void;
  /** A parked tenant's messages were read again: how many were handed to the handler. */
  readonly replayed?: (messages: number) => void;
};

/**
 * Parking a tenant that must wait (see HandlerOutcome 'wait-for-tenant'). Nothing parked is
 * kept in memory: the consumer commits past the tenant's messages and records, in the same
 * commit (Kafka offset metadata, atomic with the offset), from which offset each parked tenant
 * must be read again. When the tenant's gate opens, a reader of its own (one consumer group of
 * one member per process, never committing) reads the partition again from that cursor and
 * hands that tenant's messages, in offset order, to the same per-conversation queues; the live
 * stream skips the tenant's messages until the reader has caught up with it, then takes over.
 */
export type TenantParking = {
  readonly kafka: Kafka;
  /** The live consumer's group (its committed offsets carry the cursors). */
  readonly groupId: string;
  /** The tenant of a record, from its key or headers (no decoding); undefined: never parked. */
  readonly tenantOf: (message: KafkaMessage) => string | undefined;
  readonly gate: TenantGate;
  /**
   * A tenant that keeps waiting this long with no message handled in between gets its message
   * dead-lettered (retries_exhausted) rather than parked again: a tenant never waits forever on
   * one message that always fails.
   */
  readonly maxWaitMs?: number;
};

export type KeyedConsumerOptions = {
  readonly consumer: Consumer;
  readonly topics: readonly string[];
  /** Messages with the same ordering key (one conversation) are handled one after another. */
  readonly orderingKey: (message: KafkaMessage) => string;
  readonly handle: KeyedHandler;
  /** Where dead-lettered messages go (the handler's 'dead-letter' outcomes and spent crash budgets). */
  readonly deadLetters: DeadLetterWriter;
  readonly logger: Logger;
  /** How often a throwing handler is tried on one message before it is dead-lettered as handler_crashed. */
  readonly crashBudget?: RetryPolicy;
  /** How many messages of one partition may wait in memory before that partition is paused. */
  readonly maxBufferedMessages?: number;
  readonly commitIntervalMs?: number;
  /**
   * After a fetch that brought records, how long before the next fetch (0: at once). Under a
   * steady trickle every fetch would otherwise bring a record or two, and each fetch, with the
   * Redis calls and sends of its few records, is its own wake-up; waiting lets the next fetch
   * bring what arrived meanwhile. A record that arrives while the consumer is idle is fetched
   * at once (the fetch in flight returns with it).
   */
  readonly fetchLingerMs?: number;
  readonly observer?: ConsumerObserver;
  /**
   * Every service consumer parks. Without it (tests, tools), a 'wait-for-tenant' outcome waits
   * in memory, in its conversation's queue, until its time, like a retry.
   */
  readonly parking?: TenantParking;
  /** The clock (epoch ms): when a tenant began to wait, how long an in-memory wait lasts. */
  readonly now?: () => number;
  /** In [0, 1): the jitter of the backoffs between a crashing handler's attempts. */
  readonly random?: () => number;
};

export const DEFAULT_CRASH_BUDGET: RetryPolicy = { attempts: 5, initialDelayMs: 500, maxDelayMs: 10000 };
export const DEFAULT_MAX_TENANT_WAIT_MS = 24 * 60 * 60 * 1000;
export const DEFAULT_MAX_BUFFERED_MESSAGES = 5000;
export const DEFAULT_COMMIT_INTERVAL_MS = 200;
export const DEFAULT_FETCH_LINGER_MS = 0;
/**
 * With parking, the handler calls one tenant's conversations may have running at once (per
 * consumer). Enough for any one organisation's steady traffic (64 conversations at 20 ms each:
 * 3,200 events/s), and a bound on what a tenant that is failing right now can put in flight.
 */
export const TENANT_CONCURRENCY = 64;

/** The options with their defaults, as the consumer's parts read them. */
export type ConsumerSettings = Required<Omit<KeyedConsumerOptions, 'parking' | 'observer'>> & {
  readonly observer: ConsumerObserver;
  /** Waits `ms` (injected so the outcome runner can be tested without timers). */
  readonly sleep: (ms: number) => Promise<void>;
};
