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
  /** How many messages may wait in memory before fetching pauses. */
  readonly maxBufferedMessages?: number;
  readonly commitIntervalMs?: number;
  readonly onHandlerError?: (error: unknown) => void;
};

type Tracked = { readonly offset: bigint; done: boolean };
type Work = {
  readonly message: KafkaMessage;
  readonly topic: string;
  readonly partition: number;
  readonly epoch: number;
  readonly tracked: Tracked;
};

/**
 * A consumer that never lets one conversation hold up another. `eachBatch` only queues messages
 * by ordering key and returns, so fetching goes on; each key's queue runs in order on its own.
 * Offsets are committed per partition up to the first message not yet done, so a crash
 * redelivers exactly the unfinished work (handlers are idempotent). After a rebalance, queued
 * work of the old assignment is dropped: the partitions' new owners start from the commit.
 */
export class KeyedConsumer {
  readonly #options: KeyedConsumerOptions;
  readonly #queues = new Map<string, Work[]>();
  readonly #partitions = new Map<
    string,
    { epoch: number; entries: Tracked[]; committed: bigint | undefined }
  >();
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
    let partition = this.#partitions.get(partitionKey);
    if (!partition || partition.epoch !== this.#epoch) {
      partition = { epoch: this.#epoch, entries: [], committed: undefined };
      this.#partitions.set(partitionKey, partition);
    }
    for (const message of batch.messages) {
      const tracked: Tracked = { offset: BigInt(message.offset), done: false };
      partition.entries.push(tracked);
      this.#push(this.#options.orderingKey(message), {
        message,
        topic: batch.topic,
        partition: batch.partition,
        epoch: partition.epoch,
        tracked,
      });
      payload.resolveOffset(message.offset);
    }
    // Back-pressure: stop fetching while too much waits, heartbeating so the group keeps us.
    const limit = this.#options.maxBufferedMessages ?? 5000;
    while (this.#buffered > limit && payload.isRunning() && !payload.isStale()) {
      await sleep(50);
      await payload.heartbeat();
    }
    await payload.heartbeat();
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
    const queue = this.#queues.get(key);
    while (queue && queue.length > 0 && !this.#stopping) {
      const work = queue[0];
      if (!work) break;
      if (work.epoch === this.#epoch && !(await this.#handleUntilDone(work))) break;
      queue.shift();
      this.#buffered--;
      work.tracked.done = true;
      this.#scheduleCommit();
    }
    this.#queues.delete(key);
    if (queue && queue.length > 0) this.#buffered -= queue.length;
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
