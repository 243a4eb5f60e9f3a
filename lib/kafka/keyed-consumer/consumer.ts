import { randomUUID } from 'node:crypto';
import type { Admin, Consumer, EachBatchPayload, Kafka, KafkaMessage } from 'kafkajs';
import { DeadLetterReason, type DeadLetterDetails, type DeadLetterWriter } from '../../dead-letters/index.ts';
import { describeError } from '../../errors.ts';
import type { Logger } from '../../log.ts';
import { backoffDelay, sleep, type RetryPolicy } from '../../retry.ts';
import type { HandlerOutcome } from '../handler-outcome.ts';
import type { TenantGate } from '../tenant-gate.ts';
import { dispositionOf, type Disposition } from './disposition.ts';
import { finishedRun, nextCommit, type Tracked } from './offset-tracking.ts';
import { cursorCommitPoint, cursorsOf, decodeCursors } from './parking-cursors.ts';

/** Says what became of one message; throws only for what it cannot classify (a bug). */
export type KeyedHandler = (
  message: KafkaMessage,
  partition: number,
  topic: string,
) => Promise<HandlerOutcome>;

/** What the consumer did with a message, for the service's metrics. */
export type ConsumerObserver = {
  /** The handler asked for the same message again (classified transient trouble). */
  readonly retried?: (error: string) => void;
  /** The handler threw (attempt counts from 1); after the crash budget the message is dead-lettered. */
  readonly crashed?: (error: unknown, attempt: number) => void;
  /** A dead letter was written for the message (not counted again when a restart finds it written). */
  readonly deadLettered?: (reason: DeadLetterReason) => void;
  /** A message was parked because its tenant must wait (by its handler's outcome, or a closed gate). */
  readonly parked?: (reason: string) => void;
  /** A parked tenant's messages were read again: how many were handed to the handler. */
  readonly replayed?: (messages: number) => void;
};

/**
 * Parking a tenant that must wait (see HandlerOutcome 'wait-for-tenant'). Nothing parked is
 * kept in memory: the consumer commits past the tenant's messages and records, in the same
 * commit (Kafka offset metadata, atomic with the offset), from which offset each parked tenant
 * must be read again. When the tenant's gate opens, a reader of its own (one consumer group of
 * one member per process, never committing) reads the partition again from that cursor and
 * hands that tenant's messages, in offset order, to the same per-conversation queues; the live
 * stream skips the tenant's messages until the reader has caught up with it, then takes over.
 */
export type TenantParking = {
  readonly kafka: Kafka;
  /** The live consumer's group (its committed offsets carry the cursors). */
  readonly groupId: string;
  /** The tenant of a record, from its key or headers (no decoding); undefined: never parked. */
  readonly tenantOf: (message: KafkaMessage) => string | undefined;
  readonly gate: TenantGate;
  /**
   * A tenant that keeps waiting this long with no message handled in between gets its message
   * dead-lettered (retries_exhausted) rather than parked again: a tenant never waits forever on
   * one message that always fails.
   */
  readonly maxWaitMs?: number;
};

export const DEFAULT_MAX_TENANT_WAIT_MS = 24 * 60 * 60 * 1000;
/**
 * With parking, the handler calls one tenant's conversations may have running at once (per
 * consumer). Enough for any one organisation's steady traffic (64 conversations at 20 ms each:
 * 3,200 events/s), and a bound on what a tenant that is failing right now can put in flight.
 */
export const TENANT_CONCURRENCY = 64;

/** The replay reader's fetch size per partition (a few hundred typical records). */
const REPLAY_FETCH_MAX_BYTES = 256 * 1024;

export const DEFAULT_CRASH_BUDGET: RetryPolicy = { attempts: 5, initialDelayMs: 500, maxDelayMs: 10000 };

export type KeyedConsumerOptions = {
  readonly consumer: Consumer;
  readonly topics: readonly string[];
  /** Messages with the same ordering key (one conversation) are handled one after another. */
  readonly orderingKey: (message: KafkaMessage) => string;
  readonly handle: KeyedHandler;
  /** Where dead-lettered messages go (the handler's 'dead-letter' outcomes and spent crash budgets). */
  readonly deadLetters: DeadLetterWriter;
  readonly logger: Logger;
  /** How often a throwing handler is tried on one message before it is dead-lettered as handler_crashed. */
  readonly crashBudget?: RetryPolicy;
  /** How many messages of one partition may wait in memory before that partition is paused. */
  readonly maxBufferedMessages?: number;
  readonly commitIntervalMs?: number;
  readonly observer?: ConsumerObserver;
  /** Without it, a 'wait-for-tenant' outcome waits in memory (until its time) like a retry. */
  readonly parking?: TenantParking;
};

/**
 * A re-read of one partition for tenants whose gate opened: from the lowest of their cursors
 * until it reaches what the live stream has read (`handoverAt`).
 */
type Replay = {
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
type PartitionState = {
  readonly topic: string;
  readonly partition: number;
  readonly epoch: number;
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
type Work = {
  readonly message: KafkaMessage;
  readonly topic: string;
  readonly partition: number;
  readonly epoch: number;
  readonly tracked: Tracked;
  readonly state: PartitionState;
  /** Set for a parked tenant's message read again; undefined for the live stream's. */
  readonly replay?: Replay;
  /**
   * Whether the message was dead-lettered before (see #handleUntilDone), asked as it is queued:
   * a fetched batch's markers are read together (one MGET per turn), not one GET as each
   * conversation reaches its message. False when Redis did not answer.
   */
  readonly deadLettered: Promise<boolean>;
};

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
  readonly #queues = new Map<string, Work[]>();
  readonly #partitions = new Map<string, PartitionState>();
  readonly #running = new Set<Promise<void>>();
  #buffered = 0;
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
  }

  get buffered(): number {
    return this.#buffered;
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
    // kafkajs restarts a consumer that crashed (a broker restart, a rebalance during its stop)
    // even when it was told to disconnect meanwhile: its crash handler schedules the restart
    // after the disconnect cleared the timer. Disconnecting once the timer is set (the next
    // turn) clears it; a restart that got through anyway is caught at its join, below.
    consumer.on(consumer.events.CRASH, (event) => {
      if (this.#stopping && event.payload.restart)
        setImmediate(() => void consumer.disconnect().catch(() => undefined));
    });
    consumer.on(consumer.events.GROUP_JOIN, (event) => {
      if (this.#stopping) {
        // kafkajs restarts a consumer that crashed (a broker restart) even after it was told to
        // disconnect: back in the group, it would hold partitions that nothing handles, for ever
        // (the soak's stall). Leave again, so a live member gets them.
        this.#options.logger.warn(
          { groupId: event.payload.groupId },
          'a stopped consumer rejoined its group (kafkajs restarted it after a crash): leaving again',
        );
        void consumer
          .disconnect()
          .catch((error: unknown) =>
            this.#options.logger.warn(
              { err: error },
              'stopped consumer did not leave its group; it will when its session times out',
            ),
          );
        return;
      }
      // New assignment: whatever is queued belongs to the old one.
      this.#epoch++;
      const paused = [...this.#partitions.values()].filter((state) => state.paused);
      if (paused.length > 0)
        consumer.resume(paused.map((state) => ({ topic: state.topic, partitions: [state.partition] })));
      this.#partitions.clear();
      this.#initializing.clear();
      this.#restored.clear();
      void this.#pauseReader();
      // Parked tenants of a partition with no new traffic are read again all the same.
      if (parking)
        for (const [topic, partitions] of Object.entries(event.payload.memberAssignment))
          for (const partition of partitions) void this.#stateFor(topic, partition);
    });
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
    await Promise.race([Promise.allSettled([...this.#running]), sleep(5000)]);
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
      this.#push(key, {
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
    if (state.waiting > this.#limit() && !state.paused) {
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
        const state: PartitionState = {
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
        };
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

  #limit(): number {
    return this.#options.maxBufferedMessages ?? 5000;
  }

  /** A message of `state` is finished (or dropped): resume its partition once half drained. */
  #release(work: Work): void {
    const { state, replay } = work;
    if (replay) {
      replay.waiting--;
      if (replay.paused && replay.waiting <= this.#limit() / 2 && state.replay === replay && replay.reading) {
        replay.paused = false;
        void this.#resumeReader(state);
      }
      this.#finishReplayIfDone(state);
      return;
    }
    state.waiting--;
    if (state.paused && state.waiting <= this.#limit() / 2 && state.epoch === this.#epoch) {
      state.paused = false;
      this.#options.consumer.resume([{ topic: state.topic, partitions: [state.partition] }]);
      this.#options.logger.info(
        { topic: state.topic, partition: state.partition, waiting: state.waiting },
        'partition resumed',
      );
    }
  }

  #push(key: string, work: Work): void {
    this.#buffered++;
    const queue = this.#queues.get(key);
    if (queue) {
      queue.push(work);
      return;
    }
    this.#queues.set(key, [work]);
    const runner = this.#drain(key).finally(() => this.#running.delete(runner));
    this.#running.add(runner);
  }

  async #drain(key: string): Promise<void> {
    const queue = this.#queues.get(key) ?? [];
    while (queue.length > 0 && !this.#stopping) {
      const work = queue[0];
      if (!work) break;
      const current = work.epoch === this.#epoch;
      const finished = current && (await this.#settle(work));
      // Stopping mid-message: leave it unfinished (uncommitted, so redelivered) and stop here.
      if (!finished && this.#stopping && work.epoch === this.#epoch) break;
      // Either done, or from an assignment this consumer lost (its new owner redoes it): move on,
      // so newer messages of the same key behind it are not stranded.
      queue.shift();
      this.#buffered--;
      if (finished) {
        work.tracked.done = true;
        this.#scheduleCommit();
      }
      this.#release(work);
    }
    this.#queues.delete(key);
    for (const work of queue) {
      this.#buffered--;
      this.#release(work);
    }
  }

  #current(work: Work): boolean {
    return !this.#stopping && work.epoch === this.#epoch;
  }

  /** Parks, passes over (a replay has it) or handles the message; true once it is finished. */
  async #settle(work: Work): Promise<boolean> {
    const tenant = this.#options.parking?.tenantOf(work.message);
    if (tenant === undefined) return this.#handleUntilDone(work, undefined);
    // A tenant's conversations take at most TENANT_CONCURRENCY handler slots at a time: a burst
    // of one tenant's new conversations (each its own queue) must not all call its failing
    // upstream at once before the first answer parks the tenant; behind the slots they are
    // parked without a call. Decided again after the wait: the tenant may be parked by then.
    if (this.#disposition(work, tenant) === 'handle') await this.#tenantSlot(tenant);
    else return this.#settleWithout(work, tenant);
    try {
      if (!this.#current(work)) return false;
      if (this.#disposition(work, tenant) !== 'handle') return this.#settleWithout(work, tenant);
      return await this.#handleUntilDone(work, tenant);
    } finally {
      this.#releaseTenantSlot(tenant);
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

  readonly #tenantSlots = new Map<string, { inFlight: number; waiters: (() => void)[] }>();

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

  #tenantSlot(tenant: string): Promise<void> {
    const slots = this.#tenantSlots.get(tenant) ?? { inFlight: 0, waiters: [] };
    this.#tenantSlots.set(tenant, slots);
    if (slots.inFlight < this.#tenantLimit(tenant)) {
      slots.inFlight++;
      return Promise.resolve();
    }
    return new Promise((resolve) => slots.waiters.push(resolve));
  }

  #releaseTenantSlot(tenant: string): void {
    const slots = this.#tenantSlots.get(tenant);
    if (!slots) return;
    slots.inFlight--;
    // Waiters take the freed slot, and more once a probe succeeded (the limit is back up).
    const limit = this.#tenantLimit(tenant);
    while (slots.inFlight < limit && slots.waiters.length > 0) {
      slots.inFlight++;
      slots.waiters.shift()?.();
    }
    if (slots.inFlight === 0 && slots.waiters.length === 0) this.#tenantSlots.delete(tenant);
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
    if (!state.waitingSince.has(tenant)) state.waitingSince.set(tenant, Date.now());
    this.#options.logger.warn(
      {
        topic: state.topic,
        partition: state.partition,
        tenant,
        from: offset.toString(),
        until: new Date(this.#options.parking?.gate.waitingUntil(tenant) ?? Date.now()).toISOString(),
      },
      'tenant parked: its messages leave memory and are read again, in order, when it can take them',
    );
  }

  /** True once the message is finished; false when it gave up because the consumer is stopping or lost the partition. */
  async #handleUntilDone(work: Work, tenant: string | undefined): Promise<boolean> {
    const budget = this.#options.crashBudget ?? DEFAULT_CRASH_BUDGET;
    const where = { topic: work.topic, partition: work.partition, offset: work.message.offset };
    let crashes = 0;
    // Dead-lettered before a crash or rebalance redelivered it (its offset was not committed yet,
    // e.g. behind another conversation's unfinished message): it stays a dead letter until an
    // operator replays it, rather than being applied now, after later messages of its conversation.
    if (await work.deadLettered) {
      this.#options.logger.warn(where, 'message was dead-lettered before it was redelivered; left to replay');
      return true;
    }
    while (this.#current(work)) {
      let outcome: HandlerOutcome;
      try {
        outcome = await this.#options.handle(work.message, work.partition, work.topic);
      } catch (error) {
        crashes++;
        this.#options.observer?.crashed?.(error, crashes);
        if (crashes < budget.attempts) {
          const delayMs = backoffDelay(budget, crashes, Math.random);
          this.#options.logger.error(
            { err: error, ...where, attempt: crashes, of: budget.attempts, delayMs },
            'handler threw; trying the same message again (later messages of its conversation wait)',
          );
          await sleep(delayMs);
          continue;
        }
        outcome = {
          kind: 'dead-letter',
          reason: DeadLetterReason.handlerCrashed,
          error: describeError(error),
          attempts: crashes,
          orgId: null,
          eventType: null,
          eventId: null,
        };
      }
      if (outcome.kind === 'wait-for-tenant') {
        const waited = this.#waitForTenant(work, tenant, outcome);
        if (waited === 'parked') return true;
        if (waited === 'in-memory') {
          // Nowhere to park: wait here (this conversation only), then the same message again.
          this.#options.observer?.retried?.(outcome.reason);
          await sleep(Math.max(1000, (outcome.untilMs ?? 0) - Date.now()));
          continue;
        }
        outcome = waited;
      }
      if (tenant !== undefined && outcome.kind !== 'retry') {
        work.state.waitingSince.delete(tenant);
        if (outcome.kind === 'done') this.#options.parking?.gate.recovered(tenant);
      }
      switch (outcome.kind) {
        case 'done':
        case 'skipped':
          return true;
        case 'retry':
          this.#options.observer?.retried?.(outcome.error);
          this.#options.logger.warn(
            { ...where, error: outcome.error, afterMs: outcome.afterMs },
            'transient failure; the same message again later (later messages of its conversation wait)',
          );
          await sleep(outcome.afterMs);
          continue;
        case 'dead-letter': {
          const { kind: _kind, ...details } = outcome;
          return this.#deadLetter(work, details);
        }
        default: {
          const unreachable: never = outcome;
          throw new Error(`unknown handler outcome ${JSON.stringify(unreachable)}`);
        }
      }
    }
    return false;
  }

  /**
   * Parks the tenant ('parked'), or waits in memory when parking is not set up or the record has
   * no tenant ('in-memory', after the wait), or says to dead-letter the message when its tenant
   * has waited longer than maxWaitMs with nothing handled in between.
   */
  #waitForTenant(
    work: Work,
    tenant: string | undefined,
    outcome: Extract<HandlerOutcome, { kind: 'wait-for-tenant' }>,
  ): 'parked' | 'in-memory' | Extract<HandlerOutcome, { kind: 'dead-letter' }> {
    const { parking } = this.#options;
    if (!parking || tenant === undefined) return 'in-memory';
    const since = work.state.waitingSince.get(tenant) ?? Date.now();
    const maxWaitMs = parking.maxWaitMs ?? DEFAULT_MAX_TENANT_WAIT_MS;
    if (Date.now() - since > maxWaitMs) {
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

  /**
   * Writes the letter (once, even across restarts: the writer remembers it), then the message is
   * done. Kafka or Redis failing here is transient: try again, holding only this conversation.
   */
  async #deadLetter(work: Work, details: DeadLetterDetails): Promise<boolean> {
    const where = { topic: work.topic, partition: work.partition, offset: work.message.offset };
    for (let attempt = 1; this.#current(work); attempt++) {
      try {
        const written = await this.#options.deadLetters.write(work, details);
        if (written === 'written') this.#options.observer?.deadLettered?.(details.reason);
        this.#options.logger.warn(
          {
            ...where,
            reason: details.reason,
            error: details.error,
            orgId: details.orgId,
            eventId: details.eventId,
          },
          written === 'written'
            ? 'message dead-lettered'
            : 'message was already dead-lettered (before a restart)',
        );
        return true;
      } catch (error) {
        const delayMs = backoffDelay(DEFAULT_CRASH_BUDGET, Math.min(attempt, 6), Math.random);
        this.#options.logger.error(
          { err: error, ...where, attempt, delayMs },
          'dead letter not written; trying again (later messages of its conversation wait)',
        );
        await sleep(delayMs);
      }
    }
    return false;
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
      // Restarted by kafkajs after a crash although this consumer stopped: leave (as the live one does).
      reader.on(reader.events.CRASH, (event) => {
        if (this.#stopping && event.payload.restart)
          setImmediate(() => void reader.disconnect().catch(() => undefined));
      });
      reader.on(reader.events.GROUP_JOIN, () => {
        if (this.#stopping) void reader.disconnect().catch(() => undefined);
        else this.#reseekReplays(reader);
      });
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

  /**
   * After kafkajs restarted the reader (it crashed: a broker restart), the new one starts every
   * partition at the end (its group commits nothing) and forgets every seek and pause: a replay
   * still reading would wait for ever for offsets that never come again, and its tenant's
   * messages with it (soak run 17). Each such replay goes on from where it stood.
   */
  #reseekReplays(reader: Consumer): void {
    for (const state of this.#partitions.values()) {
      const replay = state.replay;
      if (!replay?.reading || state.epoch !== this.#epoch) continue;
      const where = { topic: state.topic, partition: state.partition };
      try {
        reader.seek({ ...where, offset: replay.position.toString() });
        if (replay.paused) reader.pause([{ topic: state.topic, partitions: [state.partition] }]);
        this.#options.logger.info(
          { ...where, from: replay.position.toString() },
          'replay reader (re)joined: reading parked tenants’ messages on from where the replay stood',
        );
      } catch (error) {
        this.#options.logger.warn(
          { ...where, err: error },
          'could not point the replay reader back; trying at its next join',
        );
      }
    }
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
      this.#push(this.#options.orderingKey(message), {
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
    if (replay.reading && replay.waiting > this.#limit() && !replay.paused) {
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
    }, this.#options.commitIntervalMs ?? 200);
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
        Date.now(),
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
