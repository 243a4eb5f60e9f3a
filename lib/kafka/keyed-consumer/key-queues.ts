/**
 * One queue per ordering key (one conversation): each runs its messages in order on its own, so
 * one conversation never waits for another. A queue exists while it has work; its runner ends
 * when it is empty.
 */
export type KeyQueueHost<W> = {
  readonly stopping: () => boolean;
  /** The work belongs to the current assignment (work of a lost one is dropped, not handled). */
  readonly inAssignment: (work: W) => boolean;
  /** Parks, passes over or handles the work; true once it is finished (committable). */
  readonly settle: (work: W) => Promise<boolean>;
  readonly finished: (work: W) => void;
  /** The work left its queue, finished or not (back-pressure counts it out). */
  readonly released: (work: W) => void;
};

export class KeyQueues<W> {
  readonly #host: KeyQueueHost<W>;
  readonly #queues = new Map<string, W[]>();
  readonly #running = new Set<Promise<void>>();
  #buffered = 0;

  constructor(host: KeyQueueHost<W>) {
    this.#host = host;
  }

  /** Messages queued or being handled, all keys together. */
  get buffered(): number {
    return this.#buffered;
  }

  has(key: string): boolean {
    return this.#queues.has(key);
  }

  push(key: string, work: W): void {
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

  /** Settles once every queue's runner has stopped (at stop: each finishes the message it is on). */
  idle(): Promise<unknown> {
    return Promise.allSettled([...this.#running]);
  }

  async #drain(key: string): Promise<void> {
    const host = this.#host;
    const queue = this.#queues.get(key) ?? [];
    while (queue.length > 0 && !host.stopping()) {
      const work = queue[0];
      if (work === undefined) break;
      const finished = host.inAssignment(work) && (await host.settle(work));
      // Stopping mid-message: leave it unfinished (uncommitted, so redelivered) and stop here.
      if (!finished && host.stopping() && host.inAssignment(work)) break;
      // Either done, or from an assignment this consumer lost (its new owner redoes it): move on,
      // so newer messages of the same key behind it are not stranded.
      queue.shift();
      this.#buffered--;
      if (finished) host.finished(work);
      host.released(work);
    }
    this.#queues.delete(key);
    for (const work of queue) {
      this.#buffered--;
      host.released(work);
    }
  }
}

/**
 * Back-pressure: how many messages of one partition (or of one replay) may wait in memory. Past
 * the limit, fetching it is paused, never waited for inside eachBatch (kafkajs fetches again
 * only when every partition's batch has returned, so one slow partition would stop all of
 * them); it is resumed once half drained.
 */
export class BackPressure {
  readonly limit: number;

  constructor(limit: number) {
    this.limit = limit;
  }

  full(waiting: number): boolean {
    return waiting > this.limit;
  }

  drained(waiting: number): boolean {
    return waiting <= this.limit / 2;
  }
}
