import type { Consumer, EachBatchPayload, KafkaMessage } from 'kafkajs';
import { DeadLetterReason, type DeadLetterDetails, type DeadLetterWriter } from '../dead-letters/index.ts';
import { describeError } from '../errors.ts';
import type { Logger } from '../log.ts';
import { backoffDelay, sleep, type RetryPolicy } from '../retry.ts';
import type { HandlerOutcome } from './handler-outcome.ts';

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
};

export const DEFAULT_CRASH_BUDGET: RetryPolicy = { attempts: 5, initialDelayMs: 500, maxDelayMs: 10000 };

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
  readonly observer?: ConsumerObserver;
};

type Tracked = { readonly offset: bigint; done: boolean };
/** One assigned partition: what it has in flight, and whether fetching it is paused. */
type PartitionState = {
  readonly topic: string;
  readonly partition: number;
  readonly epoch: number;
  readonly entries: Tracked[];
  committed: bigint | undefined;
  /** The offset after the last message of an unbroken run of finished ones: what to commit next. */
  committable: bigint | undefined;
  /** Messages of this partition queued or being handled. */
  waiting: number;
  paused: boolean;
};
type Work = {
  readonly message: KafkaMessage;
  readonly topic: string;
  readonly partition: number;
  readonly epoch: number;
  readonly tracked: Tracked;
  readonly state: PartitionState;
};

/**
 * A consumer that never lets one conversation hold up another, and never lets one message hold
 * up its conversation forever: the handler returns an outcome (done, skipped, dead-letter,
 * retry) and the consumer acts on it; a handler that throws gets a bounded budget of attempts,
 * then its message is dead-lettered as handler_crashed and the conversation goes on. `eachBatch` only queues messages
 * by ordering key and returns, so fetching goes on; each key's queue runs in order on its own.
 * Offsets are committed per partition up to the first message not yet done, so a crash
 * redelivers exactly the unfinished work (handlers are idempotent). After a rebalance, queued
 * work of the old assignment is dropped: the partitions' new owners start from the commit.
 * Memory is bounded per partition: a partition with too much waiting (a throttled portal's
 * backlog) is paused on its own and resumed as it drains; the others keep being fetched.
 */
export class KeyedConsumer {
  readonly #options: KeyedConsumerOptions;
  readonly #queues = new Map<string, Work[]>();
  readonly #partitions = new Map<string, PartitionState>();
  readonly #running = new Set<Promise<void>>();
  #buffered = 0;
  #epoch = 0;
  #commitTimer: NodeJS.Timeout | undefined;
  #stopping = false;

  constructor(options: KeyedConsumerOptions) {
    this.#options = options;
  }

  get buffered(): number {
    return this.#buffered;
  }

  async start(): Promise<void> {
    const { consumer } = this.#options;
    consumer.on(consumer.events.GROUP_JOIN, () => {
      // New assignment: whatever is queued belongs to the old one.
      this.#epoch++;
      const paused = [...this.#partitions.values()].filter((state) => state.paused);
      if (paused.length > 0)
        consumer.resume(paused.map((state) => ({ topic: state.topic, partitions: [state.partition] })));
      this.#partitions.clear();
    });
    await consumer.connect();
    await consumer.subscribe({ topics: [...this.#options.topics], fromBeginning: true });
    await consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      partitionsConsumedConcurrently: 4,
      eachBatch: (payload) => this.#enqueueBatch(payload),
    });
  }

  /** Lets each conversation finish the message it is on (5 s at most), commits, then leaves the group. */
  async stop(): Promise<void> {
    this.#stopping = true;
    await Promise.race([Promise.allSettled([...this.#running]), sleep(5000)]);
    clearTimeout(this.#commitTimer);
    await this.#commit().catch(() => undefined);
    await this.#options.consumer.disconnect();
  }

  async #enqueueBatch(payload: EachBatchPayload): Promise<void> {
    const { batch } = payload;
    const partitionKey = `${batch.topic}:${batch.partition}`;
    let state = this.#partitions.get(partitionKey);
    if (!state || state.epoch !== this.#epoch) {
      state = {
        topic: batch.topic,
        partition: batch.partition,
        epoch: this.#epoch,
        entries: [],
        committed: undefined,
        committable: undefined,
        waiting: 0,
        paused: false,
      };
      this.#partitions.set(partitionKey, state);
    }
    for (const message of batch.messages) {
      const tracked: Tracked = { offset: BigInt(message.offset), done: false };
      state.entries.push(tracked);
      state.waiting++;
      this.#push(this.#options.orderingKey(message), {
        message,
        topic: batch.topic,
        partition: batch.partition,
        epoch: state.epoch,
        tracked,
        state,
      });
      payload.resolveOffset(message.offset);
    }
    // Back-pressure per partition: never wait inside eachBatch (kafkajs fetches again only when
    // every partition's batch has returned, so one slow partition would stop all of them).
    if (state.waiting > this.#limit() && !state.paused) {
      state.paused = true;
      this.#options.consumer.pause([{ topic: batch.topic, partitions: [batch.partition] }]);
      this.#options.logger.warn(
        { topic: batch.topic, partition: batch.partition, waiting: state.waiting },
        'partition paused: too much waiting in memory',
      );
    }
    await payload.heartbeat();
  }

  #limit(): number {
    return this.#options.maxBufferedMessages ?? 5000;
  }

  /** A message of `state` is finished (or dropped): resume its partition once half drained. */
  #release(state: PartitionState): void {
    state.waiting--;
    if (state.paused && state.waiting <= this.#limit() / 2 && state.epoch === this.#epoch) {
      state.paused = false;
      this.#options.consumer.resume([{ topic: state.topic, partitions: [state.partition] }]);
      this.#options.logger.info(
        { topic: state.topic, partition: state.partition, waiting: state.waiting },
        'partition resumed',
      );
    }
  }

  #push(key: string, work: Work): void {
    this.#buffered++;
    const queue = this.#queues.get(key);
    if (queue) {
      queue.push(work);
      return;
    }
    this.#queues.set(key, [work]);
    const runner = this.#drain(key).finally(() => this.#running.delete(runner));
    this.#running.add(runner);
  }

  async #drain(key: string): Promise<void> {
    const queue = this.#queues.get(key) ?? [];
    while (queue.length > 0 && !this.#stopping) {
      const work = queue[0];
      if (!work) break;
      const current = work.epoch === this.#epoch;
      const finished = current && (await this.#handleUntilDone(work));
      // Stopping mid-message: leave it unfinished (uncommitted, so redelivered) and stop here.
      if (!finished && this.#stopping && work.epoch === this.#epoch) break;
      // Either done, or from an assignment this consumer lost (its new owner redoes it): move on,
      // so newer messages of the same key behind it are not stranded.
      queue.shift();
      this.#buffered--;
      this.#release(work.state);
      if (finished) {
        work.tracked.done = true;
        this.#scheduleCommit();
      }
    }
    this.#queues.delete(key);
    for (const work of queue) {
      this.#buffered--;
      this.#release(work.state);
    }
  }

  #current(work: Work): boolean {
    return !this.#stopping && work.epoch === this.#epoch;
  }

  /** True once the message is finished; false when it gave up because the consumer is stopping or lost the partition. */
  async #handleUntilDone(work: Work): Promise<boolean> {
    const budget = this.#options.crashBudget ?? DEFAULT_CRASH_BUDGET;
    const where = { topic: work.topic, partition: work.partition, offset: work.message.offset };
    let crashes = 0;
    // Dead-lettered before a crash or rebalance redelivered it (its offset was not committed yet,
    // e.g. behind another conversation's unfinished message): it stays a dead letter until an
    // operator replays it, rather than being applied now, after later messages of its conversation.
    const deadLettered = await this.#options.deadLetters.alreadyWritten(work).catch(() => false);
    if (deadLettered) {
      this.#options.logger.warn(where, 'message was dead-lettered before it was redelivered; left to replay');
      return true;
    }
    while (this.#current(work)) {
      let outcome: HandlerOutcome;
      try {
        outcome = await this.#options.handle(work.message, work.partition, work.topic);
      } catch (error) {
        crashes++;
        this.#options.observer?.crashed?.(error, crashes);
        if (crashes < budget.attempts) {
          const delayMs = backoffDelay(budget, crashes, Math.random);
          this.#options.logger.error(
            { err: error, ...where, attempt: crashes, of: budget.attempts, delayMs },
            'handler threw; trying the same message again (later messages of its conversation wait)',
          );
          await sleep(delayMs);
          continue;
        }
        outcome = {
          kind: 'dead-letter',
          reason: DeadLetterReason.handlerCrashed,
          error: describeError(error),
          attempts: crashes,
          orgId: null,
          eventType: null,
          eventId: null,
        };
      }
      switch (outcome.kind) {
        case 'done':
        case 'skipped':
          return true;
        case 'retry':
          this.#options.observer?.retried?.(outcome.error);
          this.#options.logger.warn(
            { ...where, error: outcome.error, afterMs: outcome.afterMs },
            'transient failure; the same message again later (later messages of its conversation wait)',
          );
          await sleep(outcome.afterMs);
          continue;
        case 'dead-letter': {
          const { kind: _kind, ...details } = outcome;
          return this.#deadLetter(work, details);
        }
        default: {
          const unreachable: never = outcome;
          throw new Error(`unknown handler outcome ${JSON.stringify(unreachable)}`);
        }
      }
    }
    return false;
  }

  /**
   * Writes the letter (once, even across restarts: the writer remembers it), then the message is
   * done. Kafka or Redis failing here is transient: try again, holding only this conversation.
   */
  async #deadLetter(work: Work, details: DeadLetterDetails): Promise<boolean> {
    const where = { topic: work.topic, partition: work.partition, offset: work.message.offset };
    for (let attempt = 1; this.#current(work); attempt++) {
      try {
        const written = await this.#options.deadLetters.write(work, details);
        if (written === 'written') this.#options.observer?.deadLettered?.(details.reason);
        this.#options.logger.warn(
          {
            ...where,
            reason: details.reason,
            error: details.error,
            orgId: details.orgId,
            eventId: details.eventId,
          },
          written === 'written'
            ? 'message dead-lettered'
            : 'message was already dead-lettered (before a restart)',
        );
        return true;
      } catch (error) {
        const delayMs = backoffDelay(DEFAULT_CRASH_BUDGET, Math.min(attempt, 6), Math.random);
        this.#options.logger.error(
          { err: error, ...where, attempt, delayMs },
          'dead letter not written; trying again (later messages of its conversation wait)',
        );
        await sleep(delayMs);
      }
    }
    return false;
  }

  #scheduleCommit(): void {
    this.#commitTimer ??= setTimeout(() => {
      this.#commitTimer = undefined;
      this.#commit().catch((error: unknown) => {
        // Nothing is lost meanwhile (a restart would redeliver finished work, which handlers
        // treat as duplicates), but try again rather than wait for the next finished message.
        this.#options.logger.warn({ err: error }, 'offset commit failed; trying again');
        this.#scheduleCommit();
      });
    }, this.#options.commitIntervalMs ?? 200);
  }

  async #commit(): Promise<void> {
    const offsets: { topic: string; partition: number; offset: string }[] = [];
    for (const [partitionKey, partition] of this.#partitions) {
      if (partition.epoch !== this.#epoch) continue;
      while (partition.entries.length > 0 && partition.entries[0]?.done) {
        partition.committable = (partition.entries.shift()?.offset ?? 0n) + 1n;
      }
      const next = partition.committable;
      if (next === undefined || (partition.committed !== undefined && next <= partition.committed)) continue;
      const split = partitionKey.lastIndexOf(':');
      offsets.push({
        topic: partitionKey.slice(0, split),
        partition: Number(partitionKey.slice(split + 1)),
        offset: next.toString(),
      });
    }
    if (offsets.length === 0) return;
    await this.#options.consumer.commitOffsets(offsets);
    // Only once Kafka took it: a failed commit is tried again with the same (or a later) offset.
    for (const { topic, partition, offset } of offsets) {
      const state = this.#partitions.get(`${topic}:${partition}`);
      if (state && (state.committed === undefined || BigInt(offset) > state.committed))
        state.committed = BigInt(offset);
    }
  }
}
