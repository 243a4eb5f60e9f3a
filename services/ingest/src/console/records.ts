/**
 * What the console reads off the topics, decoded: raw webhook events, domain events and dead
 * letters, and how a raw event is tied to what the processor made of it.
 */
import {
  DEAD_LETTER_ID_HEADER,
  DEAD_LETTER_RECORD,
  type ArchivedDeadLetter,
  type DeadLetter,
} from '../../../../lib/dead-letters/index.ts';
import { deriveEventId } from '../../../../lib/ids.ts';
import type { AvroCodec } from '../../../../lib/registry.ts';
import type { WindowRecord } from './topic-window.ts';

/** schemas/raw-webhook-event.avsc, with the HubSpot event's JSON parsed (when it parses). */
export type RawRecord = {
  readonly position: WindowRecord;
  readonly receivedAt: number;
  readonly route: string;
  readonly orgId: string | null;
  readonly portalId: number;
  readonly subscriptionType: string;
  readonly eventJson: string;
  readonly event: Readonly<Record<string, unknown>>;
};

export type DomainRecord = {
  readonly position: WindowRecord;
  readonly type: string;
  readonly record: Readonly<Record<string, unknown>>;
};

const epochMs = (value: unknown): number => (value instanceof Date ? value.getTime() : Number(value));

const parseObject = (json: string): Record<string, unknown> => {
  try {
    const value: unknown = JSON.parse(json);
    return typeof value === 'object' && value !== null && !Array.isArray(value)
      ? (value as Record<string, unknown>)
      : {};
  } catch {
    return {};
  }
};

export const decodeRaw = async (codec: AvroCodec, position: WindowRecord): Promise<RawRecord> => {
  if (!position.value) throw new Error('no value');
  const { record } = await codec.decodeRecord(position.value);
  const eventJson = String(record.event);
  return {
    position,
    receivedAt: epochMs(record.receivedAt),
    route: String(record.route),
    orgId: typeof record.orgId === 'string' ? record.orgId : null,
    portalId: Number(record.portalId),
    subscriptionType: String(record.subscriptionType),
    eventJson,
    event: parseObject(eventJson),
  };
};

export const decodeDomain = async (codec: AvroCodec, position: WindowRecord): Promise<DomainRecord> => {
  if (!position.value) throw new Error('no value');
  const event = await codec.decodeEvent(position.value);
  const { type, ...record } = event;
  return {
    position,
    type,
    record: { ...record, ...('occurredAt' in record ? { occurredAt: epochMs(record.occurredAt) } : {}) },
  };
};

/** A dead letter as lib/dead-letters reads it (its position on the dead-letter topic is its identity). */
export const decodeLetter = async (codec: AvroCodec, position: WindowRecord): Promise<ArchivedDeadLetter> => {
  if (!position.value) throw new Error('no value');
  const { recordName, record } = await codec.decodeRecord(position.value);
  if (recordName !== DEAD_LETTER_RECORD) throw new Error(`a ${recordName}, not a dead letter`);
  const letter = { ...(record as Omit<DeadLetter, 'failedAt'>), failedAt: epochMs(record.failedAt) };
  return { topic: position.topic, partition: position.partition, offset: position.offset, letter };
};

/** Letters a crash wrote twice carry the same id header: keep the first, as the dlq command does. */
export const letterIdOf = (position: WindowRecord): string | undefined =>
  position.headers[DEAD_LETTER_ID_HEADER];

const text = (value: unknown): string | undefined =>
  typeof value === 'string' || typeof value === 'number' ? String(value) : undefined;

export const hubspotField = (raw: RawRecord, name: string): string | undefined => text(raw.event[name]);

/**
 * The ids of the domain events the processor's rules derive from this raw event
 * (services/processor/src/rules: deterministic ids). A domain event on the topic with one of
 * them is what became of it; none means skipped, not processed yet, or dead-lettered.
 */
export const expectedEventIds = (raw: RawRecord, orgId: string | undefined): readonly string[] => {
  if (orgId === undefined) return [];
  const objectId = hubspotField(raw, 'objectId');
  switch (raw.subscriptionType) {
    case 'conversation.newMessage': {
      const messageId = hubspotField(raw, 'messageId');
      return messageId === undefined
        ? []
        : [deriveEventId('customer-message', orgId, messageId), deriveEventId('rep-reply', orgId, messageId)];
    }
    case 'conversation.propertyChange':
      return objectId === undefined ? [] : [deriveEventId('handoff', orgId, objectId)];
    case 'ticket.propertyChange': {
      const property = hubspotField(raw, 'propertyName');
      const occurredAt = raw.event.occurredAt;
      return objectId === undefined || property === undefined || typeof occurredAt !== 'number'
        ? []
        : [deriveEventId('ticket-field-changed', orgId, objectId, property, occurredAt)];
    }
    case 'object.creation':
      return objectId === undefined ? [] : [deriveEventId('note-mirrored', orgId, objectId)];
    default:
      return [];
  }
};

const SUPPORTED = new Set([
  'conversation.newMessage',
  'conversation.propertyChange',
  'ticket.propertyChange',
  'object.creation',
]);

/**
 * Why the processor did nothing with an event, when the raw record alone tells (the rest of its
 * skip reasons need HubSpot's data or Redis, and are only in its log and processor_ignored_total).
 */
export const evidentSkipReason = (raw: RawRecord, orgKnown: boolean): string | undefined => {
  if (!SUPPORTED.has(raw.subscriptionType)) return 'unsupported_subscription_type';
  if (!orgKnown) return 'unknown_portal (no organisation has this portal)';
  if (raw.subscriptionType === 'conversation.propertyChange' && raw.event.propertyName !== 'assignedTo')
    return 'property_not_assignment';
  if (raw.subscriptionType === 'object.creation' && raw.event.objectTypeId !== '0-46')
    return 'object_not_a_note';
  return undefined;
};
