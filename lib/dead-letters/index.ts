/**
 * Dead letters, for every service: the one list of reasons, the idempotent writer the keyed
 * consumer uses, and the archive the operator command (`npm run dlq`, dlq-cli.ts) reads and
 * replays.
 */
export {
  DeadLetterReason,
  DEAD_LETTER_ID_HEADER,
  DEAD_LETTER_RECORD,
  deadLetterId,
  type DeadLetter,
} from './letter.ts';
export {
  createDeadLetterWriter,
  writtenMarkerKey,
  WRITTEN_KEEP_MS,
  type DeadLetterDetails,
  type DeadLetterSource,
  type DeadLetterWriter,
} from './writer.ts';
export {
  REPLAYED_KEEP_MS,
  matchesFilter,
  parseSince,
  readDeadLetters,
  replayDeadLetters,
  replayedMarkerKey,
  type ArchivedDeadLetter,
  type DeadLetterFilter,
  type ReadProgress,
  type ReadResult,
  type ReplayOutcome,
  type ReplaySummary,
} from './archive.ts';
