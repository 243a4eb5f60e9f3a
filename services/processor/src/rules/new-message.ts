import { IgnoreReason, eventIdOf } from '../../../../lib/contracts/index.ts';
import type { HubSpotMessage } from '../../../../lib/hubspot/messages.ts';
import { emit, ignore, type Decision } from './decision.ts';
import type { NewMessageEvent } from './webhook-event.ts';

export const AI_MARKERS = ['<!-- OpenCX-AI-Response -->', '🔄 AI decided to handoff'] as const;
export const EMAIL_CHANNEL_ID = '1002';
const AUTOMATED_CLIENTS = new Set(['INTEGRATION', 'SYSTEM']);
/** I- integration, S- system, B- bot, L- Breeze AI agent. */
const AUTOMATED_ACTOR = /^[ISBL]-/;

export type NewMessageContext = {
  readonly orgId: string;
  readonly aiActorId: string;
  /** When ingest accepted the event: the email delay counts from there. */
  readonly receivedAt: number;
  readonly emailDelayMs: number;
};

const senderOf = (message: HubSpotMessage): string | undefined =>
  message.senders[0]?.actorId ?? message.createdBy ?? undefined;

export const isAutomatedSender = (message: HubSpotMessage): boolean => {
  if (AUTOMATED_CLIENTS.has(message.client?.clientType ?? '')) return true;
  const actors = [message.createdBy, ...message.senders.map((sender) => sender.actorId)];
  return actors.some(
    (actor) =>
      actor !== undefined && actor !== null && (AUTOMATED_ACTOR.test(actor) || /^(BOT|LLM)/i.test(actor)),
  );
};

export const isOwnEcho = (message: HubSpotMessage, aiActorId: string): boolean => {
  const text = `${message.text ?? ''}${message.richText ?? ''}`;
  return AI_MARKERS.some((marker) => text.includes(marker)) || senderOf(message) === aiActorId;
};

const plainText = (message: HubSpotMessage): string =>
  (message.text ?? message.richText?.replace(/<[^>]*>/g, ' ') ?? '').replace(/\s+/g, ' ').trim();

/** OpenCX channel types (web, email, ...) for HubSpot channel ids. */
export const openCxChannelType = (channelId: string): string =>
  ({ '1000': 'web', '1002': 'email' })[channelId] ?? 'api';

/**
 * conversation.newMessage, after the re-fetch (contract.md, event rules, in row order):
 * automated senders and our own echoes are ignored; a COMMENT is stored as an internal rep
 * reply; other non-MESSAGE types are ignored; agents' and OUTGOING messages are rep replies;
 * a customer's message goes to the AI, email only after the delay.
 */
export const routeNewMessage = (
  event: NewMessageEvent,
  message: HubSpotMessage,
  context: NewMessageContext,
): Decision => {
  if (isAutomatedSender(message)) return ignore(IgnoreReason.automatedSender);
  if (isOwnEcho(message, context.aiActorId)) return ignore(IgnoreReason.ownEcho);

  const base = {
    orgId: context.orgId,
    portalId: event.portalId,
    threadId: event.objectId,
    occurredAt: event.occurredAt,
    messageId: message.id,
  };
  const text = plainText(message);
  const sender = senderOf(message) ?? 'unknown';
  const channelId = message.channelId ?? null;

  /** A rep's message: internal when it is a comment (a note between reps), else sent to the customer. */
  const repReply = (internal: boolean) =>
    emit([
      {
        type: 'rep-reply',
        eventId: eventIdOf.repReply(context.orgId, message.id),
        ...base,
        text,
        actorId: sender,
        internal,
        channelId,
      },
    ]);

  if (message.type === 'COMMENT') return repReply(true);
  if (message.type !== 'MESSAGE') return ignore(IgnoreReason.notAConversationMessage);

  if (sender.startsWith('A-') || message.direction === 'OUTGOING') return repReply(false);
  if (text === '') return ignore(IgnoreReason.emptyMessage);

  const customer = message.senders[0];
  const events = [
    {
      type: 'customer-message',
      eventId: eventIdOf.customerMessage(context.orgId, message.id),
      ...base,
      text,
      subject: message.subject ?? null,
      channelId: channelId ?? 'unknown',
      channelAccountId: message.channelAccountId ?? 'unknown',
      channelType: openCxChannelType(channelId ?? ''),
      senderActorId: sender,
      senderName: customer?.name ?? null,
      senderDeliveryType: customer?.deliveryIdentifier?.type ?? null,
      senderDeliveryValue: customer?.deliveryIdentifier?.value ?? null,
    },
  ] as const;
  return channelId === EMAIL_CHANNEL_ID
    ? emit(events, context.receivedAt + context.emailDelayMs)
    : emit(events);
};
