import { SkipReason } from '../../../../lib/contracts/index.ts';
import type { Handoff } from '../../../../lib/domain-events.ts';
import { PipelineError } from '../../../../lib/errors.ts';
import { catchUpOrRetryLater } from '../../../../lib/kafka/table.ts';
import type { Org } from '../../../../lib/orgs/index.ts';
import { applied, skipped, type ApplyDeps, type ApplyOutcome } from './deps.ts';
import { linkedThread, lookUpTicket, saveLink } from './session-links.ts';

/**
 * A 409 from OpenCX to a handoff: its Idempotency-Key (one per thread) was used with another
 * request, i.e. OpenCX took a handoff of this thread to another assignee. The session is handed
 * off; there is nothing more to apply.
 */
const isEarlierHandoff = (error: unknown): boolean =>
  error instanceof PipelineError && error.upstream === 'opencx' && error.status === 409;

export const applyHandoff = async (event: Handoff, org: Org, deps: ApplyDeps): Promise<ApplyOutcome> => {
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
