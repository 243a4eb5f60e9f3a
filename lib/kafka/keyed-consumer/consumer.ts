import { randomUUID } from 'node:crypto';
import type { Admin, Consumer, EachBatchPayload, KafkaMessage } from 'kafkajs';
import { DeadLetterReason } from '../../dead-letters/index.ts';
import { sleep } from '../../retry.ts';
import { dispositionOf, type Disposition } from './disposition.ts';
import {
  onGroupJoinUnlessStopped,
  pointBackAfterRestart,
  resumeAfterRebalance,
} from './kafkajs-workarounds.ts';
import { BackPressure, KeyQueues } from './key-queues.ts';
import { finishedRun, nextCommit, type Tracked } from './offset-tracking.ts';
import {
  DEFAULT_COMMIT_INTERVAL_MS,
  DEFAULT_CRASH_BUDGET,
  DEFAULT_MAX_BUFFERED_MESSAGES,
  DEFAULT_MAX_TENANT_WAIT_MS,
  TENANT_CONCURRENCY,
  type ConsumerSettings,
  type KeyedConsumerOptions,
} from './options.ts';
import { OutcomeRunner, type DeadLetterOutcome, type WaitForTenant } from './outcome-runner.ts';
import { cursorCommitPoint, cursorsOf, decodeCursors } from './parking-cursors.ts';
import { partitionState, type PartitionState, type Replay, type Work } from './state.ts';
import { TenantSlots } from './tenant-slots.ts';

/** The replay reader's fetch size per partition (a few hundred typical records). */
const REPLAY_FETCH_MAX_BYTES = 256 * 1024;

/**
 * A consumer that never lets one conversation hold up another, never lets one message hold up
 * its conversation forever, and never lets one tenant's trouble hold up the partition: the
 * handler returns an outcome (done, skipped, dead-letter, retry, wait-for-tenant) and the
 * consumer acts on it; a handler that throws gets a bounded budget of attempts, then its message
 * is dead-lettered as handler_crashed and the conversation goes on. `eachBatch` only queues
 * messages by ordering key and returns, so fetching goes on; each key's queue runs in order on
 * its own. Offsets are committed per partition up to the first message not yet done, so a crash
 * redelivers exactly the unfinished work (handlers are idempotent). A tenant that must wait is
 * parked (see TenantParking): its messages are committed past and read again later, in order.
 * After a rebalance, queued work of the old assignment is dropped: the partitions' new owners
 * start from the commit and its parked cursors. Memory is bounded per partition: a partition
 * with too much waiting is paused on its own and resumed as it drains.
 */
export class KeyedConsumer {
  readonly #options: KeyedConsumerOptions;
  readonly #settings: ConsumerSettings;
  readonly #partitions = new Map<string, PartitionState>();
  readonly #queues: KeyQueues<Work>;
  readonly #backPressure: BackPressure;
  readonly #runner: OutcomeRunner<Work>;
  readonly #tenantSlots: TenantSlots;
  #epoch = 0;
  #commitTimer: NodeJS.Timeout | undefined;
  #stopping = false;
  #admin: Admin | undefined;
  /** Committed offsets and cursors per topic, read once per assignment. */
  #restored = new Map<string, Promise<Map<number, { offset: bigint; metadata: string | null }>>>();
  #reader: Promise<Consumer> | undefined;
  readonly #initializing = new Map<string, Promise<PartitionState | undefined>>();
  #replayTimer: NodeJS.Timeout | undefined;

  constructor(options: KeyedConsumerOptions) {
    this.#options = options;
    const { parking: _parking, observer, ...rest } = options;
    this.#settings = {
      ...rest,
      crashBudget: options.crashBudget ?? DEFAULT_CRASH_BUDGET,
      maxBufferedMessages: options.maxBufferedMessages ?? DEFAULT_MAX_BUFFERED_MESSAGES,
      commitIntervalMs: options.commitIntervalMs ?? DEFAULT_COMMIT_INTERVAL_MS,
      observer: observer ?? {},
      now: options.now ?? Date.now,
      random: options.random ?? Math.random,
      sleep,
    };
    this.#backPressure = new BackPressure(this.#settings.maxBufferedMessages);
    this.#queues = new KeyQueues<Work>({
      stopping: () => this.#stopping,
      inAssignment: (work) => work.epoch === this.#epoch,
      settle: (work) => this.#settle(work),
      finished: (work) => {
        work.tracked.done = true;
        this.#scheduleCommit();
      },
      released: (work) => this.#release(work),
    });
    this.#runner = new OutcomeRunner<Work>({
      ...this.#settings,
      current: (work) => this.#current(work),
      tenants: {
        waitForTenant: (work, tenant, outcome) => this.#waitForTenant(work, tenant, outcome),
        ended: (work, tenant, kind) => {
          work.state.waitingSince.delete(tenant);
          if (kind === 'done') this.#options.parking?.gate.recovered(tenant);
        },
      },
    });
    this.#tenantSlots = new TenantSlots((tenant) => this.#tenantLimit(tenant));
  }

  get buffered(): number {
    return this.#queues.buffered;
  }

  /** Tenants parked on this consumer's partitions (tests, metrics). */
  get parkedTenants(): string[] {
    const tenants = new Set<string>();
    for (const state of this.#partitions.values()) {
      if (state.epoch !== this.#epoch) continue;
      for (const tenant of state.parked.keys()) tenants.add(tenant);
      for (const tenant of state.replay?.tenants.keys() ?? []) tenants.add(tenant);
    }
    return [...tenants];
  }

  async start(): Promise<void> {
    const { consumer, parking } = this.#options;
    onGroupJoinUnlessStopped(
      consumer,
      () => this.#stopping,
      (event) => {
        // New assignment: whatever is queued belongs to the old one.
        this.#epoch++;
        resumeAfterRebalance(
          consumer,
          [...this.#partitions.values()].filter((state) => state.paused),
        );
        this.#partitions.clear();
        this.#initializing.clear();
        this.#restored.clear();
        void this.#pauseReader();
        // Parked tenants of a partition with no new traffic are read again all the same.
        if (parking)
          for (const [topic, partitions] of Object.entries(event.payload.memberAssignment))
            for (const partition of partitions) void this.#stateFor(topic, partition);
      },
      this.#options.logger,
    );
    if (parking) {
      this.#admin = parking.kafka.admin();
      await this.#admin.connect();
      this.#replayTimer = setInterval(() => this.#startDueReplays(), 200);
    }
    await consumer.connect();
    await consumer.subscribe({ topics: [...this.#options.topics], fromBeginning: true });
    await consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      partitionsConsumedConcurrently: 4,
      eachBatch: (payload) => this.#enqueueBatch(payload),
    });
  }

  /** Lets each conversation finish the message it is on (5 s at most), commits, then leaves the group. */
  async stop(): Promise<void> {
    this.#stopping = true;
    clearInterval(this.#replayTimer);
    await Promise.race([this.#queues.idle(), sleep(5000)]);
    clearTimeout(this.#commitTimer);
    await this.#commit().catch(() => undefined);
    const reader = this.#reader;
    await Promise.allSettled([
      this.#options.consumer.disconnect(),
      reader?.then((consumer) => consumer.disconnect()),
      this.#admin?.disconnect(),
    ]);
  }

  async #enqueueBatch(payload: EachBatchPayload): Promise<void> {
    const { batch } = payload;
    if (this.#stopping) return; // nothing resolved: the partition's next owner reads it
    const state = await this.#stateFor(batch.topic, batch.partition);
    if (!state) return; // reassigned meanwhile: the batch is the new owner's
    let parkedNow = 0;
    for (const message of batch.messages) {
      const tracked: Tracked = { offset: BigInt(message.offset), done: false };
      state.entries.push(tracked);
      state.nextOffset = tracked.offset + 1n;
      const key = this.#options.orderingKey(message);
      if (this.#parkOnArrival(state, key, message, tracked)) {
        parkedNow++;
        payload.resolveOffset(message.offset);
        continue;
      }
      state.waiting++;
      this.#queues.push(key, {
        message,
        topic: batch.topic,
        partition: batch.partition,
        epoch: state.epoch,
        tracked,
        state,
        deadLettered: this.#deadLetteredBefore(message, batch.topic, batch.partition),
      });
      payload.resolveOffset(message.offset);
    }
    if (parkedNow > 0) this.#scheduleCommit();
    // Back-pressure per partition: never wait inside eachBatch (kafkajs fetches again only when
    // every partition's batch has returned, so one slow partition would stop all of them).
    if (this.#backPressure.full(state.waiting) && !state.paused) {
      state.paused = true;
      this.#options.consumer.pause([{ topic: batch.topic, partitions: [batch.partition] }]);
      this.#options.logger.warn(
        { topic: batch.topic, partition: batch.partition, waiting: state.waiting },
        'partition paused: too much waiting in memory',
      );
    }
    await payload.heartbeat();
  }

  /**
   * The partition's state in the current assignment, made on first use: with parking, the
   * parked tenants' cursors are read from the commit first (so no live message of a parked
   * tenant is handled before its parked ones).
   */
  #stateFor(topic: string, partition: number): Promise<PartitionState | undefined> {
    const key = `${topic}:${partition}`;
    const existing = this.#partitions.get(key);
    if (existing && existing.epoch === this.#epoch) return Promise.resolve(existing);
    let pending = this.#initializing.get(key);
    if (!pending) {
      const epoch = this.#epoch;
      pending = (async () => {
        const restored = await this.#restoreCursors(topic, partition);
        if (epoch !== this.#epoch) return undefined;
        const state = partitionState(topic, partition, epoch, restored);
        this.#adoptCursors(state, restored?.metadata ?? null);
        this.#partitions.set(key, state);
        return state;
      })().finally(() => {
        if (this.#initializing.get(key) === pending) this.#initializing.delete(key);
      });
      this.#initializing.set(key, pending);
    }
    return pending;
  }

  /**
   * A parked tenant's message whose conversation has nothing in memory is parked as it arrives,
   * with no queue and no handler slot: what its queue head would decide, without the cost (a
   * 50,000-event backlog of a throttled portal is passed in milliseconds, not one queue each).
   */
  #parkOnArrival(state: PartitionState, key: string, message: KafkaMessage, tracked: Tracked): boolean {
    const parking = this.#options.parking;
    if (!parking || this.#queues.has(key)) return false;
    const tenant = parking.tenantOf(message);
    if (tenant === undefined || state.replay?.tenants.has(tenant)) return false;
    if (!state.parked.has(tenant) && parking.gate.waitingUntil(tenant) === undefined) return false;
    this.#park(state, tenant, tracked.offset);
    tracked.done = true;
    this.#options.observer?.parked?.('tenant_waiting');
    return true;
  }

  #deadLetteredBefore(message: KafkaMessage, topic: string, partition: number): Promise<boolean> {
    return this.#options.deadLetters.alreadyWritten({ message, topic, partition }).catch(() => false);
  }

  /** A message of `state` is finished (or dropped): resume its partition once half drained. */
  #release(work: Work): void {
    const { state, replay } = work;
    if (replay) {
      replay.waiting--;
      if (
        replay.paused &&
        this.#backPressure.drained(replay.waiting) &&
        state.replay === replay &&
        replay.reading
      ) {
        replay.paused = false;
        void this.#resumeReader(state);
      }
      this.#finishReplayIfDone(state);
      return;
    }
    state.waiting--;
    if (state.paused && this.#backPressure.drained(state.waiting) && state.epoch === this.#epoch) {
      state.paused = false;
      this.#options.consumer.resume([{ topic: state.topic, partitions: [state.partition] }]);
      this.#options.logger.info(
        { topic: state.topic, partition: state.partition, waiting: state.waiting },
        'partition resumed',
      );
    }
  }

  #current(work: Work): boolean {
    return !this.#stopping && work.epoch === this.#epoch;
  }

  /** Parks, passes over (a replay has it) or handles the message; true once it is finished. */
  async #settle(work: Work): Promise<boolean> {
    const tenant = this.#options.parking?.tenantOf(work.message);
    if (tenant === undefined) return this.#runner.run(work, undefined);
    // A tenant's conversations take at most TENANT_CONCURRENCY handler slots at a time: a burst
    // of one tenant's new conversations (each its own queue) must not all call its failing
    // upstream at once before the first answer parks the tenant; behind the slots they are
    // parked without a call. Decided again after the wait: the tenant may be parked by then.
    if (this.#disposition(work, tenant) === 'handle') await this.#tenantSlots.acquire(tenant);
    else return this.#settleWithout(work, tenant);
    try {
      if (!this.#current(work)) return false;
      if (this.#disposition(work, tenant) !== 'handle') return this.#settleWithout(work, tenant);
      return await this.#runner.run(work, tenant);
    } finally {
      this.#tenantSlots.release(tenant);
    }
  }

  /** Parked or passed over (a replay has it), without a handler call. */
  #settleWithout(work: Work, tenant: string): boolean {
    if (this.#disposition(work, tenant) === 'park') {
      this.#park(work.state, tenant, work.tracked.offset);
      this.#options.observer?.parked?.('tenant_waiting');
    }
    return true;
  }

  /**
   * How many of the tenant's messages may be in its handler at once: TENANT_CONCURRENCY, or
   * fewer while its gate's slow start runs (one probe after a wait, one more per success).
   */
  #tenantLimit(tenant: string): number {
    return Math.min(
      TENANT_CONCURRENCY,
      Math.max(1, this.#options.parking?.gate.allowance(tenant) ?? TENANT_CONCURRENCY),
    );
  }

  #disposition(work: Work, tenant: string): Disposition {
    const { state } = work;
    const replay = state.replay;
    const from = work.replay ? undefined : replay?.tenants.get(tenant);
    return dispositionOf({
      offset: work.tracked.offset,
      tenantWaits: this.#options.parking?.gate.waitingUntil(tenant) !== undefined || state.parked.has(tenant),
      replayed: work.replay ? (work.replay === replay ? 'current' : 'ended') : undefined,
      replaying: replay && from !== undefined ? { from, handoverAt: replay.handoverAt } : undefined,
    });
  }

  /** The tenant's messages from `offset` on (or from its earlier cursor) are to be read again. */
  #park(state: PartitionState, tenant: string, offset: bigint): void {
    const entry = state.parked.get(tenant);
    if (entry) {
      if (offset < entry.from) entry.from = offset;
      return;
    }
    state.parked.set(tenant, { from: offset });
    if (!state.waitingSince.has(tenant)) state.waitingSince.set(tenant, this.#settings.now());
    this.#options.logger.warn(
      {
        topic: state.topic,
        partition: state.partition,
        tenant,
        from: offset.toString(),
        until: new Date(
          this.#options.parking?.gate.waitingUntil(tenant) ?? this.#settings.now(),
        ).toISOString(),
      },
      'tenant parked: its messages leave memory and are read again, in order, when it can take them',
    );
  }

  /**
   * Parks the tenant ('parked'), or waits in memory when parking is not set up or the record has
   * no tenant ('in-memory', after the wait), or says to dead-letter the message when its tenant
   * has waited longer than maxWaitMs with nothing handled in between.
   */
  #waitForTenant(
    work: Work,
    tenant: string | undefined,
    outcome: WaitForTenant,
  ): 'parked' | 'in-memory' | DeadLetterOutcome {
    const { parking } = this.#options;
    if (!parking || tenant === undefined) return 'in-memory';
    const since = work.state.waitingSince.get(tenant) ?? this.#settings.now();
    const maxWaitMs = parking.maxWaitMs ?? DEFAULT_MAX_TENANT_WAIT_MS;
    if (this.#settings.now() - since > maxWaitMs) {
      return {
        kind: 'dead-letter',
        reason: DeadLetterReason.retriesExhausted,
        error: `tenant ${tenant} has waited since ${new Date(since).toISOString()} (more than ${maxWaitMs} ms) with this message first in line: ${outcome.reason}`,
        attempts: 1,
        orgId: null,
        eventType: null,
        eventId: null,
      };
    }
    const wasWaiting = parking.gate.waitingUntil(tenant) !== undefined;
    const until = parking.gate.close(tenant, outcome.reason, outcome.untilMs);
    if (!wasWaiting)
      this.#options.logger.warn(
        { tenant, reason: outcome.reason, until: new Date(until).toISOString() },
        'tenant must wait: its messages are parked until then',
      );
    work.state.waitingSince.set(tenant, since);
    this.#park(work.state, tenant, work.tracked.offset);
    this.#options.observer?.parked?.(outcome.reason);
    return 'parked';
  }

  // --- Parked tenants: cursors in the commit, and replays --------------------------------------

  async #restoreCursors(
    topic: string,
    partition: number,
  ): Promise<{ offset: bigint; metadata: string | null } | undefined> {
    const { parking } = this.#options;
    if (!parking || !this.#admin) return undefined;
    const admin = this.#admin;
    let pending = this.#restored.get(topic);
    if (!pending) {
      pending = (async () => {
        for (let attempt = 1; ; attempt++) {
          try {
            const [fetched] = await admin.fetchOffsets({ groupId: parking.groupId, topics: [topic] });
            return new Map(
              (fetched?.partitions ?? [])
                .filter((entry) => Number(entry.offset) >= 0)
                .map((entry) => [
                  entry.partition,
                  { offset: BigInt(entry.offset), metadata: entry.metadata ?? null },
                ]),
            );
          } catch (error) {
            // Without the cursors a parked tenant's messages would be skipped: never go on blind.
            this.#options.logger.warn(
              { err: error, topic, attempt },
              'could not read the committed parked-tenant cursors; trying again',
            );
            await sleep(Math.min(5000, 200 * attempt));
          }
        }
      })();
      this.#restored.set(topic, pending);
    }
    return (await pending).get(partition);
  }

  #adoptCursors(state: PartitionState, metadata: string | null): void {
    const cursors = decodeCursors(metadata);
    if (cursors === 'foreign') {
      this.#options.logger.warn(
        { topic: state.topic, partition: state.partition, metadata },
        'committed offset metadata is not ours; ignored',
      );
      return;
    }
    for (const { tenant, from, since } of cursors) {
      state.parked.set(tenant, { from });
      state.waitingSince.set(tenant, since);
    }
    if (cursors.length > 0)
      this.#options.logger.info(
        { topic: state.topic, partition: state.partition, tenants: cursors.map(({ tenant }) => tenant) },
        'parked tenants taken over from the partition’s last owner; they are read again when their gates open',
      );
  }

  /** Starts a replay on each partition that has parked tenants whose gates have opened. */
  #startDueReplays(): void {
    const { parking } = this.#options;
    if (!parking || this.#stopping) return;
    for (const state of this.#partitions.values()) {
      if (state.epoch !== this.#epoch || state.replay || state.nextOffset === undefined) continue;
      const due = [...state.parked].filter(([tenant]) => parking.gate.waitingUntil(tenant) === undefined);
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
      this.#options.logger.info(
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
      if (replay.reading) void this.#resumeReader(state, position);
      else this.#finishReplayIfDone(state);
    }
  }

  /** The replay has read all the live stream has: live messages from here on are the live stream's. */
  #catchUp(state: PartitionState, replay: Replay): void {
    if (!replay.reading || state.nextOffset === undefined || replay.position < state.nextOffset) return;
    replay.handoverAt = state.nextOffset;
    replay.reading = false;
    void this.#pauseReader(state);
  }

  #finishReplayIfDone(state: PartitionState): void {
    const replay = state.replay;
    if (!replay || replay.reading || replay.waiting > 0) return;
    state.replay = undefined;
    this.#options.observer?.replayed?.(replay.handed);
    this.#options.logger.info(
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
    this.#scheduleCommit();
  }

  #reader_(): Promise<Consumer> {
    const { parking } = this.#options;
    if (!parking) throw new Error('no parking configured');
    this.#reader ??= (async () => {
      // A group of one member per process: it is assigned every partition and commits nothing;
      // all but the partitions being replayed stay paused.
      const reader = parking.kafka.consumer({
        groupId: `${parking.groupId}.replay.${randomUUID()}`,
        allowAutoTopicCreation: false,
        // Idle (all paused) most of the time: a replay must not wait out a long fetch wait to start.
        maxWaitTimeInMs: 250,
        // Small fetches (kafkajs: 1 MiB per partition): a replay that meets its tenant refused
        // again stops after its probe, and what it fetched past that is decoded for nothing, on
        // the process's time that the other tenants' live messages need.
        maxBytesPerPartition: REPLAY_FETCH_MAX_BYTES,
      });
      onGroupJoinUnlessStopped(
        reader,
        () => this.#stopping,
        () => this.#reseekReplays(reader),
      );
      await reader.connect();
      await reader.subscribe({ topics: [...this.#options.topics], fromBeginning: false });
      await reader.run({
        autoCommit: false,
        eachBatchAutoResolve: false,
        partitionsConsumedConcurrently: 4,
        eachBatch: (payload) => this.#replayBatch(payload, reader),
      });
      reader.pause(this.#options.topics.map((topic) => ({ topic })));
      return reader;
    })();
    return this.#reader;
  }

  /** Replays still reading go on from where they stood when kafkajs restarted the reader. */
  #reseekReplays(reader: Consumer): void {
    const positions = [];
    for (const state of this.#partitions.values()) {
      const replay = state.replay;
      if (!replay?.reading || state.epoch !== this.#epoch) continue;
      positions.push({
        topic: state.topic,
        partition: state.partition,
        offset: replay.position,
        paused: replay.paused,
      });
    }
    pointBackAfterRestart(reader, positions, this.#options.logger);
  }

  async #resumeReader(state: PartitionState, seekTo?: bigint): Promise<void> {
    try {
      const reader = await this.#reader_();
      if (state.replay === undefined || !state.replay.reading) return;
      if (seekTo !== undefined)
        reader.seek({ topic: state.topic, partition: state.partition, offset: seekTo.toString() });
      reader.resume([{ topic: state.topic, partitions: [state.partition] }]);
    } catch (error) {
      // The reader could not start: the tenant stays parked (its cursor is kept); try later.
      this.#options.logger.error(
        { err: error, topic: state.topic, partition: state.partition },
        'replay reader failed to start; the tenant stays parked',
      );
      const replay = state.replay;
      if (replay) {
        for (const [tenant, from] of replay.tenants) this.#park(state, tenant, from);
        replay.reading = false;
        this.#finishReplayIfDone(state);
      }
      this.#reader = undefined;
    }
  }

  async #pauseReader(state?: PartitionState): Promise<void> {
    const reader = await this.#reader?.catch(() => undefined);
    if (!reader) return;
    try {
      reader.pause(
        state
          ? [{ topic: state.topic, partitions: [state.partition] }]
          : this.#options.topics.map((topic) => ({ topic })),
      );
    } catch {
      // Not running (stopping): nothing to pause.
    }
  }

  async #replayBatch(payload: EachBatchPayload, reader: Consumer): Promise<void> {
    const { batch } = payload;
    const state = this.#partitions.get(`${batch.topic}:${batch.partition}`);
    const replay = state?.replay;
    const tenantOf = this.#options.parking?.tenantOf;
    const gate = this.#options.parking?.gate;
    if (!state || state.epoch !== this.#epoch || !replay || !replay.reading || !tenantOf || !gate) {
      reader.pause([{ topic: batch.topic, partitions: [batch.partition] }]);
      return;
    }
    for (const message of batch.messages) {
      const offset = BigInt(message.offset);
      if (offset < replay.position) continue; // read before a seek
      if (state.nextOffset !== undefined && offset >= state.nextOffset) break;
      replay.position = offset + 1n;
      payload.resolveOffset(message.offset);
      const tenant = tenantOf(message);
      const from = tenant === undefined ? undefined : replay.tenants.get(tenant);
      if (tenant === undefined || from === undefined || offset < from) continue;
      if (state.parked.has(tenant) || gate.waitingUntil(tenant) !== undefined) {
        // Waiting again: this one stays parked with it (the cursor covers it, in order).
        this.#park(state, tenant, offset);
        continue;
      }
      const tracked: Tracked = { offset, done: false };
      replay.entries.push(tracked);
      replay.waiting++;
      replay.handed++;
      this.#queues.push(this.#options.orderingKey(message), {
        message,
        topic: batch.topic,
        partition: batch.partition,
        epoch: state.epoch,
        tracked,
        state,
        replay,
        deadLettered: this.#deadLetteredBefore(message, batch.topic, batch.partition),
      });
    }
    this.#catchUp(state, replay);
    if (replay.reading && this.#backPressure.full(replay.waiting) && !replay.paused) {
      replay.paused = true;
      reader.pause([{ topic: batch.topic, partitions: [batch.partition] }]);
    }
    this.#finishReplayIfDone(state);
    this.#scheduleCommit();
  }

  // --- Commits -----------------------------------------------------------------------------------

  #scheduleCommit(): void {
    this.#commitTimer ??= setTimeout(() => {
      this.#commitTimer = undefined;
      this.#commit().catch((error: unknown) => {
        // Nothing is lost meanwhile (a restart would redeliver finished work, which handlers
        // treat as duplicates), but try again rather than wait for the next finished message.
        this.#options.logger.warn({ err: error }, 'offset commit failed; trying again');
        this.#scheduleCommit();
      });
    }, this.#settings.commitIntervalMs);
  }

  async #commit(): Promise<void> {
    const offsets: { topic: string; partition: number; offset: string; metadata: string | null }[] = [];
    for (const partition of this.#partitions.values()) {
      if (partition.epoch !== this.#epoch) continue;
      const run = finishedRun(partition.entries);
      if (run.count > 0) {
        partition.entries.splice(0, run.count);
        partition.committable = run.next;
      }
      const replay = partition.replay;
      if (replay) replay.entries.splice(0, finishedRun(replay.entries).count);
      const next = partition.committable ?? partition.committed;
      if (next === undefined) continue;
      const point = cursorCommitPoint(
        next,
        cursorsOf(partition.parked, replay),
        partition.waitingSince,
        this.#settings.now(),
      );
      const commit = nextCommit(
        { offset: partition.committed, metadata: partition.committedMetadata },
        point,
      );
      if (!commit) continue;
      offsets.push({
        topic: partition.topic,
        partition: partition.partition,
        offset: commit.offset.toString(),
        metadata: commit.metadata,
      });
    }
    if (offsets.length === 0) return;
    // The metadata only when there are cursors: kafkajs sends a missing one as null, and a
    // consumer that parks nothing commits as a plain consumer would.
    await this.#options.consumer.commitOffsets(
      offsets.map(({ metadata, ...offset }) => (metadata === null ? offset : { ...offset, metadata })),
    );
    // Only once Kafka took it: a failed commit is tried again with the same (or a later) offset.
    for (const { topic, partition, offset, metadata } of offsets) {
      const state = this.#partitions.get(`${topic}:${partition}`);
      if (!state) continue;
      if (state.committed === undefined || BigInt(offset) > state.committed) state.committed = BigInt(offset);
      state.committedMetadata = metadata;
    }
  }
}
