/**
 * What the services agree on, in one place: the raw topic's record and its decoder, the id of
 * each event type, and every reason list (metric labels). Pure: no I/O, so every room may import
 * it, the rules included.
 */
export {
  HANDOFF_PROPERTY,
  NOTE_OBJECT_TYPE_ID,
  RAW_WEBHOOK_EVENT_RECORD,
  SubscriptionType,
  WebhookRoute,
  decodeRawWebhookEvent,
  type RawWebhookEvent,
} from './raw-webhook-event.ts';
export { eventIdOf } from './event-ids.ts';
export {
  DeadLetterReason,
  HeldOutcome,
  IgnoreReason,
  SkipReason,
  WaitReason,
  type Reason,
} from './reasons.ts';
