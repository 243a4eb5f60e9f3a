/**
 * The time window reprocess reads: the options that name it, and one organisation's records of
 * it (lib/kafka/topic-window.ts reads it; only the window is fetched).
 */
import type { Kafka, KafkaMessage } from 'kafkajs';
import { parseSince } from '../../lib/dead-letters/index.ts';
import {
  MissingTopicError,
  readRanges,
  recordsIn,
  windowRanges,
  type WindowRecord,
} from '../../lib/kafka/index.ts';

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

export type { WindowRecord };

/** A record as the processor's handler takes it (kafkajs's message shape). */
export const asKafkaMessage = (record: WindowRecord): KafkaMessage => ({
  key: record.key,
  value: record.value,
  timestamp: String(record.timestamp),
  attributes: 0,
  offset: record.offset,
  headers: { ...record.headers },
});

/**
 * The records of `topic` in the window whose key `keep` accepts, by partition, in offset order.
 * Refuses a window of more than `maxRecords` records before reading any (say how to narrow it).
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
  const ranges = await windowRanges(kafka, {
    topic,
    from: options.window.since,
    to: options.window.until,
  }).catch((error: unknown) => {
    if (error instanceof MissingTopicError)
      throw new ReprocessError(`${error.message} (the services create it when they start)`);
    throw error;
  });
  const total = recordsIn(ranges);
  if (total > options.maxRecords)
    throw new ReprocessError(
      `the window holds ${total} records on ${topic}, more than --max-records ${options.maxRecords}: narrow --since/--until, or raise --max-records`,
    );
  if (total === 0) return { records: [], scanned: 0 };

  const records: WindowRecord[] = [];
  let read = 0;
  const timeoutMs = options.timeoutMs ?? 120000;
  const [summary] = await readRanges({
    kafka,
    topics: [{ topic, ranges }],
    maxRecords: total,
    timeoutMs,
    groupPrefix: `reprocess.${topic}`,
    onRecord: (record) => {
      read += 1;
      if (options.keep(record.key?.toString('utf8') ?? null)) records.push(record);
      options.onProgress?.(read, total);
    },
  });
  if (summary?.timedOut)
    throw new ReprocessError(
      `${topic}: partitions ${summary.unfinished.join(', ')} not read to the window's end within ${timeoutMs} ms; is Kafka reachable?`,
    );
  // Offset order within a partition is the order the processor saw them in (timestamps of
  // several ingest replicas need not be); partitions are independent of each other.
  records.sort((a, b) => a.partition - b.partition || Number(BigInt(a.offset) - BigInt(b.offset)));
  return { records, scanned: read };
};
