import { randomUUID } from 'node:crypto';
import type { Consumer, EachBatchPayload } from 'kafkajs';
import {
  onGroupJoinUnlessStopped,
  pointBackAfterRestart,
  type ReaderPosition,
} from './kafkajs-workarounds.ts';
import type { Tracked } from './offset-tracking.ts';
import type { TenantParking } from './options.ts';
import type { ParkingHost } from './parking.ts';
import { runBatches } from './run-batches.ts';
import type { PartitionState, Replay } from './state.ts';

/** The replay reader's fetch size per partition (a few hundred typical records). */
const REPLAY_FETCH_MAX_BYTES = 256 * 1024;
/** How often partitions are checked for parked tenants whose gates have opened. */
const DUE_CHECK_INTERVAL_MS = 200;

/**
 * Reads parked tenants' messages again once their gates open: per partition, from the lowest of
 * their cursors until it reaches what the live stream has read, handing those tenants' messages,
 * in offset order, to the same per-conversation queues. The reader is a consumer group of its
 * own (one member per process, committing nothing); all but the partitions being read again
 * stay paused.
 */
export class ReplayReader {
  readonly #parking: TenantParking;
  readonly #host: ParkingHost;
  /** Parks the tenant on the partition from `offset` (or from its earlier cursor). */
  readonly #park: (state: PartitionState, tenant: string, offset: bigint) => void;
  #reader: Promise<Consumer> | undefined;
  #timer: NodeJS.Timeout | undefined;

  constructor(
    parking: TenantParking,
    host: ParkingHost,
    park: (state: PartitionState, tenant: string, offset: bigint) => void,
  ) {
    this.#parking = parking;
    this.#host = host;
    this.#park = park;
  }

  /** Starts checking for due replays (the reader itself starts with the first replay). */
  start(): void {
    this.#timer = setInterval(() => this.#startDueReplays(), DUE_CHECK_INTERVAL_MS);
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer);
    await this.#reader?.then((reader) => reader.disconnect());
  }

  /** Pauses the reader on every partition, or on one (its replay caught up). */
  async pause(state?: PartitionState): Promise<void> {
    const reader = await this.#reader?.catch(() => undefined);
    if (!reader) return;
    try {
      reader.pause(
        state
          ? [{ topic: state.topic, partitions: [state.partition] }]
          : this.#host.settings.topics.map((topic) => ({ topic })),
      );
    } catch {
      // Not running (stopping): nothing to pause.
    }
  }

  /** A replayed message left its queue: read on once half drained; the replay ends when all are. */
  released(state: PartitionState, replay: Replay): void {
    replay.waiting--;
    if (
      replay.paused &&
      this.#host.backPressure.drained(replay.waiting) &&
      state.replay === replay &&
      replay.reading
    ) {
      replay.paused = false;
      void this.#resume(state);
    }
    this.#finishIfDone(state);
  }

  /** Starts a replay on each partition that has parked tenants whose gates have opened. */
  #startDueReplays(): void {
    const host = this.#host;
    if (host.stopping()) return;
    for (const state of host.partitions()) {
      if (state.epoch !== host.epoch() || state.replay || state.nextOffset === undefined) continue;
      const due = [...state.parked].filter(
        ([tenant]) => this.#parking.gate.waitingUntil(tenant, host.settings.now()) === undefined,
      );
      if (due.length === 0) continue;
      const tenants = new Map(due.map(([tenant, { from }]) => [tenant, from]));
      let position = due[0]?.[1].from ?? 0n;
      for (const [, { from }] of due) if (from < position) position = from;
      for (const [tenant] of due) state.parked.delete(tenant);
      const replay: Replay = {
        tenants,
        position,
        handoverAt: undefined,
        reading: true,
        entries: [],
        waiting: 0,
        paused: false,
        handed: 0,
      };
      state.replay = replay;
      host.settings.logger.info(
        {
          topic: state.topic,
          partition: state.partition,
          tenants: [...tenants.keys()],
          from: position.toString(),
          to: state.nextOffset.toString(),
        },
        'reading parked tenants’ messages again',
      );
      this.#catchUp(state, replay);
      if (replay.reading) void this.#resume(state, position);
      else this.#finishIfDone(state);
    }
  }

  /** The replay has read all the live stream has: live messages from here on are the live stream's. */
  #catchUp(state: PartitionState, replay: Replay): void {
    if (!replay.reading || state.nextOffset === undefined || replay.position < state.nextOffset) return;
    replay.handoverAt = state.nextOffset;
    replay.reading = false;
    void this.pause(state);
  }

  #finishIfDone(state: PartitionState): void {
    const replay = state.replay;
    if (!replay || replay.reading || replay.waiting > 0) return;
    state.replay = undefined;
    this.#host.settings.observer.replayed?.(replay.handed);
    this.#host.settings.logger.info(
      {
        topic: state.topic,
        partition: state.partition,
        tenants: [...replay.tenants.keys()].map((tenant) =>
          state.parked.has(tenant) ? `${tenant} (parked again)` : tenant,
        ),
        handled: replay.handed,
      },
      'parked tenants read again; back on the live stream',
    );
    this.#host.scheduleCommit();
  }

  #reader_(): Promise<Consumer> {
    const { topics } = this.#host.settings;
    this.#reader ??= (async () => {
      const reader = this.#parking.kafka.consumer({
        groupId: `${this.#parking.groupId}.replay.${randomUUID()}`,
        allowAutoTopicCreation: false,
        // Idle (all paused) most of the time: a replay must not wait out a long fetch wait to start.
        maxWaitTimeInMs: 250,
        // Small fetches (kafkajs: 1 MiB per partition): a replay that meets its tenant refused
        // again stops after its probe, and what it fetched past that is decoded for nothing, on
        // the process's time that the other tenants' live messages need.
        maxBytesPerPartition: REPLAY_FETCH_MAX_BYTES,
      });
      onGroupJoinUnlessStopped(reader, this.#host.stopping, () =>
        pointBackAfterRestart(reader, this.#positions(), this.#host.settings.logger),
      );
      await runBatches(reader, { topics, fromBeginning: false }, (payload) =>
        this.#replayBatch(payload, reader),
      );
      reader.pause(topics.map((topic) => ({ topic })));
      return reader;
    })();
    return this.#reader;
  }

  /** Where each replay still reading stands. */
  #positions(): ReaderPosition[] {
    const positions: ReaderPosition[] = [];
    for (const state of this.#host.partitions()) {
      const replay = state.replay;
      if (!replay?.reading || state.epoch !== this.#host.epoch()) continue;
      positions.push({
        topic: state.topic,
        partition: state.partition,
        offset: replay.position,
        paused: replay.paused,
      });
    }
    return positions;
  }

  async #resume(state: PartitionState, seekTo?: bigint): Promise<void> {
    try {
      const reader = await this.#reader_();
      if (state.replay === undefined || !state.replay.reading) return;
      if (seekTo !== undefined)
        reader.seek({ topic: state.topic, partition: state.partition, offset: seekTo.toString() });
      reader.resume([{ topic: state.topic, partitions: [state.partition] }]);
    } catch (error) {
      // The reader could not start: the tenant stays parked (its cursor is kept); try later.
      this.#host.settings.logger.error(
        { err: error, topic: state.topic, partition: state.partition },
        'replay reader failed to start; the tenant stays parked',
      );
      const replay = state.replay;
      if (replay) {
        for (const [tenant, from] of replay.tenants) this.#park(state, tenant, from);
        replay.reading = false;
        this.#finishIfDone(state);
      }
      this.#reader = undefined;
    }
  }

  async #replayBatch(payload: EachBatchPayload, reader: Consumer): Promise<void> {
    const { batch } = payload;
    const host = this.#host;
    const state = host.partition(batch.topic, batch.partition);
    const replay = state?.replay;
    if (!state || state.epoch !== host.epoch() || !replay || !replay.reading) {
      reader.pause([{ topic: batch.topic, partitions: [batch.partition] }]);
      return;
    }
    const { tenantOf, gate } = this.#parking;
    for (const message of batch.messages) {
      const offset = BigInt(message.offset);
      if (offset < replay.position) continue; // read before a seek
      if (state.nextOffset !== undefined && offset >= state.nextOffset) break;
      replay.position = offset + 1n;
      payload.resolveOffset(message.offset);
      const tenant = tenantOf(message);
      const from = tenant === undefined ? undefined : replay.tenants.get(tenant);
      if (tenant === undefined || from === undefined || offset < from) continue;
      if (state.parked.has(tenant) || gate.waitingUntil(tenant, host.settings.now()) !== undefined) {
        // Waiting again: this one stays parked with it (the cursor covers it, in order).
        this.#park(state, tenant, offset);
        continue;
      }
      const tracked: Tracked = { offset, done: false };
      replay.entries.push(tracked);
      replay.waiting++;
      replay.handed++;
      host.queue(host.settings.orderingKey(message), {
        message,
        topic: batch.topic,
        partition: batch.partition,
        epoch: state.epoch,
        tracked,
        state,
        replay,
        deadLettered: host.deadLetteredBefore(message, batch.topic, batch.partition),
      });
    }
    this.#catchUp(state, replay);
    if (replay.reading && host.backPressure.full(replay.waiting) && !replay.paused) {
      replay.paused = true;
      reader.pause([{ topic: batch.topic, partitions: [batch.partition] }]);
    }
    this.#finishIfDone(state);
    host.scheduleCommit();
  }
}
