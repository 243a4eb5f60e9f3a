/**
 * A time window of a topic, read once and bounded: the offsets at its start and end come from
 * Kafka's time index (admin.fetchTopicOffsetsByTimestamp), so only the window is fetched.
 */
import { randomUUID } from 'node:crypto';
import type { Kafka, KafkaMessage } from 'kafkajs';
import { parseSince } from '../../lib/dead-letters/index.ts';
import { deleteThrowawayGroup as deleteGroup } from '../../lib/kafka/index.ts';

export type TimeWindow = {
  /** Epoch ms, inclusive (Kafka record timestamps). */
  readonly since: number;
  /** Epoch ms, exclusive; undefined: up to the end of the topic as it is when the read starts. */
  readonly until: number | undefined;
};

export class ReprocessError extends Error {
  override readonly name = 'ReprocessError';
}

/**
 * `--since` / `--until`: an ISO date, epoch milliseconds, or a duration back from now (`90m`,
 * `2h`, `7d`). Throws a ReprocessError naming the option and what it accepts.
 */
export const parseWindow = (since: string, until: string | undefined, now: number): TimeWindow => {
  const accepted =
    'an ISO date (2026-11-30T10:00:00Z), epoch milliseconds or a duration back from now (90m, 2h, 7d)';
  const start = parseSince(since, now);
  if (start === undefined) throw new ReprocessError(`--since "${since}" is not ${accepted}`);
  const end = until === undefined ? undefined : parseSince(until, now);
  if (until !== undefined && end === undefined)
    throw new ReprocessError(`--until "${until}" is not ${accepted}`);
  if (start > now) throw new ReprocessError(`--since ${new Date(start).toISOString()} is in the future`);
  if (end !== undefined && end <= start)
    throw new ReprocessError(
      `--until ${new Date(end).toISOString()} is not after --since ${new Date(start).toISOString()}`,
    );
  return { since: start, until: end };
};

export type WindowRecord = KafkaMessage & { readonly partition: number };

/** [first, end) offsets per partition, and how many records that is. */
const windowOffsets = async (
  kafka: Kafka,
  topic: string,
  window: TimeWindow,
): Promise<{ ranges: Map<number, { first: bigint; end: bigint }>; total: number }> => {
  const admin = kafka.admin();
  await admin.connect();
  try {
    if (!(await admin.listTopics()).includes(topic))
      throw new ReprocessError(
        `topic ${topic} does not exist; check KAFKA_TOPIC_PREFIX (the services create it when they start)`,
      );
    const starts = await admin.fetchTopicOffsetsByTimestamp(topic, window.since);
    // The offset of the first record at or after `until`, or the end when there is none.
    const ends =
      window.until === undefined
        ? (await admin.fetchTopicOffsets(topic)).map(({ partition, high }) => ({ partition, offset: high }))
        : await admin.fetchTopicOffsetsByTimestamp(topic, window.until);
    const ranges = new Map<number, { first: bigint; end: bigint }>();
    let total = 0;
    for (const { partition, offset } of starts) {
      const first = BigInt(offset);
      const end = BigInt(ends.find((candidate) => candidate.partition === partition)?.offset ?? offset);
      if (end <= first) continue;
      ranges.set(partition, { first, end });
      total += Number(end - first);
    }
    return { ranges, total };
  } finally {
    await admin.disconnect();
  }
};

/**
 * The records of `topic` in the window whose key `keep` accepts, by partition, in offset order.
 * Refuses a window of more than `maxRecords` records before reading any (say how to narrow it).
 * kafkajs has no assign(): a throwaway consumer group seeks each partition to the window's
 * start, commits nothing, and is deleted afterwards.
 */
export const readTopicWindow = async (options: {
  readonly kafka: Kafka;
  readonly topic: string;
  readonly window: TimeWindow;
  readonly keep: (key: string | null) => boolean;
  readonly maxRecords: number;
  readonly onProgress?: (read: number, total: number) => void;
  readonly timeoutMs?: number;
}): Promise<{ readonly records: readonly WindowRecord[]; readonly scanned: number }> => {
  const { kafka, topic } = options;
  const { ranges, total } = await windowOffsets(kafka, topic, options.window);
  if (total > options.maxRecords)
    throw new ReprocessError(
      `the window holds ${total} records on ${topic}, more than --max-records ${options.maxRecords}: narrow --since/--until, or raise --max-records`,
    );
  if (total === 0) return { records: [], scanned: 0 };

  const records: WindowRecord[] = [];
  const pending = new Set(ranges.keys());
  let read = 0;
  const groupId = `reprocess.${topic}.${randomUUID()}`;
  // A short fetch wait: a partition at its window's end has nothing more to give, and
  // disconnecting waits for the fetch under way (kafkajs's default wait is 5 s).
  const consumer = kafka.consumer({
    groupId,
    allowAutoTopicCreation: false,
    maxBytesPerPartition: 4 << 20,
    maxWaitTimeInMs: 250,
  });
  const timeoutMs = options.timeoutMs ?? 120000;
  let timer: NodeJS.Timeout | undefined;
  try {
    await consumer.connect();
    await consumer.subscribe({ topic, fromBeginning: false });
    const finished = new Promise<void>((resolve, reject) => {
      timer = setTimeout(
        () =>
          reject(
            new ReprocessError(
              `${topic}: partitions ${[...pending].join(', ')} not read to the window's end within ${timeoutMs} ms; is Kafka reachable?`,
            ),
          ),
        timeoutMs,
      );
      consumer
        .run({
          autoCommit: false,
          eachMessage: async ({ partition, message }) => {
            const range = ranges.get(partition);
            const offset = BigInt(message.offset);
            if (!range || offset < range.first || offset >= range.end || !pending.has(partition)) return;
            read += 1;
            if (options.keep(message.key?.toString('utf8') ?? null)) records.push({ ...message, partition });
            options.onProgress?.(read, total);
            if (offset >= range.end - 1n) {
              pending.delete(partition);
              if (pending.size === 0) resolve();
            }
          },
        })
        .catch(reject);
      // Seeks wait inside kafkajs until the partition is assigned to this consumer.
      for (const [partition, { first }] of ranges) consumer.seek({ topic, partition, offset: String(first) });
    });
    await finished;
  } finally {
    clearTimeout(timer);
    await consumer.disconnect();
    await deleteGroup(kafka, groupId);
  }
  // Offset order within a partition is the order the processor saw them in (timestamps of
  // several ingest replicas need not be); partitions are independent of each other.
  records.sort((a, b) => a.partition - b.partition || Number(BigInt(a.offset) - BigInt(b.offset)));
  return { records, scanned: read };
};
