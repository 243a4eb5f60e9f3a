import { deriveEventId } from '../ids.ts';

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
