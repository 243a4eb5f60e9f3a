import { randomUUID } from 'node:crypto';
import type { Kafka } from 'kafkajs';
import { deleteThrowawayGroup } from './client.ts';

/**
 * Bounded reads of time windows of topics (the console's pages, `npm run reprocess`). A read
 * takes the offsets of the window's start from Kafka's time index (the first offset at or after
 * `from`, per partition), stops at the offsets of `to` (or at the end as it is when the read
 * starts), reads at most `maxRecords` records per topic and gives up after `timeoutMs`: its
 * summary says when it saw only part of a window.
 *
 * kafkajs has no assign(): a consumer group of its own (random id) seeks each partition to its
 * start as it runs (admin.setOffsets would join and leave the group once more first: 5 s more),
 * commits nothing, and is deleted after.
 */
export type TopicWindow = {
  readonly topic: string;
  /** Epoch ms, inclusive (Kafka record timestamps). */
  readonly from: number;
  /** Epoch ms, exclusive; undefined: up to the end of the topic as it is now. */
  readonly to?: number | undefined;
};

/** [start, end) offsets of one partition. */
export type PartitionRange = { readonly start: bigint; readonly end: bigint };
export type PartitionRanges = ReadonlyMap<number, PartitionRange>;

export type WindowRecord = {
  readonly topic: string;
  readonly partition: number;
  readonly offset: string;
  readonly timestamp: number;
  readonly key: Buffer | null;
  readonly value: Buffer | null;
  readonly headers: Readonly<Record<string, string>>;
};

export type WindowReadSummary = {
  readonly topic: string;
  /** Records in the window (by offsets) before the read started. */
  readonly inWindow: number;
  readonly read: number;
  /** True when `maxRecords` stopped the read before the end of the window. */
  readonly capped: boolean;
  /** True when the time budget ran out first. */
  readonly timedOut: boolean;
  /** Partitions not read to the window's end (capped or timed out). */
  readonly unfinished: readonly number[];
};

/** A window of a topic that does not exist (a wrong KAFKA_TOPIC_PREFIX, or services never started). */
export class MissingTopicError extends Error {
  override readonly name = 'MissingTopicError';
  readonly topic: string;
  constructor(topic: string) {
    super(`topic ${topic} does not exist; check KAFKA_TOPIC_PREFIX`);
    this.topic = topic;
  }
}

type PartitionOffset = { readonly partition: number; readonly offset: string };

/** Each partition's range from the offsets of the window's start and end (an end not given: empty). */
export const rangesBetween = (
  starts: readonly PartitionOffset[],
  ends: readonly PartitionOffset[],
): Map<number, PartitionRange> => {
  const endOf = new Map(ends.map(({ partition, offset }) => [partition, BigInt(offset)]));
  return new Map(
    starts.map(({ partition, offset }) => [
      partition,
      { start: BigInt(offset), end: endOf.get(partition) ?? BigInt(offset) },
    ]),
  );
};

/** The ranges that read exactly the record at `offset` of `partition`, when the topic still holds it. */
export const rangesOfRecordAt = (
  offsets: readonly { readonly partition: number; readonly low: string; readonly high: string }[],
  partition: number,
  offset: string,
): Map<number, PartitionRange> => {
  const wanted = BigInt(offset);
  return new Map(
    offsets.map(({ partition: candidate, low, high }) => {
      const present = candidate === partition && wanted >= BigInt(low) && wanted < BigInt(high);
      return [
        candidate,
        present ? { start: wanted, end: wanted + 1n } : { start: BigInt(high), end: BigInt(high) },
      ];
    }),
  );
};

/** How many records the ranges hold. */
export const recordsIn = (ranges: PartitionRanges): number =>
  [...ranges.values()].reduce((sum, range) => sum + Math.max(0, Number(range.end - range.start)), 0);

export const headersAsText = (headers: Record<string, unknown> | undefined): Record<string, string> => {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers ?? {})) {
    const first: unknown = Array.isArray(value) ? value[0] : value;
    if (first instanceof Buffer || typeof first === 'string') out[name] = first.toString();
  }
  return out;
};

/**
 * One topic's read as it goes: which partitions still have records of the window to give, how
 * many were read, and whether the cap stopped it. `accept` says whether a fetched record is in
 * the window (a record outside it is ignored, never taken for its end: a seek not applied yet,
 * or a record written since the read started).
 */
export class TopicRead {
  readonly topic: string;
  readonly ranges: PartitionRanges;
  readonly inWindow: number;
  readonly #maxRecords: number;
  readonly #open: Set<number>;
  #read = 0;
  #capped = false;

  constructor(topic: string, ranges: PartitionRanges, maxRecords: number) {
    this.topic = topic;
    this.ranges = ranges;
    this.inWindow = recordsIn(ranges);
    this.#maxRecords = maxRecords;
    this.#open = new Set(
      [...ranges].filter(([, range]) => range.end > range.start).map(([partition]) => partition),
    );
  }

  get done(): boolean {
    return this.#open.size === 0;
  }

  /** True when the record is the window's: counted, and its partition closed at the range's end. */
  accept(partition: number, offset: string): boolean {
    const range = this.ranges.get(partition);
    if (!range || !this.#open.has(partition)) return false;
    const at = BigInt(offset);
    if (at < range.start || at >= range.end) return false;
    this.#read += 1;
    if (at >= range.end - 1n) this.#open.delete(partition);
    if (this.#read >= this.#maxRecords && this.#open.size > 0) {
      this.#capped = true;
      this.#open.clear();
    }
    return true;
  }

  summary(timedOut: boolean): WindowReadSummary {
    return {
      topic: this.topic,
      inWindow: this.inWindow,
      read: this.#read,
      capped: this.#capped,
      timedOut: timedOut && this.#open.size > 0 && !this.#capped,
      unfinished: [...this.#open],
    };
  }
}

/** The window's offsets per partition, from Kafka's time index. */
export const windowRanges = async (
  kafka: Kafka,
  window: TopicWindow,
): Promise<Map<number, PartitionRange>> => {
  const admin = kafka.admin();
  await admin.connect();
  try {
    if (!(await admin.listTopics()).includes(window.topic)) throw new MissingTopicError(window.topic);
    const starts = await admin.fetchTopicOffsetsByTimestamp(window.topic, window.from);
    // The offset of the first record at or after `to`, or the end when there is none.
    const ends =
      window.to === undefined
        ? (await admin.fetchTopicOffsets(window.topic)).map(({ partition, high }) => ({
            partition,
            offset: high,
          }))
        : await admin.fetchTopicOffsetsByTimestamp(window.topic, window.to);
    return rangesBetween(starts, ends);
  } finally {
    await admin.disconnect();
  }
};

export type RangeReadOptions = {
  readonly kafka: Kafka;
  readonly maxRecords: number;
  readonly timeoutMs: number;
  /** Names the throwaway consumer group (`<prefix>.<uuid>`), so a reader is known in Kafka's tools. */
  readonly groupPrefix: string;
  /** Each record of the window, in offset order within its partition. */
  readonly onRecord: (record: WindowRecord) => void | Promise<void>;
};

/** Reads given ranges of topics once, in one consumer. */
export const readRanges = async (
  options: RangeReadOptions & {
    readonly topics: readonly { readonly topic: string; readonly ranges: PartitionRanges }[];
  },
): Promise<readonly WindowReadSummary[]> => {
  const { kafka } = options;
  const reads = new Map(
    options.topics.map(({ topic, ranges }) => [topic, new TopicRead(topic, ranges, options.maxRecords)]),
  );
  const toRead = [...reads.values()].filter((read) => !read.done);
  if (toRead.length === 0) return [...reads.values()].map((read) => read.summary(false));

  const groupId = `${options.groupPrefix}.${randomUUID()}`;
  // A short fetch wait: a partition at its window's end has nothing more to give, and
  // disconnecting waits for the fetch under way (kafkajs's default wait is 5 s).
  const consumer = kafka.consumer({
    groupId,
    allowAutoTopicCreation: false,
    maxBytesPerPartition: 4 << 20,
    maxWaitTimeInMs: 200,
  });
  let finish = (): void => undefined;
  const finished = new Promise<void>((resolve) => {
    finish = resolve;
  });
  const timeout = AbortSignal.timeout(options.timeoutMs);
  timeout.addEventListener('abort', () => finish(), { once: true });
  try {
    await consumer.connect();
    await consumer.subscribe({ topics: toRead.map((read) => read.topic) });
    // kafkajs seeks only a running consumer; these apply before its first fetch (as setOffsets does).
    const running = consumer.run({
      autoCommit: false,
      eachMessage: async ({ topic, partition, message }) => {
        const read = reads.get(topic);
        if (!read) return;
        if (read.accept(partition, message.offset))
          await options.onRecord({
            topic,
            partition,
            offset: message.offset,
            timestamp: Number(message.timestamp),
            key: message.key,
            value: message.value,
            headers: headersAsText(message.headers),
          });
        if (read.done) consumer.pause([{ topic }]);
        if (toRead.every((each) => each.done)) finish();
      },
    });
    for (const read of toRead)
      for (const [partition, range] of read.ranges)
        if (range.end > range.start)
          consumer.seek({ topic: read.topic, partition, offset: range.start.toString() });
    await running;
    await finished;
  } finally {
    await consumer.disconnect().catch(() => undefined);
    await deleteThrowawayGroup(kafka, groupId);
  }
  return [...reads.values()].map((read) => read.summary(timeout.aborted));
};

/** Reads each window once, in one consumer. */
export const readTopicWindows = async (
  options: RangeReadOptions & { readonly windows: readonly TopicWindow[] },
): Promise<readonly WindowReadSummary[]> => {
  const topics: { topic: string; ranges: PartitionRanges }[] = [];
  for (const window of options.windows)
    topics.push({ topic: window.topic, ranges: await windowRanges(options.kafka, window) });
  return readRanges({ ...options, topics });
};

/** The one record at `offset` of `partition`, or undefined when there is none (or it is gone). */
export const readRecordAt = async (options: {
  readonly kafka: Kafka;
  readonly topic: string;
  readonly partition: number;
  readonly offset: string;
  readonly timeoutMs: number;
  readonly groupPrefix: string;
}): Promise<WindowRecord | undefined> => {
  const admin = options.kafka.admin();
  await admin.connect();
  let ranges: PartitionRanges;
  try {
    ranges = rangesOfRecordAt(
      await admin.fetchTopicOffsets(options.topic),
      options.partition,
      options.offset,
    );
  } finally {
    await admin.disconnect();
  }
  let found: WindowRecord | undefined;
  await readRanges({
    ...options,
    topics: [{ topic: options.topic, ranges }],
    maxRecords: 1,
    onRecord: (record) => {
      found = record;
    },
  });
  return found;
};
