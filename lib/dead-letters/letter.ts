import { deriveEventId } from '../ids.ts';

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
  /** A DeadLetterReason; typed as text because letters written by older versions are read too. */
  readonly reason: string;
  readonly error: string;
  readonly attempts: number;
  readonly orgId: string | null;
  readonly eventType: string | null;
  readonly eventId: string | null;
  readonly failedAt: number;
};

export const DEAD_LETTER_RECORD = 'io.opencx.pipeline.DeadLetter';

/** Kafka header naming a letter: the same source record always gives the same id. */
export const DEAD_LETTER_ID_HEADER = 'dead-letter-id';

/**
 * A letter's id, derived from where its source record sits (and which service failed it): if a
 * crash lands between writing a letter and remembering that it was written, the second copy has
 * the same id and readers keep one.
 */
export const deadLetterId = (service: string, topic: string, partition: number, offset: string): string =>
  deriveEventId('dead-letter', service, topic, partition, offset);
