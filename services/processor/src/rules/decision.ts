import type { DomainEvent } from '../../../../lib/domain-events.ts';
import type { IgnoreReason } from '../../../../lib/contracts/index.ts';

/** What a rule decides: events to emit (not before `notBefore`, when set), or nothing, and why. */
export type Decision =
  | { readonly kind: 'emit'; readonly events: readonly DomainEvent[]; readonly notBefore?: number }
  | { readonly kind: 'ignore'; readonly reason: IgnoreReason };

export const emit = (events: readonly DomainEvent[], notBefore?: number): Decision =>
  notBefore === undefined ? { kind: 'emit', events } : { kind: 'emit', events, notBefore };
export const ignore = (reason: IgnoreReason): Decision => ({ kind: 'ignore', reason });
