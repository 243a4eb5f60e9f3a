import type { HeldTicketDeps } from '../../services/outbound/src/apply-domain-event.ts';
import type { HeldTicket, HoldableEvent } from '../../lib/held-ticket-events.ts';
import { ticketLinkKey } from '../../lib/session-links.ts';

/**
 * Outbound's held ticket events in a map, for tests of the apply logic alone (the Kafka-backed
 * table is tested on the real broker): what was held, and every count by outcome.
 */
export const heldTicketsInMemory = (options: { holdMs?: number } = {}) => {
  const tickets = new Map<string, HeldTicket>();
  const counts = new Map<string, number>();
  const awaited: string[] = [];
  const requeued: HoldableEvent[] = [];
  const deps: HeldTicketDeps = {
    current: async (orgId, ticketId) => tickets.get(ticketLinkKey(orgId, ticketId)),
    write: async (ticket) => void tickets.set(ticketLinkKey(ticket.orgId, ticket.ticketId), ticket),
    clear: async (orgId, ticketId) => void tickets.delete(ticketLinkKey(orgId, ticketId)),
    requeue: async (event) => void requeued.push(event),
    holdMs: options.holdMs ?? 24 * 60 * 60 * 1000,
    clockTtlMs: 48 * 60 * 60 * 1000,
    linkAwaited: (orgId) => void awaited.push(orgId),
    counted: (outcome, events) => void counts.set(outcome, (counts.get(outcome) ?? 0) + events.length),
  };
  return { deps, tickets, counts, awaited, requeued };
};
