import { HeldOutcome, SkipReason } from '../../../../lib/contracts/index.ts';
import type { TicketHoldCheck } from '../../../../lib/domain-events.ts';
import { describeError, ErrorCode, PipelineError } from '../../../../lib/errors.ts';
import {
  afterApplied,
  eventsToRelease,
  holdEvent,
  isHolding,
  isStaleChange,
  type HeldTicket,
  type HoldableEvent,
} from '../../../../lib/held-ticket-events.ts';
import type { Org } from '../../../../lib/orgs/index.ts';
import type { SessionLink } from '../../../../lib/session-links.ts';
import { iso } from './dates.ts';
import { applied, held, skipped, type ApplyDeps, type ApplyOutcome } from './deps.ts';
import { linkedTicket } from './session-links.ts';

/** One ticket or note event onto its linked session: one OpenCX call, Idempotency-Key = event id. */
const applyToSession = (
  event: HoldableEvent,
  link: SessionLink,
  org: Org,
  deps: ApplyDeps,
): Promise<unknown> =>
  event.type === 'ticket-field-changed'
    ? deps.retry('opencx', () =>
        deps.openCxFor(org).setCustomData(link.sessionId, { [event.property]: event.value }, event.eventId),
      )
    : deps.retry('opencx', () =>
        deps.openCxFor(org).addAgentComment(
          link.sessionId,
          {
            text: event.text,
            hubspot_note_id: event.noteId,
            author_owner_id: event.authorOwnerId,
            created_at: iso(event.createdAt),
          },
          event.eventId,
        ),
      );

/** A failure no retry of the same call fixes, and that is no outage to wait out. */
const isRefusal = (error: unknown): boolean =>
  error instanceof PipelineError &&
  !error.retriable &&
  error.code !== ErrorCode.tenantWaiting &&
  error.code !== ErrorCode.kafkaUnavailable;

/**
 * Applies a ticket's held events in order (with `incoming` in its place among them), then clears
 * the hold. A crash or a failed call part-way leaves the hold as it was: the next attempt applies
 * them all again, each a no-op at OpenCX by its Idempotency-Key.
 */
const releaseHeld = async (
  ticket: HeldTicket,
  link: SessionLink,
  org: Org,
  deps: ApplyDeps,
  incoming?: HoldableEvent,
): Promise<void> => {
  const events = eventsToRelease(ticket, incoming);
  const refused = new Set<HoldableEvent>();
  for (const event of events) {
    try {
      await applyToSession(event, link, org, deps);
    } catch (error) {
      if (event === incoming || !isRefusal(error)) throw error;
      // OpenCX refuses this held event for good (a 4xx): it goes back to the domain topic on its
      // own, where it is refused again and dead-lettered with its own content (replayable),
      // instead of holding the ticket's other events or being tried again at every check.
      await deps.held.requeue(event);
      refused.add(event);
      deps.logger.warn(
        { orgId: event.orgId, ticketId: event.ticketId, eventId: event.eventId, err: describeError(error) },
        'held ticket event refused by OpenCX: written back to the domain topic, to be dead-lettered',
      );
    }
  }
  const applied = events.filter((event) => !refused.has(event));
  await deps.held.write(afterApplied(ticket, applied, deps.now(), ticket));
  const released = ticket.events.filter(({ event }) => events.includes(event));
  deps.held.counted(
    HeldOutcome.released,
    released.filter(({ event }) => !refused.has(event)),
  );
  if (refused.size > 0) deps.held.counted(HeldOutcome.refused, [...refused]);
  deps.logger.info(
    {
      orgId: ticket.orgId,
      ticketId: ticket.ticketId,
      sessionId: link.sessionId,
      events: events.length,
      heldEvents: ticket.events.length,
      waitedMs: deps.now() - ticket.heldSince,
    },
    'held ticket events applied: the ticket is linked now',
  );
};

/**
 * ticket-field-changed and note-mirrored. A ticket whose session link is not known yet (its
 * thread's look-up not made yet, or a ticket created later on the thread) holds the event
 * instead of skipping it; while a ticket holds events, a new one joins them and they are applied
 * together once the link is known, so a newer change is never overwritten by an older one.
 */
export const applyTicketEvent = async (
  event: HoldableEvent,
  org: Org,
  deps: ApplyDeps,
): Promise<ApplyOutcome> => {
  const link = await linkedTicket(deps, event.orgId, event.ticketId);
  const ticket = await deps.held.current(event.orgId, event.ticketId);
  if (isStaleChange(ticket, event)) return skipped(SkipReason.stale);
  if (link) {
    if (ticket && isHolding(ticket)) await releaseHeld(ticket, link, org, deps, event);
    else {
      await applyToSession(event, link, org, deps);
      // Only a change moves a clock; a note comes again as a no-op (its Idempotency-Key).
      if (event.type === 'ticket-field-changed')
        await deps.held.write(afterApplied(ticket, [event], deps.now(), event));
    }
    return applied;
  }
  const result = holdEvent(ticket, event, deps.now());
  if (result.changed) await deps.held.write(result.ticket);
  if (result.changed && result.dropped.length === 0) deps.held.counted(HeldOutcome.held, [event]);
  if (result.superseded.length > 0) deps.held.counted(HeldOutcome.superseded, result.superseded);
  if (result.dropped.length > 0) {
    deps.held.counted(HeldOutcome.dropped, result.dropped);
    deps.logger.warn(
      {
        orgId: event.orgId,
        ticketId: event.ticketId,
        dropped: result.dropped.map((dropped) => dropped.eventId),
      },
      'held notes let go: the ticket holds more than a record can carry',
    );
  }
  deps.held.linkAwaited(event.orgId);
  return held;
};

/**
 * A look at a ticket's held events, in the ticket's queue: applied when the ticket is linked now,
 * dropped when the hold has lasted `holdMs` with no link (the ticket is on no synced
 * conversation), else held on.
 */
export const applyHoldCheck = async (
  check: TicketHoldCheck,
  org: Org,
  deps: ApplyDeps,
): Promise<ApplyOutcome> => {
  const ticket = await deps.held.current(check.orgId, check.ticketId);
  if (!ticket) return skipped(SkipReason.nothingHeld);
  if (!isHolding(ticket)) {
    // Only clocks are kept: let go once no late delivery can come any more.
    if (deps.now() - ticket.updatedAt >= deps.held.clockTtlMs)
      await deps.held.clear(check.orgId, check.ticketId);
    return skipped(SkipReason.nothingHeld);
  }
  const link = await linkedTicket(deps, check.orgId, check.ticketId);
  if (link) {
    await releaseHeld(ticket, link, org, deps);
    return applied;
  }
  if (deps.now() - ticket.heldSince < deps.held.holdMs) return skipped(SkipReason.stillHeld);
  await deps.held.clear(check.orgId, check.ticketId);
  deps.held.counted(HeldOutcome.expired, ticket.events);
  deps.logger.warn(
    {
      orgId: check.orgId,
      ticketId: check.ticketId,
      events: ticket.events.length,
      heldSince: new Date(ticket.heldSince).toISOString(),
    },
    'held ticket events skipped: no session was linked to the ticket within TICKET_HOLD_MS',
  );
  return skipped(SkipReason.noLinkedSession);
};

/** The organisation is unknown or deleted: what its ticket holds is let go with it. */
export const discardHeld = async (check: TicketHoldCheck, deps: ApplyDeps): Promise<ApplyOutcome> => {
  const ticket = await deps.held.current(check.orgId, check.ticketId);
  if (ticket) {
    await deps.held.clear(check.orgId, check.ticketId);
    if (isHolding(ticket)) deps.held.counted(HeldOutcome.discarded, ticket.events);
    deps.logger.warn(
      { orgId: check.orgId, ticketId: check.ticketId, events: ticket.events.length },
      'held ticket events skipped: the organisation is unknown or deleted',
    );
  }
  return skipped(SkipReason.unknownOrg);
};
