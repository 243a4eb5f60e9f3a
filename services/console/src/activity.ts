/**
 * Reads for the organisations and dead-letter pages: what arrived and what failed in a window,
 * per organisation, from the topics themselves (bounded reads, lib/kafka/topic-window.ts).
 */
import type { Kafka } from 'kafkajs';
import {
  matchesFilter,
  type ArchivedDeadLetter,
  type DeadLetterFilter,
} from '../../../lib/dead-letters/index.ts';
import type { AvroCodec } from '../../../lib/registry.ts';
import { decodeLetter, letterIdOf } from './records.ts';
import {
  readRecordAt,
  readTopicWindows,
  type Topics,
  type WindowReadSummary,
  type WindowRecord,
} from '../../../lib/kafka/index.ts';

export type OrgActivity = {
  readonly events: number;
  readonly lastEventAt: number | undefined;
  readonly deadLetters: number;
};

export type ActivityReport = {
  /** By the raw record's key: an organisation id, or `portal:<id>` for events no organisation had. */
  readonly byKey: ReadonlyMap<string, OrgActivity>;
  readonly reads: readonly WindowReadSummary[];
};

type Reads = {
  readonly kafka: Kafka;
  readonly codec: AvroCodec;
  readonly topics: Topics;
  readonly maxRecords: number;
  readonly timeoutMs: number;
};

/**
 * Events (raw records, counted by key: ingest keys them by organisation) and dead letters (by
 * the organisation they name) since `from`. The raw records are not decoded: only counted.
 */
export const readActivity = async (deps: Reads & { readonly from: number }): Promise<ActivityReport> => {
  const byKey = new Map<string, { events: number; lastEventAt: number | undefined; deadLetters: number }>();
  const entry = (key: string) => {
    let found = byKey.get(key);
    if (!found) {
      found = { events: 0, lastEventAt: undefined, deadLetters: 0 };
      byKey.set(key, found);
    }
    return found;
  };
  const seenLetters = new Set<string>();
  const reads = await readTopicWindows({
    kafka: deps.kafka,
    maxRecords: deps.maxRecords,
    timeoutMs: deps.timeoutMs,
    groupPrefix: 'console',
    windows: [
      { topic: deps.topics.rawEvents.name, from: deps.from },
      { topic: deps.topics.deadLetters.name, from: deps.from },
    ],
    onRecord: async (record) => {
      if (record.topic === deps.topics.rawEvents.name) {
        const counts = entry(record.key?.toString() ?? '?');
        counts.events += 1;
        counts.lastEventAt = Math.max(counts.lastEventAt ?? 0, record.timestamp);
        return;
      }
      const id = letterIdOf(record);
      if (id !== undefined && seenLetters.has(id)) return;
      if (id !== undefined) seenLetters.add(id);
      const archived = await decodeLetter(deps.codec, record).catch(() => undefined);
      entry(archived?.letter.orgId ?? '?').deadLetters += 1;
    },
  });
  return { byKey, reads };
};

export type LetterWindow = {
  readonly letters: readonly ArchivedDeadLetter[];
  readonly read: WindowReadSummary | undefined;
  readonly undecodable: number;
};

/** Dead letters written since `filter.since` (the record's time), filtered like `npm run dlq`. */
export const readLetterWindow = async (
  deps: Reads & { readonly filter: DeadLetterFilter },
): Promise<LetterWindow> => {
  const letters: ArchivedDeadLetter[] = [];
  const seen = new Set<string>();
  let undecodable = 0;
  const [read] = await readTopicWindows({
    kafka: deps.kafka,
    maxRecords: deps.maxRecords,
    timeoutMs: deps.timeoutMs,
    groupPrefix: 'console',
    windows: [{ topic: deps.topics.deadLetters.name, from: deps.filter.since ?? 0 }],
    onRecord: async (record: WindowRecord) => {
      const id = letterIdOf(record);
      if (id !== undefined && seen.has(id)) return;
      if (id !== undefined) seen.add(id);
      try {
        const archived = await decodeLetter(deps.codec, record);
        if (matchesFilter(archived.letter, { ...deps.filter, since: undefined })) letters.push(archived);
      } catch {
        undecodable += 1;
      }
    },
  });
  letters.sort(
    (a, b) =>
      a.letter.failedAt - b.letter.failedAt ||
      a.partition - b.partition ||
      Number(BigInt(a.offset) - BigInt(b.offset)),
  );
  return { letters, read, undecodable };
};

/** One letter by its position on the dead-letter topic. */
export const readLetterAt = async (
  deps: Omit<Reads, 'maxRecords'> & { readonly partition: number; readonly offset: string },
): Promise<ArchivedDeadLetter | undefined> => {
  const record = await readRecordAt({
    kafka: deps.kafka,
    topic: deps.topics.deadLetters.name,
    partition: deps.partition,
    offset: deps.offset,
    timeoutMs: deps.timeoutMs,
    groupPrefix: 'console',
  });
  return record ? decodeLetter(deps.codec, record) : undefined;
};
