import { randomUUID } from 'node:crypto';
import type { Kafka } from 'kafkajs';
import { deleteThrowawayGroup as deleteGroup } from '../../../../lib/kafka/index.ts';

/**
 * Bounded reads of time windows of topics, for the console's pages. Each read seeks by
 * timestamp (the first offset at or after `from`, per partition), stops at the offsets of `to`
 * (or at the end as it is when the read starts), reads at most `maxRecords` records per topic
 * and gives up after `timeoutMs`: a page says when it saw only part of a window.
 *
 * kafkajs has no assign(): a consumer group of its own (random id) seeks each partition to its
 * start as it runs (admin.setOffsets would join and leave the group once more first: 5 s more),
 * commits nothing, and is deleted after.
 */
export type TopicWindow = {
  readonly topic: string;
  /** Epoch ms, inclusive. */
  readonly from: number;
  /** Epoch ms, exclusive; undefined: up to the end of the topic as it is now. */
  readonly to?: number | undefined;
};

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
};

type PartitionRange = { start: bigint; end: bigint };

const rangesOf = async (kafka: Kafka, window: TopicWindow): Promise<Map<number, PartitionRange>> => {
  const admin = kafka.admin();
  await admin.connect();
  try {
    if (!(await admin.listTopics()).includes(window.topic))
      throw new Error(`topic ${window.topic} does not exist; check KAFKA_TOPIC_PREFIX`);
    const starts = await admin.fetchTopicOffsetsByTimestamp(window.topic, window.from);
    const ends =
      window.to === undefined
        ? (await admin.fetchTopicOffsets(window.topic)).map(({ partition, high }) => ({
            partition,
            offset: high,
          }))
        : await admin.fetchTopicOffsetsByTimestamp(window.topic, window.to);
    const endOf = new Map(ends.map(({ partition, offset }) => [partition, BigInt(offset)]));
    return new Map(
      starts.map(({ partition, offset }) => [
        partition,
        { start: BigInt(offset), end: endOf.get(partition) ?? BigInt(offset) },
      ]),
    );
  } finally {
    await admin.disconnect();
  }
};

const headersAsText = (headers: Record<string, unknown> | undefined): Record<string, string> => {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers ?? {})) {
    const first: unknown = Array.isArray(value) ? value[0] : value;
    if (first instanceof Buffer || typeof first === 'string') out[name] = first.toString();
  }
  return out;
};

type TopicRanges = { readonly topic: string; readonly ranges: ReadonlyMap<number, PartitionRange> };

/** Reads each window once, in one consumer; `onRecord` sees each record in partition order. */
export const readTopicWindows = async (options: {
  readonly kafka: Kafka;
  readonly windows: readonly TopicWindow[];
  readonly maxRecords: number;
  readonly timeoutMs: number;
  readonly onRecord: (record: WindowRecord) => void | Promise<void>;
}): Promise<readonly WindowReadSummary[]> => {
  const topics: TopicRanges[] = [];
  for (const window of options.windows)
    topics.push({ topic: window.topic, ranges: await rangesOf(options.kafka, window) });
  return readRanges({ ...options, topics });
};

/** The one record at `offset` of `partition`, or undefined when there is none (or it is gone). */
export const readRecordAt = async (options: {
  readonly kafka: Kafka;
  readonly topic: string;
  readonly partition: number;
  readonly offset: string;
  readonly timeoutMs: number;
}): Promise<WindowRecord | undefined> => {
  const admin = options.kafka.admin();
  await admin.connect();
  let ranges: Map<number, PartitionRange>;
  try {
    const offsets = await admin.fetchTopicOffsets(options.topic);
    ranges = new Map(
      offsets.map(({ partition, low, high }) => {
        const wanted = BigInt(options.offset);
        const present = partition === options.partition && wanted >= BigInt(low) && wanted < BigInt(high);
        return [
          partition,
          present ? { start: wanted, end: wanted + 1n } : { start: BigInt(high), end: BigInt(high) },
        ];
      }),
    );
  } finally {
    await admin.disconnect();
  }
  let found: WindowRecord | undefined;
  await readRanges({
    kafka: options.kafka,
    topics: [{ topic: options.topic, ranges }],
    maxRecords: 1,
    timeoutMs: options.timeoutMs,
    onRecord: (record) => {
      found = record;
    },
  });
  return found;
};

const readRanges = async (options: {
  readonly kafka: Kafka;
  readonly topics: readonly TopicRanges[];
  readonly maxRecords: number;
  readonly timeoutMs: number;
  readonly onRecord: (record: WindowRecord) => void | Promise<void>;
}): Promise<readonly WindowReadSummary[]> => {
  const { kafka } = options;
  const state = new Map<
    string,
    {
      ranges: ReadonlyMap<number, PartitionRange>;
      open: Set<number>;
      inWindow: number;
      read: number;
      capped: boolean;
    }
  >();
  for (const { topic, ranges } of options.topics) {
    const open = new Set(
      [...ranges].filter(([, range]) => range.end > range.start).map(([partition]) => partition),
    );
    const inWindow = [...ranges.values()].reduce(
      (sum, range) => sum + Math.max(0, Number(range.end - range.start)),
      0,
    );
    state.set(topic, { ranges, open, inWindow, read: 0, capped: false });
  }
  const summaries = (timedOut: boolean): WindowReadSummary[] =>
    [...state].map(([topic, topicState]) => ({
      topic,
      inWindow: topicState.inWindow,
      read: topicState.read,
      capped: topicState.capped,
      timedOut: timedOut && topicState.open.size > 0 && !topicState.capped,
    }));
  const toRead = [...state].filter(([, topicState]) => topicState.open.size > 0);
  if (toRead.length === 0) return summaries(false);

  const groupId = `console.${randomUUID()}`;
  const consumer = kafka.consumer({ groupId, allowAutoTopicCreation: false, maxWaitTimeInMs: 200 });
  let finish = (): void => undefined;
  const finished = new Promise<void>((resolve) => {
    finish = resolve;
  });
  const isDone = (): boolean => toRead.every(([, topicState]) => topicState.open.size === 0);
  const timeout = AbortSignal.timeout(options.timeoutMs);
  timeout.addEventListener('abort', () => finish(), { once: true });
  try {
    await consumer.connect();
    await consumer.subscribe({ topics: toRead.map(([topic]) => topic) });
    // kafkajs seeks only a running consumer; these apply before its first fetch (as setOffsets does).
    const running = consumer.run({
      autoCommit: false,
      eachMessage: async ({ topic, partition, message }) => {
        const topicState = state.get(topic);
        const range = topicState?.ranges.get(partition);
        if (!topicState || !range || !topicState.open.has(partition)) return;
        const offset = BigInt(message.offset);
        // Outside the range is ignored, never taken for its end: a seek not applied yet, or a record
        // written since the read started.
        if (offset >= range.start && offset < range.end) {
          topicState.read += 1;
          await options.onRecord({
            topic,
            partition,
            offset: message.offset,
            timestamp: Number(message.timestamp),
            key: message.key,
            value: message.value,
            headers: headersAsText(message.headers),
          });
          if (offset >= range.end - 1n) topicState.open.delete(partition);
          if (topicState.read >= options.maxRecords && topicState.open.size > 0) {
            topicState.capped = true;
            topicState.open.clear();
          }
        }
        if (topicState.open.size === 0) consumer.pause([{ topic }]);
        if (isDone()) finish();
      },
    });
    for (const [topic, topicState] of toRead)
      for (const partition of topicState.open) {
        const range = topicState.ranges.get(partition);
        if (range) consumer.seek({ topic, partition, offset: range.start.toString() });
      }
    await running;
    await finished;
  } finally {
    await consumer.disconnect().catch(() => undefined);
    await deleteGroup(kafka, groupId);
  }
  return summaries(timeout.aborted);
};
