import { SkipReason, eventIdOf } from '../../../lib/contracts/index.ts';
import { deriveEventId } from '../../../lib/ids.ts';
import type {
  AiReply,
  CustomerMessage,
  DomainEvent,
  Handoff,
  RepReply,
  TicketHoldCheck,
} from '../../../lib/domain-events.ts';
import { ErrorCode, PipelineError, describeError } from '../../../lib/errors.ts';
import { catchUpOrRetryLater } from '../../../lib/kafka/table.ts';
import {
  afterApplied,
  eventsToRelease,
  holdEvent,
  isHolding,
  isStaleChange,
  type HeldEvent,
  type HeldTicket,
  type HoldableEvent,
} from '../../../lib/held-ticket-events.ts';
import type { HubSpotApi } from '../../../lib/hubspot/index.ts';
import type { Logger } from '../../../lib/log.ts';
import type { Org } from '../../../lib/orgs/index.ts';
import { threadLinkKey, ticketLinkKey, type SessionLink } from '../../../lib/session-links.ts';
import type { OpenCxApi } from './opencx/client.ts';

export type ApplyOutcome =
  | { readonly kind: 'applied' }
  /** A ticket or note event whose ticket has no session link yet: held (held-ticket-events.ts). */
  | { readonly kind: 'held' }
  | { readonly kind: 'skipped'; readonly reason: SkipReason }
  /** The event itself is wrong (no retry fixes it): dead-lettered as malformed_event. */
  | { readonly kind: 'malformed'; readonly detail: string };
const applied: ApplyOutcome = { kind: 'applied' };
const held: ApplyOutcome = { kind: 'held' };
const skipped = (reason: SkipReason): ApplyOutcome => ({ kind: 'skipped', reason });
export const malformed = (detail: string): ApplyOutcome => ({ kind: 'malformed', detail });

export type ApplyDeps = {
  readonly orgs: { byId: (orgId: string) => Org | undefined };
  readonly links: {
    forThread: (orgId: string, threadId: string) => SessionLink | undefined;
    forTicket: (orgId: string, ticketId: string) => SessionLink | undefined;
    write: (links: readonly { key: string; link: SessionLink }[]) => Promise<void>;
    /** Waits until the links hold everything on their topic now; true when caught up. */
    catchUp?: () => Promise<boolean>;
  };
  readonly openCxFor: (org: Org) => OpenCxApi;
  readonly hubspotFor: (org: Org) => HubSpotApi;
  /**
   * Ticket look-ups made off the customer's path, when the portal's budget has room
   * (owed-ticket-look-ups.ts). `force` owes again a thread settled lately.
   */
  readonly owedTicketLookUps: {
    readonly owe: (orgId: string, threadId: string, options?: { force?: boolean }) => Promise<void>;
    /** The thread was looked up: owing it again is a no-op for a while. */
    readonly settle: (entry: { orgId: string; threadId: string }) => Promise<void>;
  };
  /** Ticket and note events waiting for their ticket's link (lib/held-ticket-events.ts). */
  readonly held: HeldTicketDeps;
  readonly emitAiReply: (reply: AiReply) => Promise<void>;
  /** Counts the sessions this replica created at OpenCX (outbound_sessions_created_total). */
  readonly sessionsCreated: { readonly inc: () => void };
  /** Retries retriable failures of one call with backoff; throws once the budget is spent. */
  readonly retry: <T>(target: 'opencx' | 'hubspot', work: () => Promise<T>) => Promise<T>;
  readonly logger: Logger;
  readonly now: () => number;
};

export const HeldOutcome = {
  held: 'held',
  released: 'released',
  superseded: 'superseded',
  dropped: 'dropped',
  expired: 'expired',
  /** The ticket's organisation is unknown or deleted. */
  discarded: 'discarded',
  /** OpenCX refused it at release (a 4xx): written back to the domain topic to be dead-lettered. */
  refused: 'refused',
} as const;
export type HeldOutcome = (typeof HeldOutcome)[keyof typeof HeldOutcome];

export type HeldTicketDeps = {
  /** The ticket's held record, from a view caught up since this replica got its partitions. */
  readonly current: (orgId: string, ticketId: string) => Promise<HeldTicket | undefined>;
  /** Durable before it returns. */
  readonly write: (ticket: HeldTicket) => Promise<void>;
  readonly clear: (orgId: string, ticketId: string) => Promise<void>;
  /** Writes a held event back to the domain topic on its own (durable before it returns). */
  readonly requeue: (event: HoldableEvent) => Promise<void>;
  /** How long a ticket's events are held for a link that does not come (TICKET_HOLD_MS). */
  readonly holdMs: number;
  /** How long a ticket's applied clocks are kept after its last change (DEDUP_TTL_MS). */
  readonly clockTtlMs: number;
  /** An event of the organisation now waits for a ticket link: its look-ups are owed (best effort). */
  readonly linkAwaited: (orgId: string) => void;
  readonly counted: (outcome: HeldOutcome, events: readonly HeldEvent[] | readonly HoldableEvent[]) => void;
};

/**
 * OpenCX takes ISO-8601 dates of years 1970 to 9999. Outside them there is no date to send (and
 * `new Date(9e15).toISOString()` throws a RangeError): such an event is dead-lettered as
 * malformed rather than clamped, since a clamped date would put a made-up time into the session
 * and hide the upstream bug from the operator.
 */
const LATEST_ISO_MS = Date.UTC(9999, 11, 31, 23, 59, 59, 999);
const isIsoDate = (ms: number): boolean => Number.isInteger(ms) && ms >= 0 && ms <= LATEST_ISO_MS;
const iso = (ms: number): string => new Date(ms).toISOString();

/** The timestamp this event sends to OpenCX that is not a date, if any. */
const unsendableTimestamp = (event: DomainEvent | TicketHoldCheck): string | undefined => {
  const sent: readonly (readonly [string, number])[] =
    event.type === 'rep-reply'
      ? [['occurredAt', event.occurredAt]]
      : event.type === 'note-mirrored'
        ? [['createdAt', event.createdAt]]
        : [];
  const bad = sent.find(([, ms]) => !isIsoDate(ms));
  return bad && `${bad[0]} ${bad[1]} is not a date OpenCX can take (epoch ms of years 1970 to 9999)`;
};

/** Writes a link under its thread key and, when known, its ticket key. */
const saveLink = (deps: ApplyDeps, link: SessionLink): Promise<void> =>
  deps.links.write([
    ...(link.threadId ? [{ key: threadLinkKey(link.orgId, link.threadId), link }] : []),
    ...(link.ticketId ? [{ key: ticketLinkKey(link.orgId, link.ticketId), link }] : []),
  ]);

/**
 * The link, or on a miss the link once this replica's view caught up with the links topic: a
 * link another replica wrote moments ago (or before a broker restart slowed this replica's
 * table) is not "no session", and skipping on it would lose the event.
 */
const linkedThread = async (deps: ApplyDeps, orgId: string, threadId: string) =>
  deps.links.forThread(orgId, threadId) ??
  (deps.links.catchUp && (await catchUpOrRetryLater(deps.links.catchUp, 'session links')),
  deps.links.forThread(orgId, threadId));
const linkedTicket = async (deps: ApplyDeps, orgId: string, ticketId: string) =>
  deps.links.forTicket(orgId, ticketId) ??
  (deps.links.catchUp && (await catchUpOrRetryLater(deps.links.catchUp, 'session links')),
  deps.links.forTicket(orgId, ticketId));

type TicketLookUp =
  | { readonly kind: 'found'; readonly ticketId: string | null }
  /** No slot for bookkeeping now (or HubSpot's 429): owed, made later. */
  | { readonly kind: 'deferred' }
  | { readonly kind: 'failed' };

/**
 * The ticket HubSpot associates with a thread, if any. It is a bookkeeping call: when the
 * portal's budget has no room for it, it gives up at once (and the caller owes it). One attempt:
 * this look-up is optional, and later events look again; retrying it (429s ask for up to 10 s)
 * would hold the whole conversation.
 */
const tryLookUpTicket = async (deps: ApplyDeps, org: Org, threadId: string): Promise<TicketLookUp> => {
  try {
    const thread = await deps.hubspotFor(org).getThread(threadId);
    return { kind: 'found', ticketId: thread.threadAssociations?.associatedTicketId ?? null };
  } catch (error) {
    if (
      error instanceof PipelineError &&
      (error.code === ErrorCode.upstreamRateLimited || error.code === ErrorCode.tenantWaiting)
    )
      return { kind: 'deferred' };
    deps.logger.warn(
      { err: error, orgId: org.orgId, threadId },
      'ticket association not looked up; ticket events wait for the next message',
    );
    return { kind: 'failed' };
  }
};

/** As tryLookUpTicket, null unless found; a deferred look-up is owed (made off this queue). */
const lookUpTicket = async (deps: ApplyDeps, org: Org, threadId: string): Promise<string | null> => {
  const found = await tryLookUpTicket(deps, org, threadId);
  if (found.kind === 'deferred') await oweTicketLookUp(deps, org.orgId, threadId, { force: true });
  return found.kind === 'found' ? found.ticketId : null;
};

/** Owing is best effort: Redis down costs the early link, never the customer's message. */
const oweTicketLookUp = async (
  deps: ApplyDeps,
  orgId: string,
  threadId: string,
  options: { force?: boolean } = {},
): Promise<void> => {
  try {
    await deps.owedTicketLookUps.owe(orgId, threadId, options);
  } catch (error) {
    deps.logger.warn(
      { err: describeError(error), orgId, threadId },
      'ticket look-up not owed; the next customer message, handoff or rep reply looks again',
    );
  }
};

/**
 * A rep may create a ticket on a thread long after its session: while a link has no ticket, a
 * rep's activity looks again, at most once a minute per thread (HubSpot's rate limit is shared).
 */
const lastTicketLookUp = new Map<string, number>();
const TICKET_LOOK_UP_INTERVAL_MS = 60_000;
const linkTicketIfNew = async (deps: ApplyDeps, org: Org, link: SessionLink): Promise<void> => {
  if (link.ticketId !== null || link.threadId === null) return;
  const key = `${link.orgId}:${link.threadId}`;
  if (deps.now() - (lastTicketLookUp.get(key) ?? 0) < TICKET_LOOK_UP_INTERVAL_MS) return;
  lastTicketLookUp.set(key, deps.now());
  const ticketId = await lookUpTicket(deps, org, link.threadId);
  if (ticketId !== null) await saveLink(deps, { ...link, ticketId, updatedAt: deps.now() });
};

/**
 * The first customer message of a thread creates its session. The create call's idempotency key
 * is derived from the thread, so however often this runs (replicas, restarts, a lost link) a
 * thread gets one session.
 *
 * The link is written without a ticket: the look-up (a HubSpot call) is not on the customer's
 * path. It follows the send (linkTicketAfterSend), when the portal has room, or is owed and
 * made later (owed-ticket-look-ups.ts). Ticket events that arrive before it is made are skipped
 * and counted (no_linked_session), as for a ticket created later.
 */
const ensureSession = async (
  event: CustomerMessage,
  org: Org,
  deps: ApplyDeps,
): Promise<{ link: SessionLink; created: boolean }> => {
  const existing = deps.links.forThread(event.orgId, event.threadId);
  if (existing) return { link: existing, created: false };
  const { id } = await deps.retry('opencx', () =>
    deps.openCxFor(org).createSession(
      {
        channel: { type: event.channelType },
        custom_data: { hubspot_thread_id: event.threadId, hubspot_portal_id: String(event.portalId) },
      },
      `session-${deriveEventId('session', event.orgId, event.threadId)}`,
    ),
  );
  const link: SessionLink = {
    orgId: event.orgId,
    sessionId: id,
    threadId: event.threadId,
    ticketId: null,
    handedOff: false,
    updatedAt: deps.now(),
  };
  await saveLink(deps, link);
  deps.sessionsCreated.inc();
  deps.logger.info(
    { orgId: event.orgId, threadId: event.threadId, sessionId: id },
    'session created for thread',
  );
  return { link, created: true };
};

/**
 * After the customer's message is at OpenCX. A new session's thread is looked up now if the
 * portal has room for bookkeeping (so on a quiet portal the link, ticket included, is written
 * before the AI's answer goes out, as before); if not, the look-up is owed. A thread whose link
 * has no ticket and that did not get its session from this message owes it: if outbound died
 * after the send and before this, the message comes again (its send a no-op by
 * Idempotency-Key) and owes it then. Such a crash leaves a link without a ticket (what the old
 * code wrote when its look-up failed) and the message at OpenCX; nothing the old code kept is
 * lost. Owing a thread settled in the last hour is a no-op, so a ticketless conversation does
 * not cost a look-up per message.
 */
const linkTicketAfterSend = async (
  deps: ApplyDeps,
  org: Org,
  link: SessionLink,
  created: boolean,
): Promise<void> => {
  if (link.ticketId !== null || link.threadId === null) return;
  const threadId = link.threadId;
  if (!created) return oweTicketLookUp(deps, link.orgId, threadId);
  const found = await tryLookUpTicket(deps, org, threadId);
  if (found.kind !== 'found') return oweTicketLookUp(deps, link.orgId, threadId);
  if (found.ticketId !== null)
    await saveLink(deps, { ...link, ticketId: found.ticketId, updatedAt: deps.now() });
  await deps.owedTicketLookUps.settle({ orgId: link.orgId, threadId }).catch((error: unknown) => {
    deps.logger.warn(
      { err: describeError(error), orgId: link.orgId, threadId },
      'ticket look-up not settled',
    );
  });
};

const applyCustomerMessage = async (
  event: CustomerMessage,
  org: Org,
  deps: ApplyDeps,
): Promise<ApplyOutcome> => {
  const { link, created } = await ensureSession(event, org, deps);
  const { aiText } = await deps.retry('opencx', () =>
    deps.openCxFor(org).sendContactMessage(link.sessionId, event.text, event.eventId),
  );
  await linkTicketAfterSend(deps, org, link, created);
  if (aiText !== null) {
    await deps.emitAiReply({
      type: 'ai-reply',
      eventId: eventIdOf.aiReply(event.eventId),
      orgId: event.orgId,
      portalId: event.portalId,
      threadId: event.threadId,
      occurredAt: event.occurredAt,
      sessionId: link.sessionId,
      inReplyToEventId: event.eventId,
      text: aiText,
      channelId: event.channelId,
      channelAccountId: event.channelAccountId,
      recipientActorId: event.senderActorId,
      recipientDeliveryType: event.senderDeliveryType,
      recipientDeliveryValue: event.senderDeliveryValue,
    });
  }
  return applied;
};

const applyRepReply = async (event: RepReply, org: Org, deps: ApplyDeps): Promise<ApplyOutcome> => {
  const link = await linkedThread(deps, event.orgId, event.threadId);
  if (!link) return skipped(SkipReason.noLinkedSession);
  await linkTicketIfNew(deps, org, link);
  await deps.retry('opencx', () =>
    deps.openCxFor(org).addAgentMessage(
      link.sessionId,
      {
        text: event.text,
        actor_id: event.actorId,
        internal: event.internal,
        created_at: iso(event.occurredAt),
      },
      event.eventId,
    ),
  );
  return applied;
};

/**
 * A 409 from OpenCX to a handoff: its Idempotency-Key (one per thread) was used with another
 * request, i.e. OpenCX took a handoff of this thread to another assignee. The session is handed
 * off; there is nothing more to apply.
 */
const isEarlierHandoff = (error: unknown): boolean =>
  error instanceof PipelineError && error.upstream === 'opencx' && error.status === 409;

const applyHandoff = async (event: Handoff, org: Org, deps: ApplyDeps): Promise<ApplyOutcome> => {
  let link = await linkedThread(deps, event.orgId, event.threadId);
  if (!link) return skipped(SkipReason.noLinkedSession);
  // Whether the session is handed off decides the call, so it is read from a view that holds
  // every link written until now: another replica may have applied the thread's first handoff
  // moments ago (or before a broker restart slowed this replica's table).
  if (!link.handedOff && deps.links.catchUp) {
    await catchUpOrRetryLater(deps.links.catchUp, 'session links');
    link = deps.links.forThread(event.orgId, event.threadId) ?? link;
  }
  // Handed off once is handed off (the rules' "session not yet handed off"): a second handoff of
  // the thread (a reassignment the processor emitted before it saw the first applied) carries
  // the same event id (one per thread) with another assignee, which OpenCX refuses with a 409
  // (the Idempotency-Key used with a different request). The link is saved only after OpenCX
  // took the first one, so a crash in between still repeats the first, identical request; a
  // second one that meets such a crash gets the 409, which says the same: handed off.
  if (link.handedOff) {
    if (link.ticketId === null) {
      const ticketId = await lookUpTicket(deps, org, event.threadId);
      if (ticketId !== null) await saveLink(deps, { ...link, ticketId, updatedAt: deps.now() });
    }
    return skipped(SkipReason.handedOff);
  }
  let earlier = false;
  try {
    await deps.retry('opencx', () =>
      deps
        .openCxFor(org)
        .handOff(
          link.sessionId,
          { reason: 'assigned_away', assignee_actor_id: event.assigneeActorId },
          event.eventId,
        ),
    );
  } catch (error) {
    if (!isEarlierHandoff(error)) throw error;
    deps.logger.info(
      { orgId: event.orgId, threadId: event.threadId, sessionId: link.sessionId },
      'session already handed off (OpenCX took an earlier handoff of the thread)',
    );
    earlier = true;
  }
  // A handoff is when a ticket usually appears on the thread: look it up if the link has none.
  const ticketId = link.ticketId ?? (await lookUpTicket(deps, org, event.threadId));
  await saveLink(deps, { ...link, handedOff: true, ticketId, updatedAt: deps.now() });
  return earlier ? skipped(SkipReason.handedOff) : applied;
};

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
const applyTicketEvent = async (event: HoldableEvent, org: Org, deps: ApplyDeps): Promise<ApplyOutcome> => {
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
const applyHoldCheck = async (check: TicketHoldCheck, org: Org, deps: ApplyDeps): Promise<ApplyOutcome> => {
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
const discardHeld = async (check: TicketHoldCheck, deps: ApplyDeps): Promise<ApplyOutcome> => {
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

/** Applies one domain event to OpenCX (contract.md, "OpenCX calls"): one function per row. */
export const applyDomainEvent = (
  event: DomainEvent | TicketHoldCheck,
  deps: ApplyDeps,
): Promise<ApplyOutcome> => {
  const org = deps.orgs.byId(event.orgId);
  if (!org)
    return event.type === 'ticket-hold-check'
      ? discardHeld(event, deps)
      : Promise.resolve(skipped(SkipReason.unknownOrg));
  const badTimestamp = unsendableTimestamp(event);
  if (badTimestamp !== undefined) return Promise.resolve(malformed(badTimestamp));
  switch (event.type) {
    case 'customer-message':
      return applyCustomerMessage(event, org, deps);
    case 'rep-reply':
      return applyRepReply(event, org, deps);
    case 'handoff':
      return applyHandoff(event, org, deps);
    case 'ticket-field-changed':
    case 'note-mirrored':
      return applyTicketEvent(event, org, deps);
    case 'ticket-hold-check':
      return applyHoldCheck(event, org, deps);
    default: {
      const unreachable: never = event;
      throw new Error(`unknown domain event ${JSON.stringify(unreachable)}`);
    }
  }
};
