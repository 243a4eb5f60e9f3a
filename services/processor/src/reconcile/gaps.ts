/**
 * Which of a thread's messages are gaps: messages in the window that the rules would act on (a
 * customer message, a rep's reply or comment) and that the processor has not handled. Pure:
 * what the processor handled comes in as a set of message ids.
 */
import type { HubSpotMessage } from '../../../../lib/hubspot/index.ts';
import { routeNewMessage, type NewMessageEvent } from '../rules/index.ts';
import { inWindow, type ReconcileWindow } from './window.ts';

/** The messageType the conversation.newMessage webhook names for a message of this type. */
export const webhookMessageType = (type: string): 'MESSAGE' | 'COMMENT' | 'WELCOME_MESSAGE' | undefined =>
  type === 'MESSAGE' || type === 'COMMENT' || type === 'WELCOME_MESSAGE' ? type : undefined;

/** A message's `createdAt` as epoch ms; undefined when HubSpot gave none (never checked). */
export const createdAtOf = (message: Pick<HubSpotMessage, 'createdAt'>): number | undefined => {
  const at = message.createdAt ? Date.parse(message.createdAt) : Number.NaN;
  return Number.isFinite(at) ? at : undefined;
};

/**
 * Messages of the window the rules would emit something for, judged on the listed message: the
 * same pure rule the processor runs after its re-fetch. An automated sender, our own AI's echo,
 * a welcome or status message is no loss when its webhook is missing, so it is not a gap (and
 * costs no re-fetch).
 */
export const candidatesOf = (
  messages: readonly HubSpotMessage[],
  window: ReconcileWindow,
  org: { readonly orgId: string; readonly portalId: number; readonly aiActorId: string },
): HubSpotMessage[] =>
  messages.filter((message) => {
    const createdAt = createdAtOf(message);
    if (createdAt === undefined || !inWindow(window, createdAt)) return false;
    if (webhookMessageType(message.type) === undefined) return false;
    const event: NewMessageEvent = {
      subscriptionType: 'conversation.newMessage',
      portalId: org.portalId,
      occurredAt: createdAt,
      objectId: message.conversationsThreadId ?? '',
      messageId: message.id,
      messageType: message.type,
    };
    const decision = routeNewMessage(event, message, {
      orgId: org.orgId,
      aiActorId: org.aiActorId,
      receivedAt: createdAt,
      emailDelayMs: 0,
    });
    return decision.kind === 'emit';
  });

/** The candidates the processor has not handled (`handled`: their dedup keys are `done` or claimed). */
export const gapsOf = (
  candidates: readonly HubSpotMessage[],
  handled: ReadonlySet<string>,
): HubSpotMessage[] => candidates.filter((message) => !handled.has(message.id));
