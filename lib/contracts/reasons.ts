/**
 * Every reason the pipeline gives for not acting on an event, for acting later, or for giving it
 * up. Each value is a metric label that dashboards and alerts name, so a value never changes: a
 * new meaning gets a new entry. A word in two lists means the same thing in both (`duplicate`,
 * `malformed_event`). Pinned by test/unit/contracts.unit.spec.ts.
 */

/** Why the processor did nothing with a raw event: processor_ignored_total{reason}. */
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

/** Why outbound applied nothing for a domain event: outbound_events_skipped_total{reason}. */
export const SkipReason = {
  unknownOrg: 'unknown_org',
  /** A thread with no session; a ticket's held events whose hold ended with no link. */
  noLinkedSession: 'no_linked_session',
  handedOff: 'handed_off',
  duplicate: 'duplicate',
  /** A hold check of a ticket that holds nothing (released already, or by another check). */
  nothingHeld: 'nothing_held',
  /** A hold check of a ticket still unlinked whose hold has not ended: it holds on. */
  stillHeld: 'still_held',
  /**
   * A ticket change older than the newest change of its property applied to the session (one
   * never applied, delivered again): applying it would overwrite the newer value.
   */
  stale: 'stale',
} as const;
export type SkipReason = (typeof SkipReason)[keyof typeof SkipReason];

/**
 * Why an event's tenant (portal or organisation) must wait and its events are parked:
 * processor_parked_messages_total{reason} and outbound_parked_messages_total{reason}.
 */
export const WaitReason = {
  /** The portal's HubSpot call budget is spent for longer than the park grace. */
  hubspotBudget: 'hubspot_budget',
  hubspotRateLimited: 'hubspot_rate_limited',
  /** HubSpot kept failing (5xx, no answer) through the in-memory retries. */
  hubspotUnavailable: 'hubspot_unavailable',
  opencxRateLimited: 'opencx_rate_limited',
  opencxUnavailable: 'opencx_unavailable',
  /** The tenant is already waited for: parked behind an earlier event of its own. */
  tenantWaiting: 'tenant_waiting',
} as const;
export type WaitReason = (typeof WaitReason)[keyof typeof WaitReason];

/**
 * Why an event went to the dead-letter topic, in every service: each is a metric label
 * (*_dead_letters_total{reason}) and a filter of the operator command. Dead letters are for
 * events no retry can fix.
 */
export const DeadLetterReason = {
  /** The record cannot be decoded (not Avro, unknown schema, no value). */
  undecodable: 'undecodable',
  /** The HubSpot event inside the raw record does not have the fields its type needs. */
  malformedEvent: 'malformed_event',
  /** An effect's record is larger than its topic accepts. */
  recordTooLarge: 'record_too_large',
  /** No configured SECRETS_KEY (nor SECRETS_KEY_PREVIOUS) opens the organisation's record. */
  orgUnreadable: 'org_unreadable',
  hubspotRejected: 'hubspot_rejected',
  hubspotUnauthorized: 'hubspot_unauthorized',
  opencxRejected: 'opencx_rejected',
  opencxUnauthorized: 'opencx_unauthorized',
  /** A retriable failure that outlived its retry budget. */
  retriesExhausted: 'retries_exhausted',
  /** The handler threw something unclassified (a bug) on every attempt of its budget. */
  handlerCrashed: 'handler_crashed',
} as const;
export type DeadLetterReason = (typeof DeadLetterReason)[keyof typeof DeadLetterReason];

/** Any reason of the lists above. */
export type Reason = IgnoreReason | SkipReason | WaitReason | DeadLetterReason;

/**
 * What became of a ticket or note event that waited for its ticket's session link:
 * outbound_held_ticket_events_total{outcome}.
 */
export const HeldOutcome = {
  /** Its ticket had no session link yet: it waits in the held-ticket-events table. */
  held: 'held',
  /** Applied once the link came. */
  released: 'released',
  /** A newer change of the same property replaced it while both waited. */
  superseded: 'superseded',
  /** A note let go: the ticket held more than a record can carry. */
  dropped: 'dropped',
  /** No link within TICKET_HOLD_MS. */
  expired: 'expired',
  /** The ticket's organisation is unknown or deleted. */
  discarded: 'discarded',
  /** OpenCX refused it at release (a 4xx): written back to the domain topic to be dead-lettered. */
  refused: 'refused',
} as const;
export type HeldOutcome = (typeof HeldOutcome)[keyof typeof HeldOutcome];
