import type { Consumer } from 'kafkajs';
import type { Logger } from '../../log.ts';
import { finishedRun, nextCommit, type CommitPoint } from './offset-tracking.ts';
import type { PartitionState } from './state.ts';

export type OffsetCommitsDeps = {
  readonly consumer: Consumer;
  readonly logger: Logger;
  readonly intervalMs: number;
  /** The current assignment's partitions. */
  readonly partitions: () => Iterable<PartitionState>;
  readonly partition: (topic: string, partition: number) => PartitionState | undefined;
  readonly epoch: () => number;
  /** What to commit for a partition whose finished messages end at `next` (parking may hold it back). */
  readonly commitPoint: (state: PartitionState, next: bigint) => CommitPoint;
};

/**
 * Commits each partition up to its first unfinished message, at most once per interval: a
 * finished message asks for a commit, and the commits of all partitions go together.
 */
export class OffsetCommits {
  readonly #deps: OffsetCommitsDeps;
  #timer: NodeJS.Timeout | undefined;

  constructor(deps: OffsetCommitsDeps) {
    this.#deps = deps;
  }

  schedule(): void {
    this.#timer ??= setTimeout(() => {
      this.#timer = undefined;
      this.commit().catch((error: unknown) => {
        // Nothing is lost meanwhile (a restart would redeliver finished work, which handlers
        // treat as duplicates), but try again rather than wait for the next finished message.
        this.#deps.logger.warn({ err: error }, 'offset commit failed; trying again');
        this.schedule();
      });
    }, this.#deps.intervalMs);
  }

  /** The scheduled commit will not run (the consumer commits one last time itself at stop). */
  cancel(): void {
    clearTimeout(this.#timer);
  }

  async commit(): Promise<void> {
    const { consumer, epoch, commitPoint } = this.#deps;
    const offsets: { topic: string; partition: number; offset: string; metadata: string | null }[] = [];
    for (const state of this.#deps.partitions()) {
      if (state.epoch !== epoch()) continue;
      const run = finishedRun(state.entries);
      if (run.count > 0) {
        state.entries.splice(0, run.count);
        state.committable = run.next;
      }
      const next = state.committable ?? state.committed;
      if (next === undefined) continue;
      const commit = nextCommit(
        { offset: state.committed, metadata: state.committedMetadata },
        commitPoint(state, next),
      );
      if (!commit) continue;
      offsets.push({
        topic: state.topic,
        partition: state.partition,
        offset: commit.offset.toString(),
        metadata: commit.metadata,
      });
    }
    if (offsets.length === 0) return;
    // The metadata only when there are cursors: kafkajs sends a missing one as null, and a
    // consumer that parks nothing commits as a plain consumer would.
    await consumer.commitOffsets(
      offsets.map(({ metadata, ...offset }) => (metadata === null ? offset : { ...offset, metadata })),
    );
    // Only once Kafka took it: a failed commit is tried again with the same (or a later) offset.
    for (const { topic, partition, offset, metadata } of offsets) {
      const state = this.#deps.partition(topic, partition);
      if (!state) continue;
      if (state.committed === undefined || BigInt(offset) > state.committed) state.committed = BigInt(offset);
      state.committedMetadata = metadata;
    }
  }
}
