import { HANDOFF_PROPERTY, IgnoreReason, eventIdOf } from '../../../../lib/contracts/index.ts';
import { emit, ignore, type Decision } from './decision.ts';
import { isStaleChange } from './property-order.ts';
import type { ConversationPropertyChangeEvent } from './webhook-event.ts';

export type HandoffContext = {
  readonly orgId: string;
  readonly aiActorId: string;
  readonly assistMode: boolean;
  /** The thread's OpenCX session, when there is one. */
  readonly session: { readonly handedOff: boolean } | undefined;
  /** occurredAt of the newest change of this thread's assignment already handled, if any. */
  readonly lastAppliedAt: number | undefined;
};

/**
 * conversation.propertyChange: assigned away from the AI actor (unassigned counts) hands the
 * session off, unless Assist Mode is on; once per session (outbound skips it when the thread
 * has no session by the time it comes). An assignment older than one already
 * handled is stale: the thread may since have been assigned back to the AI.
 */
export const decideHandoff = (event: ConversationPropertyChangeEvent, context: HandoffContext): Decision => {
  if (event.propertyName !== HANDOFF_PROPERTY) return ignore(IgnoreReason.notAssignment);
  if (isStaleChange(event.occurredAt, context.lastAppliedAt)) return ignore(IgnoreReason.stale);
  if (context.assistMode) return ignore(IgnoreReason.assistMode);
  const assignee = event.propertyValue ?? '';
  if (assignee === context.aiActorId) return ignore(IgnoreReason.assignedToAi);
  // No session in this replica's links is not "no session": the thread's first message may be
  // on its way to OpenCX right now (emitted, not yet applied by outbound). The handoff follows
  // it on the same conversation's key, so outbound applies it after the session exists, and
  // skips it (no_linked_session) when there never was one. Dropping it here would let the AI
  // answer a customer who was handed off.
  if (context.session?.handedOff) return ignore(IgnoreReason.alreadyHandedOff);
  return emit([
    {
      type: 'handoff',
      eventId: eventIdOf.handoff(context.orgId, event.objectId),
      orgId: context.orgId,
      portalId: event.portalId,
      threadId: event.objectId,
      occurredAt: event.occurredAt,
      assigneeActorId: assignee === '' ? null : assignee,
    },
  ]);
};
