import { z } from 'zod';
import { parseJsonBody } from './json-body.ts';

/**
 * What ingest checks before it accepts a batch (facts §1): an array of at most 100 objects, each
 * field HubSpot sends of the type HubSpot sends it, and, for the event types the processor's
 * rules read (services/processor/src/rules/webhook-event.ts), the fields those rules require: so
 * ingest never answers 200 for an event the processor would refuse, and a bad field gets a 400
 * naming it while HubSpot can still be told, rather than a dead letter or a broken Avro record
 * downstream. Fields ingest does not know are kept: each event is stored exactly as sent.
 */
export const MAX_EVENTS_PER_BATCH = 100;

/** occurredAt bounds: epoch milliseconds from 2000-01-01 to a day from now (clocks drift; 9e15 is not a date). */
const EARLIEST_OCCURRED_AT = Date.UTC(2000, 0, 1);
const FUTURE_SLACK_MS = 24 * 60 * 60 * 1000;

const integer = (what: string) =>
  z.int({ error: (issue) => (issue.input === undefined ? 'missing' : `must be ${what} (an integer)`) });
const text = z.string({ error: (issue) => (issue.input === undefined ? 'missing' : 'must be a string') });

/**
 * The latest occurredAt the batch being parsed may carry. The schema is built once (zod v4
 * compiles each schema on first use: building one per request cost more than the rest of the
 * request), and parsing is synchronous, so the bound is set right before each parse.
 */
let latestOccurredAt = 0;

const eventFields = z.looseObject({
  portalId: integer('a HubSpot account id').positive({ error: 'must be a positive integer' }),
  subscriptionType: text.min(1, { error: 'must not be empty' }).optional(),
  eventType: text.min(1, { error: 'must not be empty' }).optional(),
  eventId: integer('an id').nonnegative({ error: 'must not be negative' }).optional(),
  subscriptionId: integer('an id').nonnegative({ error: 'must not be negative' }).optional(),
  appId: integer('an id').nonnegative({ error: 'must not be negative' }).optional(),
  attemptNumber: integer('a count').nonnegative({ error: 'must not be negative' }).optional(),
  objectId: integer('an object id').nonnegative({ error: 'must not be negative' }).optional(),
  occurredAt: integer('epoch milliseconds')
    .min(EARLIEST_OCCURRED_AT, { error: 'must be epoch milliseconds on or after 2000-01-01' })
    .refine((value) => value <= latestOccurredAt, {
      error: 'must be epoch milliseconds no later than a day from now',
    })
    .optional(),
  messageId: text.min(1, { error: 'must not be empty' }).optional(),
  messageType: text.optional(),
  changeFlag: text.optional(),
  changeSource: text.optional(),
  sourceId: text.optional(),
  propertyName: text.optional(),
  propertyValue: z.string({ error: 'must be a string or null' }).nullable().optional(),
  objectTypeId: text.optional(),
});

type EventFields = z.infer<typeof eventFields>;

const optionalInteger = (value: unknown, min: number): boolean =>
  value === undefined || (Number.isSafeInteger(value) && (value as number) >= min);
const optionalText = (value: unknown, minLength: number): boolean =>
  value === undefined || (typeof value === 'string' && value.length >= minLength);

/**
 * The schema's checks written out, for the common case: true only for an event the schema
 * accepts (a unit test varies every field to hold it to that), so a valid event skips zod's
 * walk (a third of parsing a 100-event batch); anything else goes to zod, which names the problem.
 */
const plainlyValid = (item: unknown): item is EventFields => {
  if (typeof item !== 'object' || item === null || Array.isArray(item)) return false;
  const event = item as Record<string, unknown>;
  const { portalId, occurredAt, propertyValue } = event;
  return (
    Number.isSafeInteger(portalId) &&
    (portalId as number) > 0 &&
    optionalText(event.subscriptionType, 1) &&
    optionalText(event.eventType, 1) &&
    optionalInteger(event.eventId, 0) &&
    optionalInteger(event.subscriptionId, 0) &&
    optionalInteger(event.appId, 0) &&
    optionalInteger(event.attemptNumber, 0) &&
    optionalInteger(event.objectId, 0) &&
    (occurredAt === undefined ||
      (Number.isSafeInteger(occurredAt) &&
        (occurredAt as number) >= EARLIEST_OCCURRED_AT &&
        (occurredAt as number) <= latestOccurredAt)) &&
    optionalText(event.messageId, 1) &&
    optionalText(event.messageType, 0) &&
    optionalText(event.changeFlag, 0) &&
    optionalText(event.changeSource, 0) &&
    optionalText(event.sourceId, 0) &&
    optionalText(event.propertyName, 0) &&
    (propertyValue === undefined || propertyValue === null || typeof propertyValue === 'string') &&
    optionalText(event.objectTypeId, 0)
  );
};

/** For the unit test holding the quick check to the schema: what each says of one event. */
export const eventCheckVerdicts = (item: unknown, now: number): { quick: boolean; schema: boolean } => {
  latestOccurredAt = now + FUTURE_SLACK_MS;
  return { quick: plainlyValid(item), schema: eventFields.safeParse(item).success };
};

/**
 * The fields the processor's rules require, per event type (others: only portalId and the type).
 * A Map: a type named `toString` or `__proto__` is one more unknown type, not Object's property.
 */
const requiredByType: ReadonlyMap<string, readonly string[]> = new Map([
  ['conversation.newMessage', ['occurredAt', 'objectId', 'messageId']],
  ['conversation.propertyChange', ['occurredAt', 'objectId', 'propertyName']],
  ['ticket.propertyChange', ['occurredAt', 'objectId', 'propertyName']],
  ['object.creation', ['occurredAt', 'objectId']],
]);

const missingRequiredField = (event: EventFields, subscriptionType: string): string | undefined => {
  const required = requiredByType.get(subscriptionType);
  if (required === undefined) return undefined;
  for (const field of required) if ((event as Record<string, unknown>)[field] === undefined) return field;
  return undefined;
};

/** conversation.* events are about a thread, ticket.* about a ticket, others about their object. */
const objectKeyOf = (
  subscriptionType: string,
  objectId: number | undefined,
  objectTypeId: string | undefined,
): string => {
  // The two common families by prefix (no slice per event); the family is what precedes the dot.
  if (subscriptionType.startsWith('conversation.') || subscriptionType === 'conversation')
    return `thread:${objectId ?? ''}`;
  if (subscriptionType.startsWith('ticket.') || subscriptionType === 'ticket')
    return `ticket:${objectId ?? ''}`;
  const dot = subscriptionType.indexOf('.');
  const family = dot < 0 ? subscriptionType : subscriptionType.slice(0, dot);
  return `${objectTypeId ?? family}:${objectId ?? ''}`;
};

export type AcceptedEvent = {
  readonly portalId: number;
  readonly subscriptionType: string;
  /** The HubSpot object the event is about (thread:…, ticket:…): the processor keeps each in order. */
  readonly objectKey: string;
  /** The event's JSON exactly as received: its UTF-8 bytes (a view of the request body). */
  readonly json: Buffer;
};

export type BatchParse =
  | { readonly ok: true; readonly events: readonly AcceptedEvent[] }
  | { readonly ok: false; readonly detail: string };

export const parseWebhookBatch = (rawBody: Buffer, now: number): BatchParse => {
  const body = parseJsonBody(rawBody);
  if (!body.ok) return body;
  if (!Array.isArray(body.value) || !body.elements)
    return { ok: false, detail: 'body must be a JSON array of HubSpot events' };
  if (body.value.length > MAX_EVENTS_PER_BATCH)
    return {
      ok: false,
      detail: `${body.value.length} events: at most ${MAX_EVENTS_PER_BATCH} per request (HubSpot sends at most 100)`,
    };
  latestOccurredAt = now + FUTURE_SLACK_MS;
  const items = body.value as unknown[];
  const events: AcceptedEvent[] = [];
  for (let index = 0; index < items.length; index++) {
    const item = items[index];
    let event: EventFields;
    if (plainlyValid(item)) event = item;
    else {
      const parsed = eventFields.safeParse(item);
      if (!parsed.success) {
        const issue = parsed.error.issues[0];
        const field = issue?.path.join('.') || 'event';
        return {
          ok: false,
          detail: `event ${index}: ${field}: ${field === 'event' ? 'must be a JSON object' : (issue?.message ?? 'invalid')}`,
        };
      }
      event = parsed.data;
    }
    const subscriptionType = event.subscriptionType ?? event.eventType;
    if (subscriptionType === undefined)
      return { ok: false, detail: `event ${index}: subscriptionType: missing (nor is there an eventType)` };
    const missing = missingRequiredField(event, subscriptionType);
    if (missing) return { ok: false, detail: `event ${index}: ${missing}: required for ${subscriptionType}` };
    events.push({
      portalId: event.portalId,
      subscriptionType,
      objectKey: objectKeyOf(subscriptionType, event.objectId, event.objectTypeId),
      json: body.elements[index] ?? Buffer.from(JSON.stringify(item)),
    });
  }
  return { ok: true, events };
};
