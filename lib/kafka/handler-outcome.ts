import type { DeadLetterDetails } from '../dead-letters/index.ts';

/**
 * What a consumer's handler says became of one message (in the spirit of Emmett's
 * MessageHandlerResult): the keyed consumer, not the handler, acts on it. A handler returns one of
 * these and throws only for what it cannot classify; the consumer gives a throw a bounded retry
 * budget, then dead-letters the message with reason `handler_crashed`.
 */
export type HandlerOutcome =
  /** The effect is durable (or there was nothing to do beyond counting): commit past it. */
  | { readonly kind: 'done' }
  /** Deliberately not acted on, for a reason that is counted. */
  | { readonly kind: 'skipped'; readonly reason: string }
  /** No retry can fix it: the consumer writes the dead letter (once), then commits past it. */
  | ({ readonly kind: 'dead-letter' } & DeadLetterDetails)
  /** A transient failure (Kafka, Redis, a claim held elsewhere): the same message again after `afterMs`. */
  | { readonly kind: 'retry'; readonly error: string; readonly afterMs: number }
  /**
   * The message's tenant (its organisation or portal) cannot take it now: HubSpot budget spent,
   * OpenCX failing. The consumer parks the tenant: this and its later messages leave memory and
   * the partition goes on without them; they are read again, in order, once the tenant's gate
   * opens (at `untilMs` when given, else after a back-off that grows with each close).
   */
  | { readonly kind: 'wait-for-tenant'; readonly reason: string; readonly untilMs?: number };

export const done: HandlerOutcome = { kind: 'done' };
