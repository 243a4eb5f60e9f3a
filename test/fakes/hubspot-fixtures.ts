// Builders of HubSpot objects shaped like HubSpot's real payloads (webhook events, Conversations v3
// messages and threads, CRM notes), so tests read as "given this HubSpot event" and stay close to
// what production receives. Ids are unique per call unless given; every field can be overridden.
import { randomBytes } from 'node:crypto';
import type {
  HubSpotMessage,
  HubSpotMessageContent,
  HubSpotNote,
  HubSpotParticipant,
  HubSpotThread,
} from './hubspot.ts';

export const FIXTURE_PORTAL_ID = 23428445;
export const FIXTURE_APP_ID = 2438486;
export const LIVE_CHAT_CHANNEL_ID = '1000';
export const EMAIL_CHANNEL_ID = '1002';
export const NOTE_OBJECT_TYPE_ID = '0-46';

let sequence = 0;

/** Unique within a test run, numeric like HubSpot's ids. */
function nextNumber(base: number): number {
  sequence += 1;
  return base + sequence;
}

/** Conversations message ids are opaque hex strings. */
export function newMessageId(): string {
  return randomBytes(16).toString('hex');
}

export function newThreadId(): string {
  return String(nextNumber(6_065_362_000));
}

interface WebhookEventBase {
  readonly eventId: number;
  readonly subscriptionId: number;
  readonly portalId: number;
  readonly appId: number;
  /** Epoch milliseconds. */
  readonly occurredAt: number;
  readonly attemptNumber: number;
  readonly objectId: number;
  readonly changeSource?: string;
  readonly sourceId?: string;
}

export interface NewMessageWebhookEvent extends WebhookEventBase {
  readonly subscriptionType: 'conversation.newMessage';
  readonly messageId: string;
  readonly messageType: 'MESSAGE' | 'COMMENT' | 'WELCOME_MESSAGE';
  readonly changeFlag: 'NEW_MESSAGE';
}

export interface ConversationPropertyChangeEvent extends WebhookEventBase {
  readonly subscriptionType: 'conversation.propertyChange';
  readonly propertyName: 'assignedTo' | 'status' | 'isArchived';
  readonly propertyValue: string;
}

export interface TicketPropertyChangeEvent extends WebhookEventBase {
  readonly subscriptionType: 'ticket.propertyChange';
  readonly propertyName: string;
  readonly propertyValue: string | null;
}

export interface ObjectCreationEvent extends WebhookEventBase {
  readonly subscriptionType: 'object.creation';
  readonly objectTypeId: string;
  readonly changeFlag: 'CREATED';
}

function eventBase(): WebhookEventBase {
  return {
    eventId: nextNumber(3_269_195_000),
    subscriptionId: 2_371_671,
    portalId: FIXTURE_PORTAL_ID,
    appId: FIXTURE_APP_ID,
    occurredAt: Date.now(),
    attemptNumber: 0,
    objectId: Number(newThreadId()),
  };
}

/** `conversation.newMessage`, after HubSpot's documented example: no text, no sender; re-fetch it. */
export function webhookEvent(overrides: Partial<NewMessageWebhookEvent> = {}): NewMessageWebhookEvent {
  return {
    ...eventBase(),
    subscriptionType: 'conversation.newMessage',
    messageId: newMessageId(),
    messageType: 'MESSAGE',
    changeFlag: 'NEW_MESSAGE',
    ...overrides,
  };
}

/** The webhook event HubSpot sends for `message`, on its thread. */
export function webhookEventFor(
  message: HubSpotMessage,
  overrides: Partial<NewMessageWebhookEvent> = {},
): NewMessageWebhookEvent {
  const messageType =
    message.type === 'COMMENT' || message.type === 'WELCOME_MESSAGE' ? message.type : 'MESSAGE';
  return webhookEvent({
    objectId: Number(message.conversationsThreadId),
    messageId: message.id,
    messageType,
    occurredAt: Date.parse(message.createdAt),
    ...overrides,
  });
}

/** A thread reassigned to another agent (the handoff trigger); `propertyValue: ''` is "unassigned". */
export function propertyChangeEvent(
  overrides: Partial<ConversationPropertyChangeEvent> = {},
): ConversationPropertyChangeEvent {
  return {
    ...eventBase(),
    subscriptionType: 'conversation.propertyChange',
    propertyName: 'assignedTo',
    propertyValue: 'A-2620022',
    changeSource: 'USER',
    ...overrides,
  };
}

export function ticketPropertyChangeEvent(
  overrides: Partial<TicketPropertyChangeEvent> = {},
): TicketPropertyChangeEvent {
  return {
    ...eventBase(),
    objectId: nextNumber(1_500_000_000),
    subscriptionType: 'ticket.propertyChange',
    propertyName: 'hs_pipeline_stage',
    propertyValue: '2',
    changeSource: 'CRM_UI',
    sourceId: 'userId:52314189',
    ...overrides,
  };
}

/** Generic `object.creation` for a note (objectTypeId 0-46). */
export function noteCreationEvent(overrides: Partial<ObjectCreationEvent> = {}): ObjectCreationEvent {
  return {
    ...eventBase(),
    objectId: nextNumber(60_000_000_000),
    subscriptionType: 'object.creation',
    objectTypeId: NOTE_OBJECT_TYPE_ID,
    changeFlag: 'CREATED',
    changeSource: 'CRM_UI',
    sourceId: 'userId:52314189',
    ...overrides,
  };
}

export type MessageKind =
  'customer-chat' | 'customer-email' | 'agent-reply' | 'comment' | 'integration' | 'welcome';

export interface MessageSpec extends Partial<HubSpotMessage> {
  /** Which realistic message to start from; customer-chat when absent. */
  readonly kind?: MessageKind;
  readonly threadId?: string;
}

const visitor: HubSpotParticipant = {
  actorId: 'V-48710712',
  name: 'Jane Visitor',
  deliveryIdentifier: { type: 'CHANNEL_SPECIFIC_OPAQUE_ID', value: 'a3f1c2d4-visitor-session' },
};
const emailCustomer: HubSpotParticipant = {
  actorId: 'E-jane.customer@example.com',
  name: 'Jane Customer',
  deliveryIdentifier: { type: 'HS_EMAIL_ADDRESS', value: 'jane.customer@example.com' },
};
const agent: HubSpotParticipant = { actorId: 'A-2620022', name: 'Sam Agent' };
const supportMailbox: HubSpotParticipant = {
  name: 'Support',
  deliveryIdentifier: { type: 'HS_EMAIL_ADDRESS', value: 'support@example.com' },
};

/**
 * A re-fetched Conversations message (GET …/threads/{threadId}/messages/{messageId}):
 * a visitor's live chat message (V-, INCOMING, channel 1000), a customer's email (E-, 1002),
 * an agent's public reply (A-, OUTGOING), an internal COMMENT, a message posted by an
 * integration (client INTEGRATION, I-) or the chat widget's WELCOME_MESSAGE.
 */
export function message(spec: MessageSpec = {}): HubSpotMessage {
  const { kind = 'customer-chat', threadId = newThreadId(), ...overrides } = spec;
  const common = {
    id: newMessageId(),
    conversationsThreadId: threadId,
    createdAt: new Date().toISOString(),
    attachments: [],
    archived: false,
  };
  return { ...messageOfKind(kind, common), ...overrides };
}

type CommonMessageFields = Pick<
  HubSpotMessage,
  'id' | 'conversationsThreadId' | 'createdAt' | 'attachments' | 'archived'
>;

function messageOfKind(kind: MessageKind, common: CommonMessageFields): HubSpotMessage {
  switch (kind) {
    case 'customer-chat':
      return chatMessage(common, 'INCOMING', visitor, [agent], 'Hi, my order has not arrived yet.');
    case 'agent-reply':
      return chatMessage(common, 'OUTGOING', agent, [visitor], 'Thanks, I am looking into it now.');
    case 'customer-email':
      return {
        ...common,
        type: 'MESSAGE',
        text: 'Hello,\n\nI was charged twice for invoice 1043.\n\nJane',
        richText: '<div>Hello,<br><br>I was charged twice for invoice 1043.<br><br>Jane</div>',
        subject: 'Double charge',
        direction: 'INCOMING',
        channelId: EMAIL_CHANNEL_ID,
        channelAccountId: '240183461',
        createdBy: emailCustomer.actorId ?? '',
        client: { clientType: 'HUBSPOT' },
        senders: [emailCustomer],
        recipients: [supportMailbox],
        truncationStatus: 'NOT_TRUNCATED',
      };
    case 'comment':
      return {
        ...common,
        type: 'COMMENT',
        text: '@Sam this customer is a VIP, please prioritise.',
        richText: '<p>@Sam this customer is a VIP, please prioritise.</p>',
        createdBy: agent.actorId ?? '',
        client: { clientType: 'HUBSPOT' },
        senders: [agent],
        recipients: [],
      };
    case 'integration':
      return {
        ...chatMessage(
          common,
          'OUTGOING',
          { actorId: `I-${FIXTURE_APP_ID}`, name: 'Order bot' },
          [visitor],
          'Your order #1043 shipped.',
        ),
        client: { clientType: 'INTEGRATION', integrationAppId: FIXTURE_APP_ID },
      };
    case 'welcome':
      return {
        ...common,
        type: 'WELCOME_MESSAGE',
        text: 'Hi! How can we help you today?',
        richText: '<p>Hi! How can we help you today?</p>',
        channelId: LIVE_CHAT_CHANNEL_ID,
        channelAccountId: '240183460',
        createdBy: 'S-hubspot',
        client: { clientType: 'SYSTEM' },
        senders: [{ actorId: 'S-hubspot' }],
        recipients: [],
      };
  }
}

function chatMessage(
  common: CommonMessageFields,
  direction: 'INCOMING' | 'OUTGOING',
  sender: HubSpotParticipant,
  recipients: readonly HubSpotParticipant[],
  text: string,
): HubSpotMessage {
  return {
    ...common,
    type: 'MESSAGE',
    text,
    richText: `<p>${text}</p>`,
    direction,
    channelId: LIVE_CHAT_CHANNEL_ID,
    channelAccountId: '240183460',
    createdBy: sender.actorId ?? '',
    client: { clientType: 'HUBSPOT' },
    senders: [sender],
    recipients,
    truncationStatus: 'NOT_TRUNCATED',
  };
}

/**
 * A long customer email as HubSpot serves it: the message cut short with truncationStatus
 * TRUNCATED, and its whole body as GET …/original-content answers it. Register both with the
 * fake (addMessage, setOriginalContent).
 */
export function truncatedEmail(
  fullText: string,
  spec: Omit<MessageSpec, 'kind' | 'text'> = {},
): { readonly message: HubSpotMessage; readonly originalContent: HubSpotMessageContent } {
  const shortened = `${fullText.slice(0, Math.min(200, Math.floor(fullText.length / 2)))}…`;
  const truncated = message({
    ...spec,
    kind: 'customer-email',
    text: shortened,
    richText: `<div>${shortened}</div>`,
    truncationStatus: 'TRUNCATED',
  });
  return { message: truncated, originalContent: { text: fullText, richText: `<div>${fullText}</div>` } };
}

/** GET …/threads/{threadId}: an open live-chat thread, optionally with its ticket. */
export function thread(overrides: Partial<HubSpotThread> = {}): HubSpotThread {
  return {
    id: newThreadId(),
    status: 'OPEN',
    inboxId: '147959634',
    associatedContactId: '75761595194',
    createdAt: new Date().toISOString(),
    originalChannelId: LIVE_CHAT_CHANNEL_ID,
    originalChannelAccountId: '240183460',
    archived: false,
    spam: false,
    ...overrides,
  };
}

/** GET /crm/v3/objects/notes/{id}: a note on a ticket (association type note_to_ticket). */
export function note(
  overrides: Partial<Omit<HubSpotNote, 'properties'>> & {
    readonly properties?: Partial<HubSpotNote['properties']>;
    readonly ticketId?: string;
  } = {},
): HubSpotNote {
  const { properties, ticketId = String(nextNumber(1_500_000_000)), ...rest } = overrides;
  const timestamp = new Date().toISOString();
  return {
    id: String(nextNumber(60_000_000_000)),
    properties: {
      hs_note_body: '<p>Called the customer; refund approved.</p>',
      hs_timestamp: timestamp,
      hubspot_owner_id: '52314189',
      ...properties,
    },
    associations: { tickets: { results: [{ id: ticketId, type: 'note_to_ticket' }] } },
    createdAt: timestamp,
    updatedAt: timestamp,
    ...rest,
  };
}
