/** Every reason the processor has for doing nothing with an event. Each is logged and counted. */
export const IgnoreReason = {
  unsupportedType: 'unsupported_subscription_type',
  unknownPortal: 'unknown_portal',
  orgDeleted: 'org_deleted',
  duplicate: 'duplicate',
  automatedSender: 'automated_sender',
  ownEcho: 'own_ai_echo',
  notAConversationMessage: 'not_a_conversation_message',
  emptyMessage: 'empty_message',
  notAssignment: 'property_not_assignment',
  assistMode: 'assist_mode',
  assignedToAi: 'assigned_to_ai',
  alreadyHandedOff: 'already_handed_off',
  ticketingDisabled: 'ticketing_disabled',
  emptyValue: 'empty_property_value',
  notANote: 'object_not_a_note',
  noteOnNoTicket: 'note_on_no_ticket',
  malformedEvent: 'malformed_event',
  /** An older change of a property than one already handled (HubSpot does not order deliveries). */
  stale: 'stale',
  /** A private-app delivery naming another portal than its organisation's. */
  portalMismatch: 'portal_mismatch',
} as const;
export type IgnoreReason = (typeof IgnoreReason)[keyof typeof IgnoreReason];
