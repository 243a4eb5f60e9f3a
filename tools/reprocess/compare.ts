/**
 * What changed: the current rules' decision for each raw event against the domain events the
 * domain topic already holds for the same HubSpot source. Pure: no Kafka, no clock.
 */
import type { DomainEvent } from '../../lib/domain-events.ts';
import type { WebhookEvent } from '../../services/processor/src/rules/index.ts';

/**
 * Which HubSpot thing a raw event and a domain event are about, the same text on both sides:
 * a message, one change of a conversation or ticket property, a note. (The processor's dedup key
 * without the organisation, which both sides share.)
 */
export const sourceKeyOfWebhookEvent = (event: WebhookEvent): string | undefined => {
  switch (event.subscriptionType) {
    case 'conversation.newMessage':
      return `message:${event.messageId}`;
    case 'conversation.propertyChange':
      return `conversation:${event.objectId}:${event.propertyName}:${event.occurredAt}`;
    case 'ticket.propertyChange':
      return `ticket:${event.objectId}:${event.propertyName}:${event.occurredAt}`;
    case 'object.creation':
      return `note:${event.objectId}`;
    case 'unsupported':
      return undefined;
    default: {
      const unreachable: never = event;
      return unreachable;
    }
  }
};

export const sourceKeyOfDomainEvent = (event: DomainEvent): string => {
  switch (event.type) {
    case 'customer-message':
    case 'rep-reply':
      return `message:${event.messageId}`;
    case 'handoff':
      // Only an assignment change hands off (rules/conversation-change.ts).
      return `conversation:${event.threadId}:assignedTo:${event.occurredAt}`;
    case 'ticket-field-changed':
      return `ticket:${event.ticketId}:${event.property}:${event.occurredAt}`;
    case 'note-mirrored':
      return `note:${event.noteId}`;
    default: {
      const unreachable: never = event;
      return unreachable;
    }
  }
};

/** What the current rules did with one raw event. */
export type CurrentOutcome =
  | { readonly kind: 'emitted'; readonly events: readonly DomainEvent[] }
  | { readonly kind: 'skipped'; readonly reason: string }
  | { readonly kind: 'dead-letter'; readonly reason: string; readonly error: string }
  | { readonly kind: 'failed'; readonly error: string };

export const Change = {
  /** Events the domain topic does not hold yet: effects a past rule (or failure) did not produce. */
  newEffect: 'new effect',
  /** Every event it emits is already on the domain topic (applied, or on its way). */
  unchanged: 'unchanged',
  /** Skipped now, though the domain topic holds events for the same source. */
  newlySkipped: 'newly skipped',
  /** Skipped now, and nothing on the domain topic either. */
  stillSkipped: 'still skipped',
  /** A second delivery of an event seen earlier in the window (HubSpot retries): a duplicate now as then. */
  repeatDelivery: 'repeat delivery',
  /** The processor would dead-letter it (undecodable, malformed, HubSpot refused...). */
  wouldDeadLetter: 'would dead-letter',
  /** Could not be decided (HubSpot or Redis unreachable after retries, a bug): run again. */
  failed: 'failed',
} as const;
export type Change = (typeof Change)[keyof typeof Change];

export type ComparedEvent = {
  readonly change: Change;
  /** For new effects: the events to write. */
  readonly newEvents: readonly DomainEvent[];
  /** A skip's or dead letter's reason, or the failure. */
  readonly detail?: string;
};

export const DUPLICATE_REASON = 'duplicate';

/**
 * One raw event's change. `previous`: ids of the domain events the topic holds for its source;
 * `existingIds`: every event id on the topic for the organisation (an id can come from another
 * source: a thread hands off once, whichever assignment did it).
 */
export const compareOutcome = (
  outcome: CurrentOutcome,
  previous: readonly string[],
  existingIds: ReadonlySet<string>,
): ComparedEvent => {
  switch (outcome.kind) {
    case 'emitted': {
      const newEvents = outcome.events.filter((event) => !existingIds.has(event.eventId));
      return { change: newEvents.length > 0 ? Change.newEffect : Change.unchanged, newEvents };
    }
    case 'skipped':
      if (outcome.reason === DUPLICATE_REASON) return { change: Change.repeatDelivery, newEvents: [] };
      return {
        change: previous.length > 0 ? Change.newlySkipped : Change.stillSkipped,
        newEvents: [],
        detail: outcome.reason,
      };
    case 'dead-letter':
      return { change: Change.wouldDeadLetter, newEvents: [], detail: `${outcome.reason}: ${outcome.error}` };
    case 'failed':
      return { change: Change.failed, newEvents: [], detail: outcome.error };
    default: {
      const unreachable: never = outcome;
      return unreachable;
    }
  }
};
