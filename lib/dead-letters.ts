import type { IHeaders, KafkaMessage, Producer } from 'kafkajs';
import type { AvroCodec } from './registry.ts';

/**
 * Why an event went to the dead-letter topic: one list for every service, each reason a metric
 * label and a filter of the operator command. Dead letters are for events no retry can fix.
 */
export const DeadLetterReason = {
  /** The record cannot be decoded (not Avro, unknown schema, no value). */
  undecodable: 'undecodable',
  /** The HubSpot event inside the raw record does not have the fields its type needs. */
  malformedEvent: 'malformed_event',
  /** An effect's record is larger than its topic accepts. */
  recordTooLarge: 'record_too_large',
  /** No configured SECRETS_KEY (nor SECRETS_KEY_PREVIOUS) opens the organisation's record. */
  orgUnreadable: 'org_unreadable',
  hubspotRejected: 'hubspot_rejected',
  hubspotUnauthorized: 'hubspot_unauthorized',
  opencxRejected: 'opencx_rejected',
  opencxUnauthorized: 'opencx_unauthorized',
  /** A retriable failure that outlived its retry budget. */
  retriesExhausted: 'retries_exhausted',
  /** The handler threw something unclassified (a bug) on every attempt of its budget. */
  handlerCrashed: 'handler_crashed',
} as const;
export type DeadLetterReason = (typeof DeadLetterReason)[keyof typeof DeadLetterReason];

/** What a dead letter holds (schemas/dead-letter.avsc): the original record and why it failed. */
export type DeadLetter = {
  readonly service: string;
  readonly sourceTopic: string;
  readonly partition: number;
  readonly offset: string;
  readonly key: Buffer | null;
  readonly value: Buffer | null;
  /** The original record's headers, restored on replay (the ordering key among them). */
  readonly headers: Record<string, string> | null;
  readonly reason: string;
  readonly error: string;
  readonly attempts: number;
  readonly orgId: string | null;
  readonly eventType: string | null;
  readonly eventId: string | null;
  readonly failedAt: number;
};

export const DEAD_LETTER_RECORD = 'io.opencx.pipeline.DeadLetter';

const headersAsText = (headers: IHeaders | undefined): Record<string, string> | null => {
  if (!headers) return null;
  const entries = Object.entries(headers).flatMap(([name, value]) => {
    const first = Array.isArray(value) ? value[0] : value;
    return first === undefined ? [] : [[name, first.toString()] as const];
  });
  return entries.length === 0 ? null : Object.fromEntries(entries);
};

/** Writes a dead letter durably (acks=all), keyed like the original so a replay keeps its order. */
export const writeDeadLetter = async (
  producer: Producer,
  codec: AvroCodec,
  topic: string,
  source: { message: KafkaMessage; topic: string; partition: number },
  letter: Omit<DeadLetter, 'sourceTopic' | 'partition' | 'offset' | 'key' | 'value' | 'headers' | 'failedAt'>,
  now: number,
): Promise<void> => {
  const record: DeadLetter = {
    ...letter,
    sourceTopic: source.topic,
    partition: source.partition,
    offset: source.message.offset,
    key: source.message.key ?? null,
    value: source.message.value ?? null,
    headers: headersAsText(source.message.headers),
    failedAt: now,
  };
  const headers: IHeaders = { 'dead-letter-reason': letter.reason };
  await producer.send({
    topic,
    acks: -1,
    messages: [
      {
        key: source.message.key ?? null,
        value: await codec.encodeRecord(DEAD_LETTER_RECORD, record),
        headers,
      },
    ],
  });
};
