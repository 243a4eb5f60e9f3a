import type { Consumer, EachBatchPayload, KafkaMessage } from 'kafkajs';
import type { Logger } from '../log.ts';
import { sleep } from '../retry.ts';

export type KeyedHandler = (message: KafkaMessage, partition: number, topic: string) => Promise<void>;

export type KeyedConsumerOptions = {
  readonly consumer: Consumer;
  readonly topics: readonly string[];
  /** Messages with the same ordering key (one conversation) are handled one after another. */
  readonly orderingKey: (message: KafkaMessage) => string;
  /** Should classify its own failures; a throw is unexpected: logged, then the same message is retried. */
  readonly handle: KeyedHandler;
  readonly logger: Logger;
  /** How many messages of one partition may wait in memory before that partition is paused. */
  readonly maxBufferedMessages?: number;
  readonly commitIntervalMs?: number;
  readonly onHandlerError?: (error: unknown) => void;
};

type Tracked = { readonly offset: bigint; done: boolean };
/** One assigned partition: what it has in flight, and whether fetching it is paused. */
type PartitionState = {
  readonly topic: string;
  readonly partition: number;
  readonly epoch: number;
  readonly entries: Tracked[];
  committed: bigint | undefined;
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
 * A consumer that never lets one conversation hold up another. `eachBatch` only queues messages
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

  /** False when it gave up because the consumer is stopping or lost the partition. */
  async #handleUntilDone(work: Work): Promise<boolean> {
    for (let attempt = 1; !this.#stopping && work.epoch === this.#epoch; attempt++) {
      try {
        await this.#options.handle(work.message, work.partition, work.topic);
        return true;
      } catch (error) {
        this.#options.onHandlerError?.(error);
        this.#options.logger.error(
          { err: error, topic: work.topic, partition: work.partition, offset: work.message.offset, attempt },
          'handler failed unexpectedly; retrying the same message (later messages of its conversation wait)',
        );
        await sleep(Math.min(30000, 250 * 2 ** Math.min(attempt, 7)));
      }
    }
    return false;
  }

  #scheduleCommit(): void {
    this.#commitTimer ??= setTimeout(() => {
      this.#commitTimer = undefined;
      this.#commit().catch((error: unknown) =>
        this.#options.logger.warn({ err: error }, 'offset commit failed; will retry'),
      );
    }, this.#options.commitIntervalMs ?? 200);
  }

  async #commit(): Promise<void> {
    const offsets: { topic: string; partition: number; offset: string }[] = [];
    for (const [partitionKey, partition] of this.#partitions) {
      if (partition.epoch !== this.#epoch) continue;
      let next: bigint | undefined;
      while (partition.entries.length > 0 && partition.entries[0]?.done) {
        next = (partition.entries.shift()?.offset ?? 0n) + 1n;
      }
      if (next === undefined || (partition.committed !== undefined && next <= partition.committed)) continue;
      partition.committed = next;
      const split = partitionKey.lastIndexOf(':');
      offsets.push({
        topic: partitionKey.slice(0, split),
        partition: Number(partitionKey.slice(split + 1)),
        offset: next.toString(),
      });
    }
    if (offsets.length > 0) await this.#options.consumer.commitOffsets(offsets);
  }
}
