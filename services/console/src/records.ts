/**
 * What the console reads off the topics, decoded: raw webhook events, domain events and dead
 * letters, and how a raw event is tied to what the processor made of it.
 */
import {
  HANDOFF_PROPERTY,
  IgnoreReason,
  NOTE_OBJECT_TYPE_ID,
  SubscriptionType,
  decodeRawWebhookEvent,
  eventIdOf,
  type RawWebhookEvent,
} from '../../../lib/contracts/index.ts';
import {
  DEAD_LETTER_ID_HEADER,
  DEAD_LETTER_RECORD,
  type ArchivedDeadLetter,
  type DeadLetter,
} from '../../../lib/dead-letters/index.ts';
import type { AvroCodec } from '../../../lib/registry.ts';
import type { WindowRecord } from '../../../lib/kafka/index.ts';

/** A raw topic's record, with the HubSpot event's JSON parsed (when it parses). */
export type RawRecord = Omit<RawWebhookEvent, 'event'> & {
  readonly position: WindowRecord;
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
  const { event, ...fields } = decodeRawWebhookEvent(await codec.decodeRecord(position.value));
  return { ...fields, position, eventJson: event, event: parseObject(event) };
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
 * The ids of the domain events the processor's rules derive from this raw event (the same
 * recipes, lib/contracts). A domain event on the topic with one of them is what became of it;
 * none means skipped, not processed yet, or dead-lettered.
 */
export const expectedEventIds = (raw: RawRecord, orgId: string | undefined): readonly string[] => {
  if (orgId === undefined) return [];
  const objectId = hubspotField(raw, 'objectId');
  switch (raw.subscriptionType) {
    case SubscriptionType.newMessage: {
      const messageId = hubspotField(raw, 'messageId');
      return messageId === undefined
        ? []
        : [eventIdOf.customerMessage(orgId, messageId), eventIdOf.repReply(orgId, messageId)];
    }
    case SubscriptionType.conversationPropertyChange:
      return objectId === undefined ? [] : [eventIdOf.handoff(orgId, objectId)];
    case SubscriptionType.ticketPropertyChange: {
      const property = hubspotField(raw, 'propertyName');
      const occurredAt = raw.event.occurredAt;
      return objectId === undefined || property === undefined || typeof occurredAt !== 'number'
        ? []
        : [eventIdOf.ticketFieldChanged(orgId, objectId, property, occurredAt)];
    }
    case SubscriptionType.objectCreation:
      return objectId === undefined ? [] : [eventIdOf.noteMirrored(orgId, objectId)];
    default:
      return [];
  }
};

const SUPPORTED: ReadonlySet<string> = new Set(Object.values(SubscriptionType));

/**
 * Why the processor did nothing with an event, when the raw record alone tells (the rest of its
 * skip reasons need HubSpot's data or Redis, and are only in its log and processor_ignored_total).
 */
export const evidentSkipReason = (raw: RawRecord, orgKnown: boolean): string | undefined => {
  if (!SUPPORTED.has(raw.subscriptionType)) return IgnoreReason.unsupportedType;
  if (!orgKnown) return `${IgnoreReason.unknownPortal} (no organisation has this portal)`;
  if (
    raw.subscriptionType === SubscriptionType.conversationPropertyChange &&
    raw.event.propertyName !== HANDOFF_PROPERTY
  )
    return IgnoreReason.notAssignment;
  if (
    raw.subscriptionType === SubscriptionType.objectCreation &&
    raw.event.objectTypeId !== NOTE_OBJECT_TYPE_ID
  )
    return IgnoreReason.notANote;
  return undefined;
};
