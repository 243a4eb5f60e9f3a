/**
 * The raw topic's record (schemas/raw-webhook-event.avsc): what ingest writes for each HubSpot
 * webhook event it accepted, and what the processor, the reprocess command and the console read.
 */

/** Avro record name of the raw topic's records. */
export const RAW_WEBHOOK_EVENT_RECORD = 'io.opencx.pipeline.RawWebhookEvent';

/** Which of ingest's endpoints received the event (the Avro enum WebhookRoute). */
export const WebhookRoute = { oauthApp: 'OAUTH_APP', privateApp: 'PRIVATE_APP' } as const;
export type WebhookRoute = (typeof WebhookRoute)[keyof typeof WebhookRoute];

export type RawWebhookEvent = {
  /** Epoch ms: when ingest accepted the batch. */
  readonly receivedAt: number;
  readonly route: WebhookRoute;
  /** Resolved at ingest (by portal or private webhook token); null when none was known then. */
  readonly orgId: string | null;
  readonly portalId: number;
  /** subscriptionType, or eventType when HubSpot sent that instead. */
  readonly subscriptionType: string;
  /** The event's JSON exactly as HubSpot sent it. */
  readonly event: string;
};

/** The conversation property whose change is a handoff (the processor's rule; the console's "why skipped"). */
export const HANDOFF_PROPERTY = 'assignedTo';

/** HubSpot's object type id of a note: the only `object.creation` the pipeline mirrors. */
export const NOTE_OBJECT_TYPE_ID = '0-46';

/** The HubSpot subscription types the pipeline handles; the HubSpot app subscribes to exactly these. */
export const SubscriptionType = {
  newMessage: 'conversation.newMessage',
  conversationPropertyChange: 'conversation.propertyChange',
  ticketPropertyChange: 'ticket.propertyChange',
  objectCreation: 'object.creation',
} as const;
export type SubscriptionType = (typeof SubscriptionType)[keyof typeof SubscriptionType];

const routes: ReadonlySet<unknown> = new Set(Object.values(WebhookRoute));
const isWebhookRoute = (value: unknown): value is WebhookRoute => routes.has(value);

const fieldError = (field: string, value: unknown): Error => {
  const shown =
    typeof value === 'string' || typeof value === 'number'
      ? JSON.stringify(value)
      : value === null
        ? 'null'
        : typeof value;
  return new Error(`${RAW_WEBHOOK_EVENT_RECORD}: ${field} is ${shown}, not what the schema says`);
};

/**
 * A decoded Avro record as a RawWebhookEvent, each field checked: a record of another type, or
 * of a schema version this code does not know, fails here with the field it lacks instead of
 * travelling on with `undefined` in it. Throws an Error naming the record or the field.
 * `receivedAt` is a timestamp-millis: read as epoch ms whether the Avro library gives a number
 * or a Date.
 */
export const decodeRawWebhookEvent = (decoded: {
  readonly recordName: string;
  readonly record: Readonly<Record<string, unknown>>;
}): RawWebhookEvent => {
  if (decoded.recordName !== RAW_WEBHOOK_EVENT_RECORD)
    throw new Error(`a ${decoded.recordName}, not a ${RAW_WEBHOOK_EVENT_RECORD}`);
  const { receivedAt, route, orgId, portalId, subscriptionType, event } = decoded.record;
  const receivedAtMs = receivedAt instanceof Date ? receivedAt.getTime() : receivedAt;
  if (typeof receivedAtMs !== 'number' || !Number.isFinite(receivedAtMs))
    throw fieldError('receivedAt', receivedAt);
  if (!isWebhookRoute(route)) throw fieldError('route', route);
  if (orgId !== null && typeof orgId !== 'string') throw fieldError('orgId', orgId);
  if (typeof portalId !== 'number' || !Number.isSafeInteger(portalId)) throw fieldError('portalId', portalId);
  if (typeof subscriptionType !== 'string') throw fieldError('subscriptionType', subscriptionType);
  if (typeof event !== 'string') throw fieldError('event', event);
  return { receivedAt: receivedAtMs, route, orgId, portalId, subscriptionType, event };
};
