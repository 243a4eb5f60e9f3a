import type { Message, Producer, TopicMessages } from 'kafkajs';
import { ErrorCode, PipelineError, describeError } from '../errors.ts';
import type { Logger } from '../log.ts';
import { withTimeout } from '../timeout.ts';
import { KeyPartitions } from './batching/partitioner.ts';
import {
  KAFKA_DEFAULT_MAX_BATCH_BYTES,
  RECORD_BATCH_ENVELOPE_BYTES,
  SendBudget,
  encodedRecordBytes,
  recordBudgetOf,
  type PlannedRecord,
  type TopicLimit,
} from './batching/record-budget.ts';
import { afterFailedSend, type Isolation } from './batching/refused-records.ts';
import { ReplaceableProducer } from './batching/replaceable-producer.ts';

export { murmur2, partitionOfKey } from './batching/partitioner.ts';
export {
  KAFKA_DEFAULT_MAX_BATCH_BYTES,
  RECORD_BATCH_ENVELOPE_BYTES,
  encodedRecordBytes,
  type TopicLimit,
} from './batching/record-budget.ts';

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
  readonly #partitions = new KeyPartitions();
  readonly #producer: ReplaceableProducer;
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
    this.#producer = new ReplaceableProducer({
      create: options.createProducer,
      logger: options.logger,
      ...(options.onProducerRebuilt === undefined ? {} : { onReplaced: options.onProducerRebuilt }),
    });
  }

  /** Connects the first producer (start-up fails here when Kafka is unreachable). */
  async connect(): Promise<void> {
    await this.#producer.current(this.#options.sendTimeoutMs);
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
        partition = this.#partitions.of(topic, message, known);
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
    await this.#producer.close();
  }

  /** A topic whose limit was not read gets Kafka's default, and its records may land on any partition. */
  #limitOf(topic: string): TopicLimit {
    return this.#options.limits.get(topic) ?? { maxBatchBytes: KAFKA_DEFAULT_MAX_BATCH_BYTES, partitions: 1 };
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
      const producer = await this.#producer.current(timeoutMs);
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
    const records = slices.reduce((sum, slice) => sum + slice.to - slice.from, 0);
    const next = afterFailedSend(error, { callers: slices.length, records, partitions });
    if (next.replaceProducer) this.#producer.replaceBeforeNextWrite(`send failed: ${describeError(error)}`);
    if (next.kind === 'isolate') {
      this.#options.logger.warn(
        { err: error, callers: slices.length, records },
        'Kafka refused a record of a shared send: sending its callers one by one',
      );
      const retry = slices.map((slice) => slice.caller).filter((caller) => !caller.settled);
      this.#queue = this.#queue.filter((queued) => !retry.includes(queued));
      for (const { caller, from } of slices) {
        caller.next = from;
        caller.isolation = next.isolation;
      }
      this.#queue.unshift(...retry);
      this.#queuedMessages = this.#queue.reduce((sum, caller) => sum + caller.records.length, 0);
      return;
    }
    if (next.writesFailing) {
      this.#lastFailureAt = Date.now();
      this.#options.logger.warn({ err: error, callers: slices.length, records }, 'Kafka send failed');
    }
    for (const { caller } of slices) this.#fail(caller, next.error);
  }

  #fail(caller: Caller, error: PipelineError): void {
    if (caller.settled) return;
    caller.settled = true;
    caller.reject(error);
  }
}
