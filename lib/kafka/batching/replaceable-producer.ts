import type { Producer } from 'kafkajs';
import type { Logger } from '../../log.ts';
import { withTimeout } from '../../timeout.ts';

/**
 * The batching publisher's producer, replaced before its next write once a send may have left
 * its idempotent sequence numbers out of step: kafkajs rolls back the sequences of every
 * partition of a failed request, including partitions the broker already wrote, so the next
 * batch there would reuse a sequence (the broker answers "out of order sequence" or, worse,
 * acknowledges it as a duplicate without storing it). A new producer gets a new producer id and
 * starts its sequences at 0.
 */
export class ReplaceableProducer {
  readonly #create: () => Producer;
  readonly #logger: Logger;
  readonly #onReplaced: ((reason: string) => void) | undefined;
  #producer: Producer | undefined;
  /** Why the producer must be replaced before its next write; undefined while it is sound. */
  #replaceBecause: string | undefined;

  constructor(options: { create: () => Producer; logger: Logger; onReplaced?: (reason: string) => void }) {
    this.#create = options.create;
    this.#logger = options.logger;
    this.#onReplaced = options.onReplaced;
  }

  /** The next write needs a new producer (the first reason given is the one reported). */
  replaceBeforeNextWrite(reason: string): void {
    this.#replaceBecause ??= reason;
  }

  /** The producer to write with: connected first, or replaced first when it must be. */
  async current(timeoutMs: number): Promise<Producer> {
    if (this.#producer && this.#replaceBecause === undefined) return this.#producer;
    const reason = this.#replaceBecause ?? 'start';
    const previous = this.#producer;
    this.#producer = undefined;
    if (previous) {
      // Its requests still under way (a timed-out send) end here; their callers already failed.
      await withTimeout(
        previous.disconnect(),
        timeoutMs,
        `disconnecting the replaced producer did not finish within ${timeoutMs} ms`,
      ).catch((error: unknown) =>
        this.#logger.warn({ err: error }, 'the replaced producer did not disconnect'),
      );
    }
    const next = this.#create();
    try {
      await withTimeout(
        next.connect(),
        timeoutMs,
        `connecting a Kafka producer did not finish within ${timeoutMs} ms`,
      );
    } catch (error) {
      void next.disconnect().catch(() => undefined);
      throw error;
    }
    this.#producer = next;
    this.#replaceBecause = undefined;
    if (reason !== 'start') {
      this.#logger.warn(
        { reason },
        'Kafka producer replaced: its sequence numbers may have been out of step',
      );
      this.#onReplaced?.(reason);
    }
    return next;
  }

  /** Disconnects the producer, if one is connected. */
  async close(): Promise<void> {
    const producer = this.#producer;
    this.#producer = undefined;
    await producer?.disconnect();
  }
}
