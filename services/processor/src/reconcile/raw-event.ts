/**
 * The raw record a gap becomes: what ingest would have written had HubSpot delivered the
 * message's `conversation.newMessage` webhook. Pure.
 */
import { SubscriptionType, WebhookRoute, type RawWebhookEvent } from '../../../../lib/contracts/index.ts';
import type { HubSpotMessage } from '../../../../lib/hubspot/index.ts';
import { createdAtOf, webhookMessageType } from './gaps.ts';

/**
 * Header on a raw record the reconciler wrote (value `1`). The record itself is the same Avro
 * record ingest writes, so every reader (processor, reprocess, console) takes it unchanged.
 */
export const RECONCILED_HEADER = 'reconciled';

/**
 * The webhook event HubSpot would have sent for `message` (facts file, section 1): no text, no
 * sender, so the processor re-fetches it as for any webhook. HubSpot's own `eventId`,
 * `subscriptionId` and `appId` are not invented: nothing reads them.
 */
export const newMessageEventOf = (message: HubSpotMessage, portalId: number) => {
  const threadId = message.conversationsThreadId ?? '';
  return {
    portalId,
    occurredAt: createdAtOf(message) ?? 0,
    subscriptionType: SubscriptionType.newMessage,
    attemptNumber: 0,
    // HubSpot's objectId is the thread id as a number; an id that is not one stays a string.
    objectId: /^\d{1,15}$/.test(threadId) ? Number(threadId) : threadId,
    messageId: message.id,
    messageType: webhookMessageType(message.type) ?? 'MESSAGE',
    changeFlag: 'NEW_MESSAGE',
  };
};

/** The raw record for a gap, routed to its organisation as ingest routes a webhook. */
export const reconciledRawEvent = (
  message: HubSpotMessage,
  org: { readonly orgId: string; readonly portalId: number; readonly privateApp: boolean },
  receivedAt: number,
): RawWebhookEvent => ({
  receivedAt,
  // The endpoint the lost webhook would have come to: the organisation's private-app URL or the app's.
  route: org.privateApp ? WebhookRoute.privateApp : WebhookRoute.oauthApp,
  orgId: org.orgId,
  portalId: org.portalId,
  subscriptionType: SubscriptionType.newMessage,
  event: JSON.stringify(newMessageEventOf(message, org.portalId)),
});

/** The raw topic's key and headers for it, as ingest writes them (raw-event-sink.ts). */
export const rawRecordRouting = (orgId: string, threadId: string) => ({
  key: orgId,
  orderingKey: `${orgId}:thread:${threadId}`,
});
