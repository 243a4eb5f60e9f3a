/**
 * One domain event onto OpenCX, and the public surface of apply/, where each event type's effect
 * lives: customer messages and rep replies (sessions), handoffs, ticket changes and notes (held
 * until their ticket is linked), with the session links and ticket look-ups they share.
 */
import { SkipReason } from '../../../lib/contracts/index.ts';
import type { DomainEvent, TicketHoldCheck } from '../../../lib/domain-events.ts';
import { applyCustomerMessage, applyRepReply } from './apply/customer-messages.ts';
import { unsendableTimestamp } from './apply/dates.ts';
import { malformed, skipped, type ApplyDeps, type ApplyOutcome } from './apply/deps.ts';
import { applyHandoff } from './apply/handoff.ts';
import { applyHoldCheck, applyTicketEvent, discardHeld } from './apply/ticket-events.ts';

export { malformed, type ApplyDeps, type ApplyOutcome, type HeldTicketDeps } from './apply/deps.ts';

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
