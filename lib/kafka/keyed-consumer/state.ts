import type { KafkaMessage } from 'kafkajs';
import type { CommitPoint, Tracked } from './offset-tracking.ts';

/**
 * A re-read of one partition for tenants whose gate opened: from the lowest of their cursors
 * until it reaches what the live stream has read (`handoverAt`).
 */
export type Replay = {
  /** Tenant → the offset its parked messages start at. */
  readonly tenants: Map<string, bigint>;
  /** The next offset the reader expects. */
  position: bigint;
  /** Set once the reader caught up: live messages from here on are the live stream's. */
  handoverAt: bigint | undefined;
  reading: boolean;
  /** Messages handed to the queues and not finished, in offset order. */
  readonly entries: Tracked[];
  waiting: number;
  paused: boolean;
  handed: number;
};

/** One assigned partition: what it has in flight, and whether fetching it is paused. */
export type PartitionState = {
  readonly topic: string;
  readonly partition: number;
  /** The assignment it belongs to: work of an earlier one is dropped, not committed. */
  readonly epoch: number;
  /** The live stream's messages not yet passed by a commit, in offset order. */
  readonly entries: Tracked[];
  committed: bigint | undefined;
  /** The offset after the last message of an unbroken run of finished ones: what to commit next. */
  committable: bigint | undefined;
  /** Messages of this partition queued or being handled. */
  waiting: number;
  paused: boolean;
  /** One past the highest offset the live stream has queued. */
  nextOffset: bigint | undefined;
  /** Tenants parked on this partition: their messages from `from` on are to be read again. */
  readonly parked: Map<string, { from: bigint }>;
  /** Since when each tenant has waited with no message of it handled (for maxWaitMs). */
  readonly waitingSince: Map<string, number>;
  replay: Replay | undefined;
  /** The cursor metadata last committed (a change is committed even when the offset is not). */
  committedMetadata: string | null;
};

/** A partition's state at the start of an assignment: from its commit, if it was read. */
export const partitionState = (
  topic: string,
  partition: number,
  epoch: number,
  restored: CommitPoint | undefined,
): PartitionState => ({
  topic,
  partition,
  epoch,
  entries: [],
  committed: restored?.offset,
  committable: undefined,
  waiting: 0,
  paused: false,
  // The live stream goes on from the commit.
  nextOffset: restored?.offset,
  parked: new Map(),
  waitingSince: new Map(),
  replay: undefined,
  committedMetadata: restored?.metadata ?? null,
});

/** One message queued under its ordering key. */
export type Work = {
  readonly message: KafkaMessage;
  readonly topic: string;
  readonly partition: number;
  readonly epoch: number;
  readonly tracked: Tracked;
  readonly state: PartitionState;
  /** Set for a parked tenant's message read again; undefined for the live stream's. */
  readonly replay?: Replay;
  /**
   * Whether the message was dead-lettered before (see the outcome runner), asked as it is
   * queued: a fetched batch's markers are read together (one MGET per turn), not one GET as each
   * conversation reaches its message. False when Redis did not answer.
   */
  readonly deadLettered: Promise<boolean>;
};
