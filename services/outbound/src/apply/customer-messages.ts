import { SkipReason, eventIdOf } from '../../../../lib/contracts/index.ts';
import type { CustomerMessage, RepReply } from '../../../../lib/domain-events.ts';
import { deriveEventId } from '../../../../lib/ids.ts';
import type { Org } from '../../../../lib/orgs/index.ts';
import type { SessionLink } from '../../../../lib/session-links.ts';
import { iso } from './dates.ts';
import { applied, skipped, type ApplyDeps, type ApplyOutcome } from './deps.ts';
import { linkedThread, linkTicketAfterSend, linkTicketIfNew, saveLink } from './session-links.ts';

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

export const applyCustomerMessage = async (
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

export const applyRepReply = async (event: RepReply, org: Org, deps: ApplyDeps): Promise<ApplyOutcome> => {
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
