import type { Kafka } from 'kafkajs';
import type { PipelineEvent } from '../../../lib/domain-events.ts';
import { HeldTicketEvents } from '../../../lib/held-ticket-events.ts';
import { eventIdOf } from '../../../lib/contracts/index.ts';
import type { RecordWriter } from '../../../lib/kafka/record-writer.ts';
import type { Logger } from '../../../lib/log.ts';
import type { SessionLinks } from '../../../lib/session-links.ts';
import { HeldOutcome } from '../../../lib/contracts/index.ts';
import type { HeldTicketDeps } from './apply-domain-event.ts';
import { startHeldTicketChecks } from './held-ticket-checks.ts';
import type { OutboundMetrics } from './metrics.ts';
import { REOWE_WINDOW_MS, type OwedTicketLookUps } from './owed-ticket-look-ups.ts';

/**
 * Outbound's held ticket events, wired: the table (Kafka, compacted, read whole here), the
 * checks that send a held ticket back through its queue, and what the apply step needs of them.
 */
export const startHeldTickets = async (deps: {
  readonly kafka: Kafka;
  readonly topics: { readonly held: string; readonly domainEvents: string };
  readonly groupPrefix: string;
  readonly links: Pick<SessionLinks, 'forTicket' | 'ticketlessThreadsSince' | 'onTicketLinked'>;
  readonly writer: Pick<RecordWriter, 'write'>;
  readonly publish: (topic: string, events: readonly PipelineEvent[]) => Promise<void>;
  readonly owed: Pick<OwedTicketLookUps, 'owe'>;
  readonly metrics: Pick<OutboundMetrics, 'heldTicketEvents' | 'heldTicketEventWait'>;
  readonly holdMs: number;
  /** How long a ticket's applied clocks are kept after its last change (DEDUP_TTL_MS). */
  readonly clockTtlMs: number;
  /** This replica, in its checks' event ids. */
  readonly instance: string;
  readonly logger: Logger;
}) => {
  const { links, metrics } = deps;
  const table = new HeldTicketEvents({
    kafka: deps.kafka,
    topic: deps.topics.held,
    groupPrefix: deps.groupPrefix,
    logger: deps.logger,
  });
  await table.start();
  // When this replica was last given partitions of the domain topic: a held record written by
  // their previous owner must be in the table before a miss in it is trusted.
  let partitionsSince = Date.now();
  const checks = startHeldTicketChecks({
    held: table,
    isLinked: (orgId, ticketId) => links.forTicket(orgId, ticketId) !== undefined,
    publishCheck: (ticket) => {
      const now = Date.now();
      return deps.publish(deps.topics.domainEvents, [
        {
          type: 'ticket-hold-check',
          eventId: eventIdOf.ticketHoldCheck(deps.instance, ticket.orgId, ticket.ticketId, now),
          orgId: ticket.orgId,
          portalId: ticket.portalId,
          ticketId: ticket.ticketId,
          occurredAt: now,
        },
      ]);
    },
    oweAgain: async (orgIds) => {
      const threads = links
        .ticketlessThreadsSince(Date.now() - REOWE_WINDOW_MS)
        .filter(({ orgId }) => orgIds.has(orgId));
      for (let index = 0; index < threads.length; index += 100)
        await Promise.all(
          threads
            .slice(index, index + 100)
            .map(({ orgId, threadId }) => deps.owed.owe(orgId, threadId, { checkRedis: true })),
        );
    },
    holdMs: deps.holdMs,
    clockTtlMs: deps.clockTtlMs,
    now: Date.now,
    logger: deps.logger,
  });
  links.onTicketLinked(checks.linked);

  const applyDeps: HeldTicketDeps = {
    current: (orgId, ticketId) => table.current(orgId, ticketId, partitionsSince),
    write: (ticket) => table.write(deps.writer, ticket),
    clear: (orgId, ticketId) => table.clear(deps.writer, orgId, ticketId),
    requeue: (event) => deps.publish(deps.topics.domainEvents, [event]),
    holdMs: deps.holdMs,
    clockTtlMs: deps.clockTtlMs,
    linkAwaited: checks.awaited,
    counted: (outcome, events) => {
      metrics.heldTicketEvents.inc({ outcome }, events.length);
      if (outcome !== HeldOutcome.released) return;
      const now = Date.now();
      for (const entry of events)
        if ('heldAt' in entry) metrics.heldTicketEventWait.observe(Math.max(0, now - entry.heldAt) / 1000);
    },
  };
  return {
    applyDeps,
    /** The domain consumer joined its group (it may have been given other partitions). */
    partitionsAssigned: (): void => {
      partitionsSince = Date.now();
    },
    /** Whether events of the organisation wait for a ticket link: its look-ups are awaited. */
    isWaiting: (orgId: string): boolean => table.isWaiting(orgId),
    size: (): number => table.size,
    /** First at stop: no more checks are written. */
    stopChecks: (): void => checks.stop(),
    /** Last at stop, once no handler runs. */
    stop: (): Promise<void> => table.stop(),
  };
};
