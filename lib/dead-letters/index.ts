/**
 * Dead letters, for every service: their reasons (the list lives in lib/contracts, with the
 * pipeline's other reasons), the idempotent writer the keyed consumer uses, and the archive the
 * operator command (`npm run dlq`, tools/dlq) and the console read and replay.
 */
export { DeadLetterReason } from '../contracts/index.ts';
export { DEAD_LETTER_ID_HEADER, DEAD_LETTER_RECORD, deadLetterId, type DeadLetter } from './letter.ts';
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
