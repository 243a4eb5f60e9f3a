/**
 * Replay at a capped rate, and the dry run of a replay. Built on archive.ts's replayDeadLetters
 * (claim → produce → confirm, one letter at a time), which this module does not change.
 */
import type { Producer } from 'kafkajs';
import { mgetAcrossSlots, type Redis } from '../../lib/redis.ts';
import {
  replayDeadLetters,
  replayedMarkerKey,
  type ArchivedDeadLetter,
  type ReplayOutcome,
  type ReplaySummary,
} from '../../lib/dead-letters/index.ts';

/**
 * Letters per second a replay writes unless told otherwise: a replayed burst lands on the
 * consumers (and OpenCX's per-organisation limit, 50 per second by default) like live traffic.
 */
export const DEFAULT_REPLAY_RATE = 20;

/**
 * Replays the letters in order, starting letter i no sooner than i / rate seconds after the
 * first: a steady pace, not bursts. `now` and `sleep` are injected so a unit test runs in no time.
 */
export const replayAtRate = async (options: {
  letters: readonly ArchivedDeadLetter[];
  producer: Producer;
  redis: Redis;
  keyPrefix: string;
  /** Letters per second, > 0. */
  ratePerSecond: number;
  onProgress?: (progress: { done: number; total: number; outcome: ReplayOutcome }) => void;
  now?: () => number;
  sleep?: (ms: number) => Promise<void>;
  /** One letter's replay (archive.ts's by default); a test may count the calls. */
  replay?: typeof replayDeadLetters;
}): Promise<ReplaySummary> => {
  const now = options.now ?? Date.now;
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));
  const replay = options.replay ?? replayDeadLetters;
  if (!(options.ratePerSecond > 0)) throw new RangeError('ratePerSecond must be above 0');
  const intervalMs = 1000 / options.ratePerSecond;
  const started = now();
  const total = options.letters.length;
  let replayed = 0;
  let alreadyReplayed = 0;
  let failed = 0;
  const failures: ReplaySummary['failures'][number][] = [];
  for (const [index, letter] of options.letters.entries()) {
    const wait = started + index * intervalMs - now();
    if (wait > 0) await sleep(wait);
    const one = await replay({
      letters: [letter],
      producer: options.producer,
      redis: options.redis,
      keyPrefix: options.keyPrefix,
    });
    replayed += one.replayed;
    alreadyReplayed += one.alreadyReplayed;
    failed += one.failed;
    failures.push(...one.failures);
    const outcome: ReplayOutcome =
      one.replayed > 0 ? 'replayed' : one.alreadyReplayed > 0 ? 'already-replayed' : 'failed';
    options.onProgress?.({ done: index + 1, total, outcome });
  }
  return { replayed, alreadyReplayed, failed, failures };
};

export type ReplayPlan = {
  /** Letters a replay would put back, in the order it would. */
  readonly toReplay: readonly ArchivedDeadLetter[];
  /** Letters an earlier replay already put back (a replay would skip them). */
  readonly alreadyReplayed: readonly ArchivedDeadLetter[];
};

/** What a replay would do, read from the replay markers; writes nothing. */
export const planReplay = async (options: {
  letters: readonly ArchivedDeadLetter[];
  redis: Pick<Redis, 'mget' | 'isCluster'>;
  keyPrefix: string;
}): Promise<ReplayPlan> => {
  const { letters } = options;
  if (letters.length === 0) return { toReplay: [], alreadyReplayed: [] };
  const markers = await mgetAcrossSlots(
    options.redis,
    letters.map((letter) => replayedMarkerKey(options.keyPrefix, letter)),
  );
  const toReplay: ArchivedDeadLetter[] = [];
  const alreadyReplayed: ArchivedDeadLetter[] = [];
  letters.forEach((letter, index) =>
    (markers[index] === 'replayed' ? alreadyReplayed : toReplay).push(letter),
  );
  return { toReplay, alreadyReplayed };
};
