/**
 * Which of a partition's messages are finished, and what to commit: no I/O, no clock.
 *
 * A partition's commit only ever passes messages that are all finished, so a crash redelivers
 * exactly the unfinished work (handlers are idempotent), and it never moves back.
 */

/** One message of a partition (live or read again), kept in offset order with the others. */
export type Tracked = { readonly offset: bigint; done: boolean };

/** An offset to commit and the metadata that goes with it (parked tenants' cursors, or none). */
export type CommitPoint = { readonly offset: bigint; readonly metadata: string | null };

/** What Kafka last took for a partition (offset undefined: nothing committed by this owner yet). */
export type Committed = { readonly offset: bigint | undefined; readonly metadata: string | null };

/**
 * The unbroken run of finished messages at the head of `entries`: how many they are, and the
 * offset just after the last of them (undefined when the first message is not finished).
 */
export const finishedRun = (
  entries: readonly Tracked[],
): { readonly count: number; readonly next: bigint | undefined } => {
  let count = 0;
  while (entries[count]?.done) count++;
  const last = entries[count - 1];
  return { count, next: last === undefined ? undefined : last.offset + 1n };
};

/** The offset of the first message not finished yet. */
export const firstUnfinished = (entries: readonly Tracked[]): bigint | undefined =>
  entries.find((entry) => !entry.done)?.offset;

/**
 * What to commit now, or undefined when neither the offset moved on nor the metadata changed (a
 * change of cursors is committed even when the offset is not). A point below the committed
 * offset (a cursor that did not fit in the metadata holds it back) keeps the committed offset.
 */
export const nextCommit = (committed: Committed, point: CommitPoint): CommitPoint | undefined => {
  const moved = committed.offset === undefined || point.offset > committed.offset;
  if (!moved && point.metadata === committed.metadata) return undefined;
  const offset =
    committed.offset !== undefined && point.offset < committed.offset ? committed.offset : point.offset;
  return { offset, metadata: point.metadata };
};
