import type { KafkaMessage } from 'kafkajs';
import type { BackPressure } from './key-queues.ts';
import type { CommitPoint, Tracked } from './offset-tracking.ts';
import type { ConsumerSettings } from './options.ts';
import type { TenantOutcomes } from './outcome-runner.ts';
import type { PartitionState, Replay, Work } from './state.ts';

/**
 * Where the keyed consumer lets parking in: everything it does for tenants that must wait. The
 * consumer always has one: `noParking` when it was given no TenantParking (tests, tools), else
 * the one `createTenantParking` makes (every service consumer).
 */
export type Parking = TenantOutcomes<Work> & {
  /** Before the consumer connects. */
  readonly start: () => Promise<void>;
  /** Alongside the consumer's disconnect, once its queues are stopped and its last commit made. */
  readonly stop: () => Promise<void>;
  /** A new assignment (the old one's partition states are gone). */
  readonly assigned: (assignment: Readonly<Record<string, readonly number[]>>) => void;
  /** The partition's committed offset and metadata, read before its first message; undefined: not read. */
  readonly restore: (topic: string, partition: number) => Promise<CommitPoint | undefined>;
  /** Takes over the cursors in the partition's committed metadata (its last owner's parked tenants). */
  readonly adopt: (state: PartitionState) => void;
  /** True when the live message is parked as it arrives (its tenant's cursor covers it). */
  readonly parkOnArrival: (state: PartitionState, message: KafkaMessage, tracked: Tracked) => boolean;
  /** Parks, passes over or `run`s the message at the head of its queue; true once it is finished. */
  readonly settle: (work: Work, run: (tenant: string | undefined) => Promise<boolean>) => Promise<boolean>;
  /** What to commit for a partition whose finished messages end at `next`. */
  readonly commitPoint: (state: PartitionState, next: bigint) => CommitPoint;
  /** A replayed message left its queue (finished or dropped). */
  readonly replayReleased: (work: Work, replay: Replay) => void;
};

/** What parking may use of the consumer it serves. */
export type ParkingHost = {
  readonly settings: ConsumerSettings;
  readonly stopping: () => boolean;
  /** The consumer still owns the work's partition and is not stopping. */
  readonly current: (work: Work) => boolean;
  readonly epoch: () => number;
  readonly partitions: () => Iterable<PartitionState>;
  readonly partition: (topic: string, partition: number) => PartitionState | undefined;
  /** The partition's state in the current assignment, made (and restored) on first use. */
  readonly stateFor: (topic: string, partition: number) => Promise<PartitionState | undefined>;
  readonly queue: (key: string, work: Work) => void;
  readonly deadLetteredBefore: (message: KafkaMessage, topic: string, partition: number) => Promise<boolean>;
  readonly backPressure: BackPressure;
  readonly scheduleCommit: () => void;
};

/**
 * A consumer with no parking: every message is handled; a 'wait-for-tenant' outcome waits in
 * memory, in its conversation's queue only, until its time, like a retry; nothing is read from
 * or written to the commit's metadata (it commits as a plain consumer would).
 */
export const noParking: Parking = {
  start: async () => undefined,
  stop: async () => undefined,
  assigned: () => undefined,
  restore: async () => undefined,
  adopt: () => undefined,
  parkOnArrival: () => false,
  settle: (_work, run) => run(undefined),
  waitForTenant: () => 'in-memory',
  ended: () => undefined,
  commitPoint: (_state, next) => ({ offset: next, metadata: null }),
  replayReleased: () => undefined,
};
