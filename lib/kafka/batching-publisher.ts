import type { Message, Producer, TopicMessages } from 'kafkajs';
import { ErrorCode, PipelineError, describeError } from '../errors.ts';
import type { Logger } from '../log.ts';
import { withTimeout } from '../timeout.ts';

/** What a topic can store, read from the cluster at start (`readTopicLimits`). */
export type TopicLimit = {
  /** The largest record batch the broker stores for this topic: its `max.message.bytes`. */
  readonly maxBatchBytes: number;
  /** Its partition count: tells which records would share one partition's record batch. */
  readonly partitions: number;
};

/** Kafka's default `message.max.bytes`; used for a topic whose limit was not read. */
export const KAFKA_DEFAULT_MAX_BATCH_BYTES = 1_048_588;

/**
 * Room kept in every record batch for what is not records: the v2 batch header is 61 bytes
 * (offset, length, epoch, magic, CRC, attributes, offsets, timestamps, producer id/epoch,
 * sequence, count); the rest is slack.
 */
export const RECORD_BATCH_ENVELOPE_BYTES = 128;

export type BatchingPublisherOptions = {
  /**
   * Makes a new, unconnected idempotent producer (acks from all in-sync replicas). Called at
   * `connect()` and again whenever the previous one's sequence numbers may be out of step.
   */
  readonly createProducer: () => Producer;
  /** Limits of the topics this publisher writes; an unknown topic gets Kafka's default limit. */
  readonly limits: ReadonlyMap<string, TopicLimit>;
  /**
   * How long a message may wait for others to share its request. 0: until the end of the event
   * loop's turn (the messages published in that turn share it), not a timer.
   */
  readonly lingerMs: number;
  /** A send carries at most this many messages. */
  readonly maxBatchMessages: number;
  /** A caller not acknowledged within this fails (ingest answers 503; HubSpot waits only 5 s). */
  readonly sendTimeoutMs: number;
  /** After a failed write with no success since, the publisher reports failing writes this long. */
  readonly failingForMs: number;
  readonly logger: Logger;
  readonly onProducerRebuilt?: (reason: string) => void;
};

type PlannedRecord = {
  readonly message: Message;
  readonly bytes: number;
  /** undefined: kafkajs picks a partition round-robin, so it may land on any. */
  readonly partition: number | undefined;
};

/**
 * How a caller's records may share a send. After a record-level refusal of a shared send, each
 * caller of it is sent on its own; if its own send is refused too, one record at a time: so only
 * the guilty caller fails.
 */
type Isolation = 'shared' | 'caller' | 'record';

type Caller = {
  readonly topic: string;
  readonly records: readonly PlannedRecord[];
  /** The first record not handed to a send yet. */
  next: number;
  acknowledged: number;
  isolation: Isolation;
  settled: boolean;
  readonly deadline: number;
  readonly resolve: () => void;
  readonly reject: (error: PipelineError) => void;
};

type Slice = { readonly caller: Caller; readonly from: number; readonly to: number };

/** Kafka refused a record or the records of one partition, not the request as a whole. */
const RECORD_LEVEL_ERRORS = new Set([
  'MESSAGE_TOO_LARGE',
  'RECORD_LIST_TOO_LARGE',
  'INVALID_RECORD',
  'CORRUPT_MESSAGE',
]);
const SIZE_ERRORS = new Set(['MESSAGE_TOO_LARGE', 'RECORD_LIST_TOO_LARGE']);

/** kafkajs wraps a broker's error code (`type`) in retry errors; the first one found names it. */
const kafkaErrorTypeOf = (error: unknown): string | undefined => {
  for (let current = error, depth = 0; current instanceof Error && depth < 8; depth++) {
    const type = (current as { type?: unknown }).type;
    if (typeof type === 'string') return type;
    current = current.cause;
  }
  return undefined;
};

const byteLength = (value: Buffer | string | null | undefined): number =>
  value === null || value === undefined
    ? 0
    : typeof value === 'string'
      ? Buffer.byteLength(value)
      : value.length;

/**
 * An upper bound of a message's size inside a v2 record batch: its key, value and headers plus
 * the varints and attributes around them (each varint counted at its largest).
 */
export const encodedRecordBytes = (message: Message): number => {
  let bytes = 36 + byteLength(message.key) + byteLength(message.value);
  const headers = message.headers;
  if (headers === undefined) return bytes;
  // No entries array per record: this runs for every record published.
  for (const name of Object.keys(headers)) {
    const value = headers[name];
    if (!Array.isArray(value)) bytes += 10 + Buffer.byteLength(name) + byteLength(value);
    else for (const item of value) bytes += 10 + Buffer.byteLength(name) + byteLength(item);
  }
  return bytes;
};

/**
 * Kafka's murmur2 (the Java client's `Utils.murmur2`, which kafkajs's DefaultPartitioner also
 * implements, on emulated 64-bit Longs: a fifth of ingest's CPU at 100-event batches), in 32-bit
 * integer arithmetic. A unit test checks it against kafkajs's on many keys.
 */
export const murmur2 = (key: Buffer | string): number => {
  const data = typeof key === 'string' ? Buffer.from(key) : key;
  const length = data.length;
  const m = 0x5bd1e995;
  let h = (0x9747b28c ^ length) | 0;
  const length4 = length >>> 2;
  for (let i = 0; i < length4; i++) {
    const i4 = i * 4;
    let k =
      (data[i4] as number) |
      ((data[i4 + 1] as number) << 8) |
      ((data[i4 + 2] as number) << 16) |
      ((data[i4 + 3] as number) << 24);
    k = Math.imul(k, m);
    k ^= k >>> 24;
    k = Math.imul(k, m);
    h = Math.imul(h, m) ^ k;
  }
  const tail = length & ~3;
  const rest = length % 4;
  if (rest === 3) h ^= (data[tail + 2] as number) << 16;
  if (rest >= 2) h ^= (data[tail + 1] as number) << 8;
  if (rest >= 1) {
    h ^= data[tail] as number;
    h = Math.imul(h, m);
  }
  h ^= h >>> 13;
  h = Math.imul(h, m);
  h ^= h >>> 15;
  return h | 0;
};

/** The partition kafkajs's DefaultPartitioner (and Java's) gives a keyed record. */
export const partitionOfKey = (key: Buffer | string, partitions: number): number =>
  (murmur2(key) & 0x7fffffff) % partitions;

/** The broker checks each partition's record batch against the topic's limit, envelope included. */
const recordBudgetOf = (limit: TopicLimit): number => limit.maxBatchBytes - RECORD_BATCH_ENVELOPE_BYTES;

/** Bytes per topic-partition of the send being assembled; keyless records count on every partition. */
class SendBudget {
  count = 0;
  /** Bytes per partition, per topic (no string key is built per record: a send holds thousands). */
  readonly #perPartition = new Map<string, Map<number, number>>();
  readonly #anyPartition = new Map<string, number>();
  #partitionCount = 0;

  fits(topic: string, record: PlannedRecord, limit: TopicLimit): boolean {
    const any = this.#anyPartition.get(topic) ?? 0;
    const partitions = this.#perPartition.get(topic);
    const used =
      record.partition === undefined
        ? Math.max(0, ...(partitions?.values() ?? []))
        : (partitions?.get(record.partition) ?? 0);
    return used + any + record.bytes <= recordBudgetOf(limit);
  }

  add(topic: string, record: PlannedRecord): void {
    this.count++;
    if (record.partition === undefined) {
      // A keyless record may land anywhere: count the send as touching more than one partition.
      if (!this.#anyPartition.has(topic)) this.#partitionCount += 2;
      this.#anyPartition.set(topic, (this.#anyPartition.get(topic) ?? 0) + record.bytes);
    } else {
      let partitions = this.#perPartition.get(topic);
      if (partitions === undefined) this.#perPartition.set(topic, (partitions = new Map<number, number>()));
      const used = partitions.get(record.partition);
      if (used === undefined) this.#partitionCount++;
      partitions.set(record.partition, (used ?? 0) + record.bytes);
    }
  }

  get partitionCount(): number {
    return this.#partitionCount;
  }
}

/**
 * kafkajs has no linger: every `send` is its own request. This gathers the messages of concurrent
 * callers for up to `lingerMs` into shared sends (acks from all in-sync replicas, one at a time),
 * and resolves each caller once its messages are durable.
 *
 * Sharing a send must not let one caller harm another:
 * - a record the topic cannot store is refused at `publish`, before it joins a send
 *   (PipelineError recordTooLarge, not retriable);
 * - a send holds at most what one record batch per partition can store: the broker checks each
 *   partition's batch against `max.message.bytes`, so several medium records of different
 *   callers on one partition would otherwise be refused together;
 * - if Kafka still refuses a record of a shared send, its callers are sent again one by one, so
 *   only the guilty one fails;
 * - after a failed send that touched several partitions, or timed out, or any error but a
 *   record-level refusal of one partition, the producer is replaced before the next write.
 *   kafkajs rolls back the idempotent sequence numbers of every partition of a failed request,
 *   including partitions the broker already wrote: the next batch there would reuse a sequence
 *   (the broker answers "out of order sequence" or, worse, acknowledges it as a duplicate
 *   without storing it). A new producer gets a new producer id and starts its sequences at 0.
 */
export class BatchingPublisher {
  readonly #options: BatchingPublisherOptions;
  /** Partition by topic and string key: keys are few (organisations), hashing each record was not. */
  readonly #partitionByKey = new Map<string, number>();
  #producer: Producer | undefined;
  /** Why the producer must be replaced before its next write; undefined while it is sound. */
  #replaceBecause: string | undefined;
  #queue: Caller[] = [];
  #queuedMessages = 0;
  /** Cancels the pending linger: a timer, or an immediate for a linger of 0. */
  #cancelLinger: (() => void) | undefined;
  #pumping: Promise<void> | undefined;
  #lastSuccessAt = 0;
  #lastFailureAt = 0;
  #closed = false;

  constructor(options: BatchingPublisherOptions) {
    this.#options = options;
  }

  /** Connects the first producer (start-up fails here when Kafka is unreachable). */
  async connect(): Promise<void> {
    await this.#ensureProducer(this.#options.sendTimeoutMs);
  }

  /**
   * Resolves once every message is acknowledged by all in-sync replicas. Rejects with a
   * PipelineError: recordTooLarge (not retriable) when a message is larger than its topic can
   * store, kafkaUnavailable (retriable) otherwise.
   */
  publish(topic: string, messages: readonly Message[]): Promise<void> {
    if (messages.length === 0) return Promise.resolve();
    if (this.#closed)
      return Promise.reject(
        new PipelineError(ErrorCode.kafkaUnavailable, 'the publisher is closed', { retriable: true }),
      );
    const known = this.#options.limits.get(topic);
    const limit = known ?? { maxBatchBytes: KAFKA_DEFAULT_MAX_BATCH_BYTES, partitions: 1 };
    const records: PlannedRecord[] = [];
    // A caller's messages mostly share a key (one organisation): its partition is looked up once.
    let lastKey: Message['key'] = undefined;
    let lastPartition: number | undefined;
    for (const message of messages) {
      const bytes = encodedRecordBytes(message);
      if (bytes > recordBudgetOf(limit)) {
        return Promise.reject(
          new PipelineError(
            ErrorCode.recordTooLarge,
            `a record of ${bytes} bytes is larger than topic ${topic} stores (max.message.bytes ${limit.maxBatchBytes}, less ${RECORD_BATCH_ENVELOPE_BYTES} for the batch envelope)`,
            { retriable: false },
          ),
        );
      }
      let partition: number | undefined;
      if (!known) partition = undefined;
      else if (message.partition === undefined && typeof message.key === 'string' && message.key === lastKey)
        partition = lastPartition;
      else {
        partition = this.#partitionOf(topic, message, known);
        if (message.partition === undefined) [lastKey, lastPartition] = [message.key, partition];
      }
      // The partition the size accounting assumed is the one the record goes to (kafkajs then
      // skips hashing the key again). The limits' partition count is read at start, as the
      // accounting's; a topic given more partitions later keeps each key where it was until restart.
      records.push({
        message:
          partition === undefined || message.partition !== undefined ? message : { ...message, partition },
        bytes,
        partition,
      });
    }
    return new Promise<void>((resolve, reject) => {
      this.#queue.push({
        topic,
        records,
        next: 0,
        acknowledged: 0,
        isolation: 'shared',
        settled: false,
        deadline: Date.now() + this.#options.sendTimeoutMs,
        resolve,
        reject,
      });
      this.#queuedMessages += records.length;
      if (this.#pumping) return; // the running loop takes it with the next send
      if (this.#queuedMessages >= this.#options.maxBatchMessages) this.#startPump();
      else this.#cancelLinger ??= this.#linger();
    });
  }

  /**
   * False while writes fail: the last send failed for a reason other than a record of its own,
   * no send succeeded since, and that failure is less than `failingForMs` old (so a replica
   * taken out of a load balancer is tried again later).
   */
  isWriting(now = Date.now()): boolean {
    if (this.#closed) return false;
    return (
      this.#lastFailureAt <= this.#lastSuccessAt || now - this.#lastFailureAt > this.#options.failingForMs
    );
  }

  /** Sends what is waiting and waits for it. */
  async drain(): Promise<void> {
    this.#startPump();
    await this.#pumping;
  }

  /** Drains, then disconnects the producer; later publishes fail. */
  async close(): Promise<void> {
    await this.drain();
    this.#closed = true;
    const producer = this.#producer;
    this.#producer = undefined;
    await producer?.disconnect();
  }

  /** A topic whose limit was not read gets Kafka's default, and its records may land on any partition. */
  #limitOf(topic: string): TopicLimit {
    return this.#options.limits.get(topic) ?? { maxBatchBytes: KAFKA_DEFAULT_MAX_BATCH_BYTES, partitions: 1 };
  }

  /** The partition kafkajs's default partitioner would choose (murmur2 of the key, as Java's). */
  #partitionOf(topic: string, message: Message, limit: TopicLimit): number | undefined {
    if (message.partition !== undefined) return message.partition;
    const key = message.key;
    if (key === null || key === undefined) return undefined;
    if (typeof key !== 'string') return partitionOfKey(key, limit.partitions);
    const cacheKey = `${topic}\0${limit.partitions}\0${key}`;
    let partition = this.#partitionByKey.get(cacheKey);
    if (partition === undefined) {
      partition = partitionOfKey(key, limit.partitions);
      // Bounded: a publisher keyed by something with many values just hashes again.
      if (this.#partitionByKey.size >= 10_000) this.#partitionByKey.clear();
      this.#partitionByKey.set(cacheKey, partition);
    }
    return partition;
  }

  /**
   * Starts the pump after the linger. A linger of 0 waits for the end of this turn of the event
   * loop (setImmediate), so the requests read in the same turn share a send; a timer of 0 would
   * wait a whole millisecond.
   */
  #linger(): () => void {
    if (this.#options.lingerMs <= 0) {
      const immediate = setImmediate(() => this.#startPump());
      return () => clearImmediate(immediate);
    }
    const timer = setTimeout(() => this.#startPump(), this.#options.lingerMs);
    return () => clearTimeout(timer);
  }

  #startPump(): void {
    this.#cancelLinger?.();
    this.#cancelLinger = undefined;
    if (this.#pumping || this.#queue.length === 0) return;
    this.#pumping = this.#pump().finally(() => {
      this.#pumping = undefined;
      // Callers that arrived during the last send and were not taken (none, normally).
      if (this.#queue.length > 0) this.#startPump();
    });
  }

  async #pump(): Promise<void> {
    for (;;) {
      const slices = this.#takeSend();
      if (slices === undefined) return;
      if (slices.slices.length > 0) await this.#send(slices.slices, slices.partitions);
    }
  }

  /** The next send: whole callers in order while they fit; one that does not fit ends it. */
  #takeSend(): { slices: Slice[]; partitions: number } | undefined {
    const now = Date.now();
    const budget = new SendBudget();
    const slices: Slice[] = [];
    while (this.#queue.length > 0) {
      const caller = this.#queue[0] as Caller;
      if (caller.settled) {
        this.#dequeue();
        continue;
      }
      if (caller.next === 0 && caller.deadline <= now) {
        this.#dequeue();
        this.#fail(
          caller,
          new PipelineError(
            ErrorCode.kafkaUnavailable,
            `not sent within ${this.#options.sendTimeoutMs} ms: earlier sends were slow`,
            { retriable: true },
          ),
        );
        continue;
      }
      if (caller.isolation !== 'shared' && slices.length > 0) break;
      const limit = this.#limitOf(caller.topic);
      const from = caller.next;
      while (caller.next < caller.records.length && budget.count < this.#options.maxBatchMessages) {
        const record = caller.records[caller.next] as PlannedRecord;
        if (!budget.fits(caller.topic, record, limit)) break;
        budget.add(caller.topic, record);
        caller.next++;
        if (caller.isolation === 'record') break;
      }
      if (caller.next === from && slices.length === 0) {
        // Cannot happen (publish refuses what no batch can hold); failing beats looping forever.
        this.#dequeue();
        this.#fail(
          caller,
          new PipelineError(
            ErrorCode.recordTooLarge,
            `a record does not fit an empty send to ${caller.topic}`,
            {
              retriable: false,
            },
          ),
        );
        continue;
      }
      if (caller.next > from) slices.push({ caller, from, to: caller.next });
      // Its remaining records go in the next send, so its own order is kept.
      if (caller.next < caller.records.length) break;
      this.#dequeue();
      if (caller.isolation !== 'shared' || budget.count >= this.#options.maxBatchMessages) break;
    }
    if (slices.length === 0 && this.#queue.length === 0) return undefined;
    return { slices, partitions: budget.partitionCount };
  }

  #dequeue(): void {
    const caller = this.#queue.shift();
    if (caller) this.#queuedMessages -= caller.records.length;
  }

  async #send(slices: readonly Slice[], partitions: number): Promise<void> {
    const deadline = Math.min(...slices.map((slice) => slice.caller.deadline));
    // A send is given at least a second, so callers that waited long do not fail a healthy send.
    const timeoutMs = Math.max(Math.min(1000, this.#options.sendTimeoutMs), deadline - Date.now());
    const byTopic = new Map<string, Message[]>();
    for (const { caller, from, to } of slices) {
      const list = byTopic.get(caller.topic) ?? [];
      for (let index = from; index < to; index++) list.push((caller.records[index] as PlannedRecord).message);
      byTopic.set(caller.topic, list);
    }
    const topicMessages: TopicMessages[] = [...byTopic].map(([topic, messages]) => ({ topic, messages }));

    try {
      const producer = await this.#ensureProducer(timeoutMs);
      await withTimeout(
        producer.sendBatch({ topicMessages, acks: -1 }),
        timeoutMs,
        `Kafka acknowledgement did not finish within ${timeoutMs} ms`,
      );
    } catch (error) {
      this.#onSendFailed(slices, partitions, error);
      return;
    }
    this.#lastSuccessAt = Date.now();
    for (const { caller, from, to } of slices) {
      caller.acknowledged += to - from;
      if (!caller.settled && caller.acknowledged === caller.records.length) {
        caller.settled = true;
        caller.resolve();
      }
    }
  }

  #onSendFailed(slices: readonly Slice[], partitions: number, error: unknown): void {
    const type = kafkaErrorTypeOf(error);
    const recordLevel = type !== undefined && RECORD_LEVEL_ERRORS.has(type);
    // A record-level refusal of a one-partition request leaves nothing written and kafkajs's
    // rollback of that partition's sequence correct; anything else may not.
    if (!(recordLevel && partitions === 1)) this.#replaceBecause ??= `send failed: ${describeError(error)}`;

    const records = slices.reduce((sum, slice) => sum + slice.to - slice.from, 0);
    if (recordLevel && (slices.length > 1 || records > 1)) {
      // Try again in smaller sends so only the guilty caller fails (partitions the broker
      // already wrote are written again: a duplicate, never a loss).
      this.#options.logger.warn(
        { err: error, callers: slices.length, records },
        'Kafka refused a record of a shared send: sending its callers one by one',
      );
      const retry = slices.map((slice) => slice.caller).filter((caller) => !caller.settled);
      this.#queue = this.#queue.filter((queued) => !retry.includes(queued));
      for (const { caller, from } of slices) {
        caller.next = from;
        caller.isolation = slices.length > 1 ? 'caller' : 'record';
      }
      this.#queue.unshift(...retry);
      this.#queuedMessages = this.#queue.reduce((sum, caller) => sum + caller.records.length, 0);
      return;
    }

    const failure =
      recordLevel && SIZE_ERRORS.has(type)
        ? new PipelineError(
            ErrorCode.recordTooLarge,
            `Kafka refused a record as too large: ${describeError(error)}`,
            {
              retriable: false,
              cause: error,
            },
          )
        : new PipelineError(ErrorCode.kafkaUnavailable, `not written to Kafka: ${describeError(error)}`, {
            retriable: true,
            cause: error,
          });
    if (!recordLevel) {
      this.#lastFailureAt = Date.now();
      this.#options.logger.warn({ err: error, callers: slices.length, records }, 'Kafka send failed');
    }
    for (const { caller } of slices) this.#fail(caller, failure);
  }

  #fail(caller: Caller, error: PipelineError): void {
    if (caller.settled) return;
    caller.settled = true;
    caller.reject(error);
  }

  async #ensureProducer(timeoutMs: number): Promise<Producer> {
    if (this.#producer && this.#replaceBecause === undefined) return this.#producer;
    const reason = this.#replaceBecause ?? 'start';
    const previous = this.#producer;
    this.#producer = undefined;
    if (previous) {
      // Its requests still under way (a timed-out send) end here; their callers already failed.
      await withTimeout(
        previous.disconnect(),
        timeoutMs,
        `disconnecting the replaced producer did not finish within ${timeoutMs} ms`,
      ).catch((error: unknown) =>
        this.#options.logger.warn({ err: error }, 'the replaced producer did not disconnect'),
      );
    }
    const next = this.#options.createProducer();
    try {
      await withTimeout(
        next.connect(),
        timeoutMs,
        `connecting a Kafka producer did not finish within ${timeoutMs} ms`,
      );
    } catch (error) {
      void next.disconnect().catch(() => undefined);
      throw error;
    }
    this.#producer = next;
    this.#replaceBecause = undefined;
    if (reason !== 'start') {
      this.#options.logger.warn(
        { reason },
        'Kafka producer replaced: its sequence numbers may have been out of step',
      );
      this.#options.onProducerRebuilt?.(reason);
    }
    return next;
  }
}
