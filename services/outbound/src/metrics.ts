import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { createConsumerMetrics, type TenantGate } from '../../../lib/kafka/index.ts';

/**
 * `tenantsWaiting`: the tenants the service's gate waits for now; `heldTickets`: tickets whose
 * events wait for a session link (gauges read at scrape time).
 */
export const createOutboundMetrics = (
  registry: Registry,
  tenantsWaiting: TenantGate['waiting'] = () => [],
  heldTickets: () => number = () => 0,
) => ({
  ...createConsumerMetrics(
    registry,
    'outbound',
    { messages: 'Events', tenants: 'organisations', transient: "Kafka or another replica's claim" },
    tenantsWaiting,
  ),
  applied: new Counter({
    name: 'outbound_events_applied_total',
    help: 'Domain events applied to OpenCX, by type',
    labelNames: ['type'] as const,
    registers: [registry],
  }),
  skipped: new Counter({
    name: 'outbound_events_skipped_total',
    help: 'Domain events with nothing to apply, by type and reason (no_linked_session, handed_off, ...)',
    labelNames: ['type', 'reason'] as const,
    registers: [registry],
  }),
  retries: new Counter({
    name: 'outbound_retries_total',
    help: 'Calls to OpenCX or HubSpot retried, by target and error code',
    labelNames: ['target', 'code'] as const,
    registers: [registry],
  }),
  sessionsCreated: new Counter({
    name: 'outbound_sessions_created_total',
    help: 'OpenCX sessions created for HubSpot threads',
    registers: [registry],
  }),
  aiRepliesPosted: new Counter({
    name: 'outbound_ai_replies_posted_total',
    help: 'AI replies posted to HubSpot, by kind (message, comment for Assist Mode)',
    labelNames: ['kind'] as const,
    registers: [registry],
  }),
  hubspotCalls: new Counter({
    name: 'outbound_hubspot_calls_total',
    help: 'HubSpot calls sent (each took a slot of the portal rate limit), by portal and purpose (post_reply, thread_history, ticket_lookup)',
    labelNames: ['portal_id', 'purpose'] as const,
    registers: [registry],
  }),
  hubspotThrottled: new Counter({
    name: 'outbound_hubspot_throttled_total',
    help: 'Times a HubSpot call found no slot in the per-portal rate limit, by portal and class (customer waits; bookkeeping is put off)',
    labelNames: ['portal_id', 'class'] as const,
    registers: [registry],
  }),
  ticketLookUps: new Counter({
    name: 'outbound_owed_ticket_lookups_total',
    help: "Owed ticket look-ups made off the customer's path, by outcome (found, none, deferred: no room in the budget, waiting_for_link: the thread's session link not read here yet, failed, given_up)",
    labelNames: ['outcome'] as const,
    registers: [registry],
  }),
  heldTicketEvents: new Counter({
    name: 'outbound_held_ticket_events_total',
    help: 'Ticket and note events whose ticket had no session link yet, by outcome: held, released (applied once the link came), superseded (a newer change of the property replaced it), dropped (a note over the record size), expired (no link within TICKET_HOLD_MS), discarded (organisation deleted), refused (OpenCX answered 4xx at release: written back to be dead-lettered)',
    labelNames: ['outcome'] as const,
    registers: [registry],
  }),
  heldTicketEventWait: new Histogram({
    name: 'outbound_held_ticket_event_wait_seconds',
    help: 'How long a held ticket or note event waited for its ticket link before it was applied',
    buckets: [0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 1800, 3600, 86400],
    registers: [registry],
  }),
  heldTickets: new Gauge({
    name: 'outbound_held_tickets',
    help: 'Tickets whose events wait for a session link now (the held-ticket-events table)',
    registers: [registry],
    collect() {
      this.set(heldTickets());
    },
  }),
  applyLatency: new Histogram({
    name: 'outbound_apply_seconds',
    help: 'Time to apply one domain event, retries included',
    labelNames: ['type'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [registry],
  }),
});
export type OutboundMetrics = ReturnType<typeof createOutboundMetrics>;
