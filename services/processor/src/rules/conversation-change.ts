import { deriveEventId } from '../../../../lib/ids.ts';
import { emit, ignore, type Decision } from './decision.ts';
import { IgnoreReason } from './ignore-reasons.ts';
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
 * session off, unless Assist Mode is on; once per session. An assignment older than one already
 * handled is stale: the thread may since have been assigned back to the AI.
 */
export const decideHandoff = (event: ConversationPropertyChangeEvent, context: HandoffContext): Decision => {
  if (event.propertyName !== 'assignedTo') return ignore(IgnoreReason.notAssignment);
  if (isStaleChange(event.occurredAt, context.lastAppliedAt)) return ignore(IgnoreReason.stale);
  if (context.assistMode) return ignore(IgnoreReason.assistMode);
  const assignee = event.propertyValue ?? '';
  if (assignee === context.aiActorId) return ignore(IgnoreReason.assignedToAi);
  if (!context.session) return ignore(IgnoreReason.noSession);
  if (context.session.handedOff) return ignore(IgnoreReason.alreadyHandedOff);
  return emit([
    {
      type: 'handoff',
      eventId: deriveEventId('handoff', context.orgId, event.objectId),
      orgId: context.orgId,
      portalId: event.portalId,
      threadId: event.objectId,
      occurredAt: event.occurredAt,
      assigneeActorId: assignee === '' ? null : assignee,
    },
  ]);
};
