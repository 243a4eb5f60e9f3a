import { IgnoreReason, eventIdOf } from '../../../../lib/contracts/index.ts';
import { emit, ignore, type Decision } from './decision.ts';
import { isStaleChange } from './property-order.ts';
import type { TicketPropertyChangeEvent } from './webhook-event.ts';

export type TicketChangeContext = {
  readonly orgId: string;
  readonly ticketingEnabled: boolean;
  /** occurredAt of the newest change of this ticket property already handled, if any. */
  readonly lastAppliedAt: number | undefined;
};

/**
 * ticket.propertyChange: synced onto the session when ticketing is on and the value is not
 * empty, unless a newer change of the same property was already handled (it would overwrite
 * the newer value). Whether the ticket is linked to a session is outbound's to know: a ticket
 * whose link is not known yet holds the change until it is (contract.md).
 */
export const decideTicketFieldChange = (
  event: TicketPropertyChangeEvent,
  context: TicketChangeContext,
): Decision => {
  if (isStaleChange(event.occurredAt, context.lastAppliedAt)) return ignore(IgnoreReason.stale);
  if (!context.ticketingEnabled) return ignore(IgnoreReason.ticketingDisabled);
  const value = event.propertyValue;
  if (value === null || value === undefined || value === '') return ignore(IgnoreReason.emptyValue);
  return emit([
    {
      type: 'ticket-field-changed',
      eventId: eventIdOf.ticketFieldChanged(
        context.orgId,
        event.objectId,
        event.propertyName,
        event.occurredAt,
      ),
      orgId: context.orgId,
      portalId: event.portalId,
      ticketId: event.objectId,
      occurredAt: event.occurredAt,
      property: event.propertyName,
      value,
    },
  ]);
};
