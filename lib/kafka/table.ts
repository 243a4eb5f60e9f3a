import { randomUUID } from 'node:crypto';
import { ErrorCode, PipelineError } from '../errors.ts';
import type { Admin, Consumer, Kafka } from 'kafkajs';
import type { Logger } from '../log.ts';
import { sleep } from '../retry.ts';
import { withTimeout } from '../timeout.ts';
import { whileLeadersSettle } from './client.ts';

/** How long an idle table's fetch waits for records (kafkajs: 5,000 ms), and so its stop. */
const TABLE_FETCH_MAX_WAIT_MS = 500;

export type TableEntry<V> = { readonly key: string; readonly value: V | undefined; readonly offset: string };

/**
 * A compacted topic materialised in memory, read whole by every replica and followed live.
 * Each instance consumes with a group of its own (kafkajs has no assign()), from the beginning.
 * `ready` resolves once the table holds everything that was on the topic when it started.
 */
export class KafkaTable<V> {
  readonly #kafka: Kafka;
  readonly #topic: string;
  readonly #decode: (raw: Buffer) => V;
  readonly #logger: Logger;
  readonly #groupId: string;
  readonly #rows = new Map<string, V>();
  readonly #listeners: ((entry: TableEntry<V>) => void)[] = [];
  #consumer: Consumer | undefined;
  #admin: Admin | undefined;
  /** Per partition, the next offset the table has not applied yet. */
  readonly #applied = new Map<number, bigint>();
  #catchingUp: Promise<boolean> | undefined;

  constructor(options: {
    kafka: Kafka;
    topic: string;
    groupPrefix: string;
    decode: (raw: Buffer) => V;
    logger: Logger;
  }) {
    this.#kafka = options.kafka;
    this.#topic = options.topic;
    this.#decode = options.decode;
    this.#logger = options.logger;
    this.#groupId = `${options.groupPrefix}table.${options.topic}.${randomUUID()}`;
  }

  get(key: string): V | undefined {
    return this.#rows.get(key);
  }

  values(): IterableIterator<V> {
    return this.#rows.values();
  }

  entries(): IterableIterator<[string, V]> {
    return this.#rows.entries();
  }

  onChange(listener: (entry: TableEntry<V>) => void): void {
    this.#listeners.push(listener);
  }

  /** Applies a write this process made, before the topic brings it back: read-your-writes. */
  applyLocal(key: string, value: V | undefined): void {
    this.#apply({ key, value, offset: '-1' });
  }

  async start(timeoutMs = 60000): Promise<void> {
    const admin = this.#kafka.admin();
    this.#admin = admin;
    await whileLeadersSettle(`connecting to read ${this.#topic}`, () => admin.connect(), timeoutMs);
    const ends = await whileLeadersSettle(`reading the end of ${this.#topic}`, () =>
      admin.fetchTopicOffsets(this.#topic),
    );
    const remaining = new Map<number, bigint>();
    for (const { partition, high, low } of ends) {
      if (BigInt(high) > BigInt(low)) remaining.set(partition, BigInt(high) - 1n);
    }

    let markReady = (): void => undefined;
    const caughtUp = new Promise<void>((resolve) => {
      markReady = resolve;
    });
    if (remaining.size === 0) markReady();

    // A short fetch wait: kafkajs's disconnect waits for the fetch in flight (5 s by default), so
    // every service's stop (a rolling deploy, each test's pipeline) would wait that long; an idle
    // table costs two small fetches a second instead.
    const consumer = this.#kafka.consumer({
      groupId: this.#groupId,
      allowAutoTopicCreation: false,
      maxWaitTimeInMs: TABLE_FETCH_MAX_WAIT_MS,
    });
    this.#consumer = consumer;
    await whileLeadersSettle(`connecting the reader of ${this.#topic}`, () => consumer.connect(), timeoutMs);
    await consumer.subscribe({ topic: this.#topic, fromBeginning: true });
    await consumer.run({
      autoCommit: false,
      eachMessage: async ({ message, partition }) => {
        const key = message.key?.toString('utf8');
        if (key !== undefined) {
          try {
            const value = message.value === null ? undefined : this.#decode(message.value);
            this.#apply({ key, value, offset: message.offset });
          } catch (error) {
            this.#logger.error(
              { err: error, topic: this.#topic, key, offset: message.offset },
              'skipping an undecodable table record',
            );
          }
        }
        this.#applied.set(partition, BigInt(message.offset) + 1n);
        const last = remaining.get(partition);
        if (last !== undefined && BigInt(message.offset) >= last) {
          remaining.delete(partition);
          if (remaining.size === 0) markReady();
        }
      },
    });

    await withTimeout(
      caughtUp,
      timeoutMs,
      `${this.#topic}: not caught up within ${timeoutMs} ms; is Kafka reachable?`,
    );
  }

  /**
   * Waits until the table holds everything on the topic now (its end offsets, read once per
   * call, callers at the same moment sharing one read), for at most `timeoutMs`: true when
   * caught up. For a miss that may only be lag (after a broker restart or a rebalance of the
   * table's consumer, a replica's view can trail the topic by seconds): look again after it.
   */
  catchUp(timeoutMs = 5000): Promise<boolean> {
    this.#catchingUp ??= this.#catchUpOnce(timeoutMs).finally(() => {
      this.#catchingUp = undefined;
    });
    return this.#catchingUp;
  }

  async #catchUpOnce(timeoutMs: number): Promise<boolean> {
    const admin = this.#admin;
    if (!admin) return false;
    const deadline = Date.now() + timeoutMs;
    let ends: { partition: number; high: string; low: string }[];
    try {
      ends = await admin.fetchTopicOffsets(this.#topic);
    } catch (error) {
      this.#logger.warn({ err: error, topic: this.#topic }, 'could not read the table topic’s end offsets');
      return false;
    }
    const behind = () =>
      ends.some(({ partition, high, low }) => (this.#applied.get(partition) ?? BigInt(low)) < BigInt(high));
    while (behind()) {
      if (Date.now() >= deadline) {
        this.#logger.warn({ topic: this.#topic, timeoutMs }, 'table not caught up in time');
        return false;
      }
      await sleep(20);
    }
    return true;
  }

  async stop(): Promise<void> {
    await this.#consumer?.disconnect();
    // The group was ours alone: remove it rather than leave it to expire.
    await this.#admin?.deleteGroups([this.#groupId]).catch(() => undefined);
    await this.#admin?.disconnect();
  }

  #apply(entry: TableEntry<V>): void {
    if (entry.value === undefined) this.#rows.delete(entry.key);
    else this.#rows.set(entry.key, entry.value);
    for (const listener of this.#listeners) listener(entry);
  }
}

/**
 * Catches a table up before a miss in it is trusted. Not caught up in time (Kafka slow or
 * restarting) is a transient failure: the event is tried again later, never skipped on a stale
 * view (a miss while the broker restarts says nothing about what the topic holds).
 */
export const catchUpOrRetryLater = async (catchUp: () => Promise<boolean>, what: string): Promise<void> => {
  if (!(await catchUp()))
    throw new PipelineError(
      ErrorCode.kafkaUnavailable,
      `${what} not caught up with its topic in time (Kafka slow or restarting): tried again later rather than trusting a miss`,
      { retriable: true },
    );
};
