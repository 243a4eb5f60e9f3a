import { z } from 'zod';
import { SubscriptionType } from '../../../../lib/contracts/index.ts';

const id = z.union([z.string().min(1), z.number()]).transform(String);

/** The HubSpot webhook events the rules read (facts file, section 1), as a discriminated union. */
const NewMessage = z.looseObject({
  subscriptionType: z.literal(SubscriptionType.newMessage),
  portalId: z.number(),
  occurredAt: z.number(),
  objectId: id,
  messageId: z.string().min(1),
  messageType: z.string().nullish(),
});
const ConversationPropertyChange = z.looseObject({
  subscriptionType: z.literal(SubscriptionType.conversationPropertyChange),
  portalId: z.number(),
  occurredAt: z.number(),
  objectId: id,
  propertyName: z.string(),
  propertyValue: z.string().nullish(),
});
const TicketPropertyChange = z.looseObject({
  subscriptionType: z.literal(SubscriptionType.ticketPropertyChange),
  portalId: z.number(),
  occurredAt: z.number(),
  objectId: id,
  propertyName: z.string(),
  propertyValue: z.union([z.string(), z.number(), z.boolean()]).transform(String).nullish(),
});
const ObjectCreation = z.looseObject({
  subscriptionType: z.literal(SubscriptionType.objectCreation),
  portalId: z.number(),
  occurredAt: z.number(),
  objectId: id,
  objectTypeId: z.string().nullish(),
});

export type NewMessageEvent = z.infer<typeof NewMessage>;
export type ConversationPropertyChangeEvent = z.infer<typeof ConversationPropertyChange>;
export type TicketPropertyChangeEvent = z.infer<typeof TicketPropertyChange>;
export type ObjectCreationEvent = z.infer<typeof ObjectCreation>;

export type WebhookEvent =
  | NewMessageEvent
  | ConversationPropertyChangeEvent
  | TicketPropertyChangeEvent
  | ObjectCreationEvent
  | { readonly subscriptionType: 'unsupported'; readonly original: string };

export type EventParse =
  { readonly ok: true; readonly event: WebhookEvent } | { readonly ok: false; readonly detail: string };

/** A Map, not an object literal: a type named `toString` or `__proto__` must be unsupported, not Object's. */
const schemas = new Map<string, z.ZodType<WebhookEvent>>([
  [SubscriptionType.newMessage, NewMessage],
  [SubscriptionType.conversationPropertyChange, ConversationPropertyChange],
  [SubscriptionType.ticketPropertyChange, TicketPropertyChange],
  [SubscriptionType.objectCreation, ObjectCreation],
]);

/** The event types these rules parse (others are unsupported); the HubSpot app subscribes to exactly these. */
export const handledEventTypes: readonly string[] = [...schemas.keys()];

/** `eventType` is accepted where `subscriptionType` is missing (HubSpot's docs table uses it). */
export const parseWebhookEvent = (json: string): EventParse => {
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch {
    return { ok: false, detail: 'event is not JSON' };
  }
  if (typeof value !== 'object' || value === null) return { ok: false, detail: 'event is not an object' };
  const record = value as Record<string, unknown>;
  const type = record.subscriptionType ?? record.eventType;
  const schema = typeof type === 'string' ? schemas.get(type) : undefined;
  if (!schema) return { ok: true, event: { subscriptionType: 'unsupported', original: String(type) } };
  const parsed = schema.safeParse({ ...record, subscriptionType: type });
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    return {
      ok: false,
      detail: `${String(type)}: ${issue?.path.join('.') ?? ''}: ${issue?.message ?? 'invalid'}`,
    };
  }
  return { ok: true, event: parsed.data };
};
