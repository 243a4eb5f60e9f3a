import type { EachBatchPayload, KafkaMessage } from 'kafkajs';
import { sleep } from '../../retry.ts';
import { withTimeout } from '../../timeout.ts';
import { OffsetCommits } from './commits.ts';
import { onGroupJoinUnlessStopped, resumeAfterRebalance } from './kafkajs-workarounds.ts';
import { BackPressure, KeyQueues } from './key-queues.ts';
import type { Tracked } from './offset-tracking.ts';
import {
  DEFAULT_COMMIT_INTERVAL_MS,
  DEFAULT_CRASH_BUDGET,
  DEFAULT_FETCH_LINGER_MS,
  DEFAULT_MAX_BUFFERED_MESSAGES,
  type ConsumerSettings,
  type KeyedConsumerOptions,
} from './options.ts';
import { OutcomeRunner } from './outcome-runner.ts';
import { runBatches } from './run-batches.ts';
import { noParking, type Parking, type ParkingHost } from './parking.ts';
import { partitionState, type PartitionState, type Work } from './state.ts';
import { createTenantParking } from './tenant-parking.ts';

/** How long `stop` lets each conversation finish the message it is on. */
const STOP_GRACE_MS = 5000;

/**
 * A consumer that never lets one conversation hold up another, never lets one message hold up
 * its conversation forever, and never lets one tenant's trouble hold up the partition: the
 * handler returns an outcome (done, skipped, dead-letter, retry, wait-for-tenant) and the
 * consumer acts on it (outcome-runner.ts); a handler that throws gets a bounded budget of
 * attempts, then its message is dead-lettered as handler_crashed and the conversation goes on.
 * `eachBatch` only queues messages by ordering key and returns, so fetching goes on; each key's
 * queue runs in order on its own (key-queues.ts). Offsets are committed per partition up to the
 * first message not yet done (commits.ts), so a crash redelivers exactly the unfinished work
 * (handlers are idempotent). A tenant that must wait is parked (tenant-parking.ts): its messages
 * are committed past and read again later, in order. After a rebalance, queued work of the old
 * assignment is dropped: the partitions' new owners start from the commit and its parked
 * cursors. Memory is bounded per partition: a partition with too much waiting is paused on its
 * own and resumed as it drains.
 */
export class KeyedConsumer {
  readonly #settings: ConsumerSettings;
  /** The current assignment's partitions, by `topic:partition`. */
  readonly #partitions = new Map<string, PartitionState>();
  readonly #initializing = new Map<string, Promise<PartitionState | undefined>>();
  readonly #queues: KeyQueues<Work>;
  readonly #backPressure: BackPressure;
  readonly #runner: OutcomeRunner<Work>;
  readonly #commits: OffsetCommits;
  readonly #parking: Parking;
  /** Counts assignments: work queued under an earlier one is dropped, never committed. */
  #epoch = 0;
  #stopping = false;
  /** When the fetch whose batches are being queued returned, plus the linger (fetchLingerMs). */
  #nextFetchAt = 0;

  constructor(options: KeyedConsumerOptions) {
    const { parking, observer, ...rest } = options;
    const settings: ConsumerSettings = {
      ...rest,
      crashBudget: options.crashBudget ?? DEFAULT_CRASH_BUDGET,
      maxBufferedMessages: options.maxBufferedMessages ?? DEFAULT_MAX_BUFFERED_MESSAGES,
      commitIntervalMs: options.commitIntervalMs ?? DEFAULT_COMMIT_INTERVAL_MS,
      fetchLingerMs: options.fetchLingerMs ?? DEFAULT_FETCH_LINGER_MS,
      observer: observer ?? {},
      now: options.now ?? Date.now,
      random: options.random ?? Math.random,
      sleep,
    };
    this.#settings = settings;
    if (settings.fetchLingerMs > 0) {
      // kafkajs hands a fetch's batches to eachBatch one after another, then fetches again: the
      // linger is counted from the fetch, so a fetch with many partitions' batches waits once.
      // With several brokers, their fetchers share that one eachBatch worker; counted from the
      // latest fetch, one wait covers the fetches that returned meanwhile.
      const { consumer } = settings;
      consumer.on(consumer.events.FETCH, () => {
        this.#nextFetchAt = settings.now() + settings.fetchLingerMs;
      });
    }
    this.#backPressure = new BackPressure(settings.maxBufferedMessages);
    this.#queues = new KeyQueues<Work>({
      stopping: () => this.#stopping,
      inAssignment: (work) => work.epoch === this.#epoch,
      settle: (work) => this.#parking.settle(work, (tenant) => this.#runner.run(work, tenant)),
      finished: (work) => {
        work.tracked.done = true;
        this.#commits.schedule();
      },
      released: (work) => this.#released(work),
    });
    this.#commits = new OffsetCommits({
      consumer: settings.consumer,
      logger: settings.logger,
      intervalMs: settings.commitIntervalMs,
      partitions: () => this.#partitions.values(),
      partition: (topic, partition) => this.#partitions.get(`${topic}:${partition}`),
      epoch: () => this.#epoch,
      commitPoint: (state, next) => this.#parking.commitPoint(state, next),
    });
    const host: ParkingHost = {
      settings,
      stopping: () => this.#stopping,
      current: (work) => this.#current(work),
      epoch: () => this.#epoch,
      partitions: () => this.#partitions.values(),
      partition: (topic, partition) => this.#partitions.get(`${topic}:${partition}`),
      stateFor: (topic, partition) => this.#stateFor(topic, partition),
      queue: (key, work) => this.#queues.push(key, work),
      deadLetteredBefore: (message, topic, partition) => this.#deadLetteredBefore(message, topic, partition),
      backPressure: this.#backPressure,
      scheduleCommit: () => this.#commits.schedule(),
    };
    // The one place that asks whether this consumer parks: from here on it has a Parking.
    this.#parking = parking ? createTenantParking(parking, host) : noParking;
    this.#runner = new OutcomeRunner<Work>({
      ...settings,
      current: (work) => this.#current(work),
      tenants: this.#parking,
    });
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
    const { consumer, topics, logger } = this.#settings;
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
        this.#parking.assigned(event.payload.memberAssignment);
      },
      logger,
    );
    await this.#parking.start();
    await runBatches(consumer, { topics, fromBeginning: true }, (payload) => this.#enqueueBatch(payload));
  }

  /** Lets each conversation finish the message it is on (5 s at most), commits, then leaves the group. */
  async stop(): Promise<void> {
    this.#stopping = true;
    await withTimeout(this.#queues.idle(), STOP_GRACE_MS, () => undefined);
    this.#commits.cancel();
    await this.#commits.commit().catch(() => undefined);
    await Promise.allSettled([this.#settings.consumer.disconnect(), this.#parking.stop()]);
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
      const key = this.#settings.orderingKey(message);
      if (!this.#queues.has(key) && this.#parking.parkOnArrival(state, message, tracked)) {
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
    if (parkedNow > 0) this.#commits.schedule();
    if (this.#backPressure.full(state.waiting) && !state.paused) {
      state.paused = true;
      this.#settings.consumer.pause([{ topic: batch.topic, partitions: [batch.partition] }]);
      this.#settings.logger.warn(
        { topic: batch.topic, partition: batch.partition, waiting: state.waiting },
        'partition paused: too much waiting in memory',
      );
    }
    await payload.heartbeat();
    const linger = this.#nextFetchAt - this.#settings.now();
    if (linger > 0 && !this.#stopping) await this.#settings.sleep(linger);
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
        const restored = await this.#parking.restore(topic, partition);
        if (epoch !== this.#epoch) return undefined;
        const state = partitionState(topic, partition, epoch, restored);
        this.#parking.adopt(state);
        this.#partitions.set(key, state);
        return state;
      })().finally(() => {
        if (this.#initializing.get(key) === pending) this.#initializing.delete(key);
      });
      this.#initializing.set(key, pending);
    }
    return pending;
  }

  #deadLetteredBefore(message: KafkaMessage, topic: string, partition: number): Promise<boolean> {
    return this.#settings.deadLetters.alreadyWritten({ message, topic, partition }).catch(() => false);
  }

  /** A message left its queue (finished or dropped): resume its partition once half drained. */
  #released(work: Work): void {
    const { state, replay } = work;
    if (replay) {
      this.#parking.replayReleased(work, replay);
      return;
    }
    state.waiting--;
    if (state.paused && this.#backPressure.drained(state.waiting) && state.epoch === this.#epoch) {
      state.paused = false;
      this.#settings.consumer.resume([{ topic: state.topic, partitions: [state.partition] }]);
      this.#settings.logger.info(
        { topic: state.topic, partition: state.partition, waiting: state.waiting },
        'partition resumed',
      );
    }
  }

  #current(work: Work): boolean {
    return !this.#stopping && work.epoch === this.#epoch;
  }
}
