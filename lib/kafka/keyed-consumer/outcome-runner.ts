import { DeadLetterReason, type DeadLetterDetails, type DeadLetterSource } from '../../dead-letters/index.ts';
import { describeError } from '../../errors.ts';
import { backoffDelay, withRetry, type RetryPolicy } from '../../retry.ts';
import type { HandlerOutcome } from '../handler-outcome.ts';
import { DEFAULT_CRASH_BUDGET, type ConsumerSettings } from './options.ts';

export type WaitForTenant = Extract<HandlerOutcome, { kind: 'wait-for-tenant' }>;
export type DeadLetterOutcome = Extract<HandlerOutcome, { kind: 'dead-letter' }>;

/** Kafka or Redis failing a dead letter's write: the default backoff, for as long as the work is current. */
const DEAD_LETTER_WRITE_RETRY: RetryPolicy = { ...DEFAULT_CRASH_BUDGET, attempts: Number.POSITIVE_INFINITY };

/** A message the runner can handle: where it comes from, and whether it was dead-lettered before. */
export type RunnableWork = DeadLetterSource & { readonly deadLettered: Promise<boolean> };

/** What becomes of a tenant's trouble: parking, or waiting in memory when nothing parks. */
export type TenantOutcomes<W> = {
  /**
   * 'parked' (the message is finished: its tenant's cursor covers it), 'in-memory' (the runner
   * waits, then handles the same message again), or a dead letter (the tenant waited too long).
   */
  readonly waitForTenant: (
    work: W,
    tenant: string | undefined,
    outcome: WaitForTenant,
  ) => 'parked' | 'in-memory' | DeadLetterOutcome;
  /** The tenant's message ended (done, skipped or dead-lettered): the tenant is not waiting on it. */
  readonly ended: (work: W, tenant: string, outcome: HandlerOutcome['kind']) => void;
};

export type OutcomeRunnerDeps<W> = Pick<
  ConsumerSettings,
  'handle' | 'deadLetters' | 'logger' | 'observer' | 'crashBudget' | 'now' | 'random' | 'sleep'
> & {
  /** The consumer still owns the message and is not stopping: keep at it. */
  readonly current: (work: W) => boolean;
  readonly tenants: TenantOutcomes<W>;
};

/**
 * Calls the handler on one message until it is finished, and acts on its outcome: done and
 * skipped finish it; retry calls again after the delay (only this conversation waits); a
 * dead-letter outcome writes the letter, then finishes it; wait-for-tenant parks the tenant (or
 * waits in memory). A handler that throws gets the crash budget of attempts with backoff, then
 * its message is dead-lettered as handler_crashed and its conversation goes on.
 */
export class OutcomeRunner<W extends RunnableWork> {
  readonly #deps: OutcomeRunnerDeps<W>;

  constructor(deps: OutcomeRunnerDeps<W>) {
    this.#deps = deps;
  }

  /** True once the message is finished; false when it gave up because the consumer is stopping or lost the partition. */
  async run(work: W, tenant: string | undefined): Promise<boolean> {
    const { crashBudget: budget, handle, logger, observer, now, random, sleep, tenants } = this.#deps;
    const where = { topic: work.topic, partition: work.partition, offset: work.message.offset };
    let crashes = 0;
    // Dead-lettered before a crash or rebalance redelivered it (its offset was not committed yet,
    // e.g. behind another conversation's unfinished message): it stays a dead letter until an
    // operator replays it, rather than being applied now, after later messages of its conversation.
    if (await work.deadLettered) {
      logger.warn(where, 'message was dead-lettered before it was redelivered; left to replay');
      return true;
    }
    // Not withRetry: the handler's outcomes steer this loop while the work is current, and only
    // its crashes count toward the budget that ends in a dead letter.
    while (this.#deps.current(work)) {
      let outcome: HandlerOutcome;
      try {
        outcome = await handle(work.message, work.partition, work.topic);
      } catch (error) {
        crashes++;
        observer.crashed?.(error, crashes);
        if (crashes < budget.attempts) {
          const delayMs = backoffDelay(budget, crashes, random);
          logger.error(
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
        const waited = tenants.waitForTenant(work, tenant, outcome);
        if (waited === 'parked') return true;
        if (waited === 'in-memory') {
          // Nowhere to park: wait here (this conversation only), then the same message again.
          observer.retried?.(outcome.reason);
          await sleep(Math.max(1000, (outcome.untilMs ?? 0) - now()));
          continue;
        }
        outcome = waited;
      }
      if (tenant !== undefined && outcome.kind !== 'retry') tenants.ended(work, tenant, outcome.kind);
      switch (outcome.kind) {
        case 'done':
        case 'skipped':
          return true;
        case 'retry':
          observer.retried?.(outcome.error);
          logger.warn(
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
   * Writes the letter (once, even across restarts: the writer remembers it), then the message is
   * done. Kafka or Redis failing here is transient: try again, holding only this conversation.
   */
  async #deadLetter(work: W, details: DeadLetterDetails): Promise<boolean> {
    const { deadLetters, logger, observer, random, sleep } = this.#deps;
    const where = { topic: work.topic, partition: work.partition, offset: work.message.offset };
    if (!this.#deps.current(work)) return false;
    try {
      await withRetry(
        DEAD_LETTER_WRITE_RETRY,
        async (attempt) => {
          if (attempt > 1 && !this.#deps.current(work)) throw new Error('no longer the consumer’s work');
          const written = await deadLetters.write(work, details);
          if (written === 'written') observer.deadLettered?.(details.reason);
          logger.warn(
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
        },
        {
          // Kafka or Redis trouble, not the handler's: tried again while the work is current.
          retryIf: () => this.#deps.current(work),
          sleep,
          random,
          onRetry: ({ attempt, delayMs, error }) =>
            logger.error(
              { err: error, ...where, attempt, delayMs },
              'dead letter not written; trying again (later messages of its conversation wait)',
            ),
        },
      );
      return true;
    } catch {
      return false; // the consumer is stopping or lost the partition
    }
  }
}
