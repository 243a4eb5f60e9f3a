import type { PipelineEventType } from '../domain-events.ts';
import { deriveEventId, type DomainEventId } from '../ids.ts';

type CamelCase<S extends string> = S extends `${infer Head}-${infer Tail}`
  ? `${Head}${Capitalize<CamelCase<Tail>>}`
  : S;

/**
 * The id of each event type, derived from the HubSpot source it stands for (never random): the
 * same HubSpot message always gives the same id, so a redelivered, replayed or reprocessed event
 * carries the same Idempotency-Key to OpenCX. The processor's rules mint these ids, and the
 * console finds what became of a raw event by computing them again: both call these, so neither
 * can drift from the other. Changing a recipe changes every id from then on (events already
 * applied would be applied again once).
 */
export const eventIdOf = {
  customerMessage: (orgId: string, messageId: string): DomainEventId =>
    deriveEventId('customer-message', orgId, messageId),
  repReply: (orgId: string, messageId: string): DomainEventId => deriveEventId('rep-reply', orgId, messageId),
  /** One handoff per thread: a second assignment away from the AI is the same handoff. */
  handoff: (orgId: string, threadId: string): DomainEventId => deriveEventId('handoff', orgId, threadId),
  /** One per change: each HubSpot change of a ticket property has its own occurredAt. */
  ticketFieldChanged: (
    orgId: string,
    ticketId: string,
    property: string,
    occurredAt: number,
  ): DomainEventId => deriveEventId('ticket-field-changed', orgId, ticketId, property, occurredAt),
  noteMirrored: (orgId: string, noteId: string): DomainEventId =>
    deriveEventId('note-mirrored', orgId, noteId),
  /** The AI's answer to one customer message. */
  aiReply: (customerMessageEventId: string): DomainEventId =>
    deriveEventId('ai-reply', customerMessageEventId),
  /**
   * Outbound's own check of a ticket's held events: one per replica, ticket and moment (a later
   * check is a new one).
   */
  ticketHoldCheck: (instance: string, orgId: string, ticketId: string, at: number): DomainEventId =>
    deriveEventId('ticket-hold-check', instance, orgId, ticketId, at),
} as const satisfies Record<CamelCase<PipelineEventType>, (...parts: never[]) => DomainEventId>;
