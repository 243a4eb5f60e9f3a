/**
 * The pipeline's events, one readonly discriminated union kept in step with the Avro schemas in
 * schemas/ (test/unit/schemas.unit.spec.ts checks that every field here is in the schema and back).
 * `type` is not stored in the record: it is the Avro record's name.
 */
type Common = {
  readonly eventId: string;
  readonly orgId: string;
  readonly portalId: number;
  readonly occurredAt: number;
};
type OnThread = Common & { readonly threadId: string };
type OnTicket = Common & { readonly ticketId: string };

export type CustomerMessage = OnThread & {
  readonly type: 'customer-message';
  readonly messageId: string;
  readonly text: string;
  readonly subject: string | null;
  readonly channelId: string;
  readonly channelAccountId: string;
  readonly channelType: string;
  readonly senderActorId: string;
  readonly senderName: string | null;
  readonly senderDeliveryType: string | null;
  readonly senderDeliveryValue: string | null;
};

export type RepReply = OnThread & {
  readonly type: 'rep-reply';
  readonly messageId: string;
  readonly text: string;
  readonly actorId: string;
  readonly internal: boolean;
  readonly channelId: string | null;
};

export type Handoff = OnThread & {
  readonly type: 'handoff';
  readonly assigneeActorId: string | null;
};

export type TicketFieldChanged = OnTicket & {
  readonly type: 'ticket-field-changed';
  readonly property: string;
  readonly value: string;
};

export type NoteMirrored = OnTicket & {
  readonly type: 'note-mirrored';
  readonly noteId: string;
  readonly text: string;
  readonly authorOwnerId: string | null;
  readonly createdAt: number;
};

export type AiReply = OnThread & {
  readonly type: 'ai-reply';
  readonly sessionId: string;
  readonly inReplyToEventId: string;
  readonly text: string;
  readonly channelId: string;
  readonly channelAccountId: string;
  readonly recipientActorId: string | null;
  readonly recipientDeliveryType: string | null;
  readonly recipientDeliveryValue: string | null;
};

/**
 * Outbound's note to itself, written to the domain topic under the ticket's key so that it runs
 * in the ticket's own queue: look at the ticket's held events again (lib/held-ticket-events.ts).
 * It changes nothing by itself, so it is not a DomainEvent the rules emit.
 */
export type TicketHoldCheck = OnTicket & { readonly type: 'ticket-hold-check' };

export type DomainEvent = CustomerMessage | RepReply | Handoff | TicketFieldChanged | NoteMirrored;
export type PipelineEvent = DomainEvent | AiReply | TicketHoldCheck;
export type PipelineEventType = PipelineEvent['type'];

/** Avro record name (in schemas/<type>.avsc) of each event type. */
export const avroRecordName = {
  'customer-message': 'io.opencx.pipeline.CustomerMessage',
  'rep-reply': 'io.opencx.pipeline.RepReply',
  handoff: 'io.opencx.pipeline.Handoff',
  'ticket-field-changed': 'io.opencx.pipeline.TicketFieldChanged',
  'note-mirrored': 'io.opencx.pipeline.NoteMirrored',
  'ai-reply': 'io.opencx.pipeline.AiReply',
  'ticket-hold-check': 'io.opencx.pipeline.TicketHoldCheck',
} as const satisfies Record<PipelineEventType, string>;

/** The organisation (outbound's tenant) of a domain topic's key, `<orgId>:thread:…` or `<orgId>:ticket:…`. */
export const orgOfOrderingKey = (key: string): string | undefined =>
  /^(.+):(?:thread|ticket):[^:]*$/.exec(key)?.[1];

/** The Kafka key that keeps one conversation in order (a ticket's events stay with the ticket). */
export const orderingKeyOf = (event: PipelineEvent): string => {
  switch (event.type) {
    case 'customer-message':
    case 'rep-reply':
    case 'handoff':
    case 'ai-reply':
      return `${event.orgId}:thread:${event.threadId}`;
    case 'ticket-field-changed':
    case 'note-mirrored':
    case 'ticket-hold-check':
      return `${event.orgId}:ticket:${event.ticketId}`;
    default: {
      const unreachable: never = event;
      throw new Error(`unknown event ${JSON.stringify(unreachable)}`);
    }
  }
};
