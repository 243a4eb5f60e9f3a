import { z } from 'zod';

/**
 * The envelope ingest checks before accepting a batch: an array of objects, each with a
 * portalId and a subscriptionType (or eventType, which HubSpot's docs table uses). Everything
 * else is kept as sent, for the processor's rules.
 */
const WebhookEvent = z.looseObject({
  portalId: z.number().int().positive(),
  subscriptionType: z.string().min(1).optional(),
  eventType: z.string().min(1).optional(),
  occurredAt: z.number().optional(),
  objectId: z.union([z.number(), z.string()]).optional(),
  objectTypeId: z.string().optional(),
});

/** conversation.* events are about a thread, ticket.* about a ticket, others about their object. */
const objectKeyOf = (
  subscriptionType: string,
  objectId: string | number | undefined,
  objectTypeId: string | undefined,
): string => {
  const family = subscriptionType.split('.')[0] ?? subscriptionType;
  if (family === 'conversation') return `thread:${objectId ?? ''}`;
  if (family === 'ticket') return `ticket:${objectId ?? ''}`;
  return `${objectTypeId ?? family}:${objectId ?? ''}`;
};

export type AcceptedEvent = {
  readonly portalId: number;
  readonly subscriptionType: string;
  /** The HubSpot object the event is about (thread:…, ticket:…): the processor keeps each in order. */
  readonly objectKey: string;
  /** The event's JSON exactly as received. */
  readonly json: string;
};

export type BatchParse =
  | { readonly ok: true; readonly events: readonly AcceptedEvent[] }
  | { readonly ok: false; readonly detail: string };

export const MAX_EVENTS_PER_BATCH = 1000;

export const parseWebhookBatch = (rawBody: Buffer): BatchParse => {
  let body: unknown;
  try {
    body = JSON.parse(rawBody.toString('utf8'));
  } catch {
    return { ok: false, detail: 'body is not JSON' };
  }
  if (!Array.isArray(body)) return { ok: false, detail: 'body must be a JSON array of HubSpot events' };
  if (body.length > MAX_EVENTS_PER_BATCH)
    return { ok: false, detail: `at most ${MAX_EVENTS_PER_BATCH} events per request` };
  const events: AcceptedEvent[] = [];
  for (const [index, item] of body.entries()) {
    const parsed = WebhookEvent.safeParse(item);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      return {
        ok: false,
        detail: `event ${index}: ${issue?.path.join('.') || 'event'}: ${issue?.message ?? 'invalid'}`,
      };
    }
    const subscriptionType = parsed.data.subscriptionType ?? parsed.data.eventType;
    if (subscriptionType === undefined)
      return { ok: false, detail: `event ${index}: subscriptionType (or eventType) is missing` };
    events.push({
      portalId: parsed.data.portalId,
      subscriptionType,
      objectKey: objectKeyOf(subscriptionType, parsed.data.objectId, parsed.data.objectTypeId),
      json: JSON.stringify(item),
    });
  }
  return { ok: true, events };
};
