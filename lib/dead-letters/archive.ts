/**
 * The dead-letter topic as an operator sees it: read it whole, pick letters, put them back.
 * Letters of every service (processor, outbound) share the topic and this reader.
 * No process, argv or console here (tools/dlq/dlq-cli.ts does that), so tests drive it directly.
 */
import { randomUUID } from 'node:crypto';
import type { Kafka, Producer } from 'kafkajs';
import type { Redis } from '../redis.ts';
import type { AvroCodec } from '../registry.ts';
import { DEAD_LETTER_ID_HEADER, DEAD_LETTER_RECORD, type DeadLetter } from './letter.ts';
import { deleteThrowawayGroup as deleteGroup } from '../kafka/client.ts';
import { withTimeout } from '../timeout.ts';

export type DeadLetterFilter = {
  readonly orgId?: string;
  /** Epoch ms: letters that failed at or after it. */
  readonly since?: number;
  readonly reason?: string;
  /** The first N matching letters, oldest first. */
  readonly limit?: number;
};

/** A letter with where it sits on the dead-letter topic: that position is its identity. */
export type ArchivedDeadLetter = {
  readonly topic: string;
  readonly partition: number;
  readonly offset: string;
  readonly letter: DeadLetter;
};

export type ReadProgress = { readonly read: number; readonly total: number };

export type ReadResult = {
  readonly letters: readonly ArchivedDeadLetter[];
  /** Records on the topic that are not dead letters we can decode; left alone, but counted. */
  readonly undecodable: number;
  /** Why the first of them failed: an unreachable registry looks like this too, so say it. */
  readonly firstUndecodableError?: string;
};

const durationUnitsMs: Readonly<Record<string, number>> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 604_800_000,
};

/** `--since`: an ISO date, epoch milliseconds, or a duration back from now (`90m`, `2h`, `7d`). */
export const parseSince = (text: string, now: number): number | undefined => {
  const duration = /^(\d+)(ms|s|m|h|d|w)$/.exec(text.trim());
  if (duration) return now - Number(duration[1]) * (durationUnitsMs[duration[2] ?? ''] ?? Number.NaN);
  if (/^\d+$/.test(text.trim())) return Number(text.trim());
  // Date.parse accepts odd strings ("1", "March"): only take what starts like an ISO date.
  if (!/^\d{4}-\d{2}-\d{2}/.test(text.trim())) return undefined;
  const parsed = Date.parse(text.trim());
  return Number.isNaN(parsed) ? undefined : parsed;
};

export const matchesFilter = (letter: DeadLetter, filter: DeadLetterFilter): boolean =>
  (filter.orgId === undefined || letter.orgId === filter.orgId) &&
  (filter.since === undefined || letter.failedAt >= filter.since) &&
  (filter.reason === undefined || letter.reason === filter.reason);

/** Oldest first; ties by position, so a conversation's letters replay in the order they failed. */
const byFailure = (a: ArchivedDeadLetter, b: ArchivedDeadLetter): number =>
  a.letter.failedAt - b.letter.failedAt ||
  a.partition - b.partition ||
  Number(BigInt(a.offset) - BigInt(b.offset));

/** Avro gives bytes as Buffers and the timestamp as a number or, with logical types on, a Date. */
const toDeadLetter = (record: Record<string, unknown>): DeadLetter => {
  const failedAt = record.failedAt instanceof Date ? record.failedAt.getTime() : Number(record.failedAt);
  return { ...(record as Omit<DeadLetter, 'failedAt'>), failedAt };
};

/**
 * Last offset to read per partition (and how many records that is), taken once: letters written
 * while we read wait for the next run.
 */
const endOffsets = async (
  kafka: Kafka,
  topic: string,
): Promise<{ last: Map<number, bigint>; total: number }> => {
  const admin = kafka.admin();
  await admin.connect();
  try {
    // Checked first: offsets of a missing topic fail with a retry loop and an unclear error.
    if (!(await admin.listTopics()).includes(topic)) throw new Error(`topic ${topic} does not exist`);
    const last = new Map<number, bigint>();
    let total = 0;
    for (const { partition, high, low } of await admin.fetchTopicOffsets(topic)) {
      if (BigInt(high) <= BigInt(low)) continue;
      last.set(partition, BigInt(high) - 1n);
      total += Number(BigInt(high) - BigInt(low));
    }
    return { last, total };
  } finally {
    await admin.disconnect();
  }
};

/**
 * Reads the dead-letter topic from the beginning up to the end offsets taken at the start.
 * kafkajs has no assign(), so this joins a consumer group of its own (as KafkaTable does),
 * commits nothing, and deletes the group afterwards.
 */
export const readDeadLetters = async (options: {
  kafka: Kafka;
  codec: AvroCodec;
  topic: string;
  filter?: DeadLetterFilter;
  onProgress?: (progress: ReadProgress) => void;
  timeoutMs?: number;
}): Promise<ReadResult> => {
  const { kafka, codec, topic, filter = {} } = options;
  const { last: remaining, total } = await endOffsets(kafka, topic);
  if (remaining.size === 0) return { letters: [], undecodable: 0 };

  const found: ArchivedDeadLetter[] = [];
  // A crash between writing a letter and remembering it writes it twice, with the same id: keep the first.
  const seenIds = new Set<string>();
  let read = 0;
  let undecodable = 0;
  let firstUndecodableError: string | undefined;
  const consume = async (
    partition: number,
    offset: string,
    value: Buffer | null,
    letterId: string | undefined,
  ): Promise<void> => {
    try {
      if (letterId !== undefined && seenIds.has(letterId)) {
        read += 1;
        options.onProgress?.({ read, total });
        return;
      }
      if (letterId !== undefined) seenIds.add(letterId);
      if (!value) throw new Error('no value');
      const { recordName, record } = await codec.decodeRecord(value);
      if (recordName !== DEAD_LETTER_RECORD) throw new Error(`a ${recordName}, not a dead letter`);
      const letter = toDeadLetter(record);
      if (matchesFilter(letter, filter)) found.push({ topic, partition, offset, letter });
    } catch (error) {
      undecodable += 1;
      firstUndecodableError ??= error instanceof Error ? error.message : String(error);
    }
    read += 1;
    options.onProgress?.({ read, total });
  };

  const groupId = `dlq-cli.${topic}.${randomUUID()}`;
  const consumer = kafka.consumer({ groupId, allowAutoTopicCreation: false });
  let done = (): void => undefined;
  const caughtUp = new Promise<void>((resolve) => {
    done = resolve;
  });
  const timeoutMs = options.timeoutMs ?? 60000;
  try {
    await consumer.connect();
    await consumer.subscribe({ topic, fromBeginning: true });
    await consumer.run({
      autoCommit: false,
      eachMessage: async ({ partition, message }) => {
        const last = remaining.get(partition);
        if (last === undefined || BigInt(message.offset) > last) return;
        await consume(
          partition,
          message.offset,
          message.value,
          message.headers?.[DEAD_LETTER_ID_HEADER]?.toString(),
        );
        if (BigInt(message.offset) >= last) {
          remaining.delete(partition);
          if (remaining.size === 0) done();
        }
      },
    });
    await withTimeout(
      caughtUp,
      timeoutMs,
      `${topic}: not read to the end within ${timeoutMs} ms; is Kafka reachable?`,
    );
  } finally {
    await consumer.disconnect();
    await deleteGroup(kafka, groupId);
  }
  const letters = found.sort(byFailure);
  return {
    letters: filter.limit === undefined ? letters : letters.slice(0, filter.limit),
    undecodable,
    ...(firstUndecodableError === undefined ? {} : { firstUndecodableError }),
  };
};

export type ReplayOutcome = 'replayed' | 'already-replayed' | 'failed';

export type ReplaySummary = {
  readonly replayed: number;
  readonly alreadyReplayed: number;
  readonly failed: number;
  readonly failures: readonly { readonly letter: ArchivedDeadLetter; readonly error: string }[];
};

export const REPLAYED_KEEP_MS = 30 * 24 * 60 * 60 * 1000;
const REPLAYED = 'replayed';

/** Redis key marking one dead letter (by its place on the dead-letter topic) as replayed. */
export const replayedMarkerKey = (keyPrefix: string, letter: ArchivedDeadLetter): string =>
  `${keyPrefix}dlq:replayed:${letter.topic}:${letter.partition}:${letter.offset}`;

// Deletes the claim only while it is still ours: never another run's claim or a confirmed marker.
const RELEASE_IF_OWNER = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`;

type ReplayDeps = {
  readonly producer: Producer;
  readonly redis: Redis;
  readonly keyPrefix: string;
  readonly owner: string;
  readonly claimMs: number;
};

/**
 * Claim → produce → confirm. A marker written only after the produce would let two operators
 * replay the same letter at once; one written before it would mark a letter whose produce
 * failed. So: SET NX with a short lease (ours alone while we produce), produce, then make the
 * marker last 30 days; a failed produce deletes our claim so the next run tries again. A crash
 * between produce and confirm leaves a lease that expires and the letter is produced again:
 * harmless, since downstream is idempotent (deterministic event ids, the processor's dedup by
 * message id, OpenCX's Idempotency-Key = event id).
 */
const replayOne = async (
  letter: ArchivedDeadLetter,
  deps: ReplayDeps,
): Promise<{ outcome: ReplayOutcome; error?: string }> => {
  const key = replayedMarkerKey(deps.keyPrefix, letter);
  const claim = `claim:${deps.owner}`;
  if ((await deps.redis.set(key, claim, 'PX', deps.claimMs, 'NX')) !== 'OK') {
    const current = await deps.redis.get(key);
    if (current === REPLAYED) return { outcome: 'already-replayed' };
    return {
      outcome: 'failed',
      error: 'another replay is putting this letter back right now; run again later to see it as replayed',
    };
  }
  try {
    await deps.producer.send({
      topic: letter.letter.sourceTopic,
      acks: -1,
      // The original key keeps the record on its conversation's partition and queue.
      messages: [
        {
          key: letter.letter.key,
          value: letter.letter.value,
          headers: {
            ...(letter.letter.headers ?? {}),
            'dead-letter-replay': `${letter.topic}:${letter.partition}:${letter.offset}`,
          },
        },
      ],
    });
  } catch (error) {
    await deps.redis.eval(RELEASE_IF_OWNER, 1, key, claim);
    return { outcome: 'failed', error: error instanceof Error ? error.message : String(error) };
  }
  await deps.redis.set(key, REPLAYED, 'PX', REPLAYED_KEEP_MS);
  return { outcome: 'replayed' };
};

/**
 * Puts each letter's original record back on its source topic, one at a time and in order,
 * skipping (and counting) letters an earlier run already replayed.
 */
export const replayDeadLetters = async (options: {
  letters: readonly ArchivedDeadLetter[];
  producer: Producer;
  redis: Redis;
  keyPrefix: string;
  claimMs?: number;
  onProgress?: (progress: { done: number; total: number; outcome: ReplayOutcome }) => void;
}): Promise<ReplaySummary> => {
  const deps: ReplayDeps = {
    producer: options.producer,
    redis: options.redis,
    keyPrefix: options.keyPrefix,
    owner: randomUUID(),
    claimMs: options.claimMs ?? 60000,
  };
  const counts = { replayed: 0, 'already-replayed': 0, failed: 0 };
  const failures: { letter: ArchivedDeadLetter; error: string }[] = [];
  for (const [index, letter] of options.letters.entries()) {
    // Redis failing mid-way fails this letter, not the run. Had the produce already happened,
    // the next run produces it again, which downstream idempotency makes harmless.
    const { outcome, error } = await replayOne(letter, deps).catch((failure: unknown) => ({
      outcome: 'failed' as const,
      error: failure instanceof Error ? failure.message : String(failure),
    }));
    counts[outcome] += 1;
    if (error !== undefined) failures.push({ letter, error });
    options.onProgress?.({ done: index + 1, total: options.letters.length, outcome });
  }
  return {
    replayed: counts.replayed,
    alreadyReplayed: counts['already-replayed'],
    failed: counts.failed,
    failures,
  };
};
