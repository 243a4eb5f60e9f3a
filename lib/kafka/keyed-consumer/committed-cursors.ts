import type { Admin, Kafka } from 'kafkajs';
import type { Logger } from '../../log.ts';
import { linearDelay, withRetry } from '../../retry.ts';
import type { CommitPoint } from './offset-tracking.ts';
import { decodeCursors } from './parking-cursors.ts';
import type { PartitionState } from './state.ts';

/**
 * The live group's committed offsets and the parked tenants' cursors in their metadata, read
 * when a partition is assigned, before its first message is handled: a partition's next owner
 * takes over its last owner's parked tenants from here.
 */
export class CommittedCursors {
  readonly #kafka: Kafka;
  readonly #groupId: string;
  readonly #logger: Logger;
  readonly #sleep: (ms: number) => Promise<void>;
  #admin: Admin | undefined;
  /** Committed offsets and cursors per topic, read once per assignment. */
  readonly #read = new Map<string, Promise<Map<number, CommitPoint>>>();

  constructor(kafka: Kafka, groupId: string, logger: Logger, sleep: (ms: number) => Promise<void>) {
    this.#kafka = kafka;
    this.#groupId = groupId;
    this.#logger = logger;
    this.#sleep = sleep;
  }

  async connect(): Promise<void> {
    this.#admin = this.#kafka.admin();
    await this.#admin.connect();
  }

  async disconnect(): Promise<void> {
    await this.#admin?.disconnect();
  }

  /** A new assignment: what was read belongs to the old one. */
  forget(): void {
    this.#read.clear();
  }

  /** The partition's commit; undefined when it has none (or before `connect`). */
  async of(topic: string, partition: number): Promise<CommitPoint | undefined> {
    const admin = this.#admin;
    if (!admin) return undefined;
    let pending = this.#read.get(topic);
    if (!pending) {
      pending = this.#readTopic(admin, topic);
      this.#read.set(topic, pending);
    }
    return (await pending).get(partition);
  }

  /** Parks on `state` the tenants its committed metadata names, as its last owner had them. */
  adopt(state: PartitionState): void {
    const cursors = decodeCursors(state.committedMetadata);
    const where = { topic: state.topic, partition: state.partition };
    if (cursors === 'foreign') {
      this.#logger.warn(
        { ...where, metadata: state.committedMetadata },
        'committed offset metadata is not ours; ignored',
      );
      return;
    }
    for (const { tenant, from, since } of cursors) {
      state.parked.set(tenant, { from });
      state.waitingSince.set(tenant, since);
    }
    if (cursors.length > 0)
      this.#logger.info(
        { ...where, tenants: cursors.map(({ tenant }) => tenant) },
        'parked tenants taken over from the partition’s last owner; they are read again when their gates open',
      );
  }

  async #readTopic(admin: Admin, topic: string): Promise<Map<number, CommitPoint>> {
    // Without the cursors a parked tenant's messages would be skipped: never go on blind.
    return withRetry(
      { attempts: Number.POSITIVE_INFINITY, delayMs: linearDelay(200, 5000) },
      async () => {
        const [fetched] = await admin.fetchOffsets({ groupId: this.#groupId, topics: [topic] });
        return new Map(
          (fetched?.partitions ?? [])
            .filter((entry) => Number(entry.offset) >= 0)
            .map((entry) => [
              entry.partition,
              { offset: BigInt(entry.offset), metadata: entry.metadata ?? null },
            ]),
        );
      },
      {
        retryIf: () => true,
        sleep: this.#sleep,
        onRetry: ({ attempt, error }) =>
          this.#logger.warn(
            { err: error, topic, attempt },
            'could not read the committed parked-tenant cursors; trying again',
          ),
      },
    );
  }
}
