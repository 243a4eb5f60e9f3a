import type { Message } from 'kafkajs';

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

/** A record as a send plans it: its size in a record batch, and the partition it goes to. */
export type PlannedRecord = {
  readonly message: Message;
  readonly bytes: number;
  /** undefined: kafkajs picks a partition round-robin, so it may land on any. */
  readonly partition: number | undefined;
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

/** The broker checks each partition's record batch against the topic's limit, envelope included. */
export const recordBudgetOf = (limit: TopicLimit): number =>
  limit.maxBatchBytes - RECORD_BATCH_ENVELOPE_BYTES;

/** Bytes per topic-partition of the send being assembled; keyless records count on every partition. */
export class SendBudget {
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
