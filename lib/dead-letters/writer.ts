import DataLoader from 'dataloader';
import type { IHeaders, KafkaMessage, Producer } from 'kafkajs';
import { mgetAcrossSlots, type Redis } from '../redis.ts';
import type { DeadLetterReason } from '../contracts/index.ts';
import type { AvroCodec } from '../registry.ts';
import { DEAD_LETTER_ID_HEADER, DEAD_LETTER_RECORD, deadLetterId, type DeadLetter } from './letter.ts';

/** The record that failed, where the consumer read it. */
export type DeadLetterSource = {
  readonly message: KafkaMessage;
  readonly topic: string;
  readonly partition: number;
};

/** Why it failed, as the handler (or the consumer, for a crash) tells it. */
export type DeadLetterDetails = {
  readonly reason: DeadLetterReason;
  readonly error: string;
  readonly attempts: number;
  readonly orgId: string | null;
  readonly eventType: string | null;
  readonly eventId: string | null;
};

export type DeadLetterWriter = {
  /** 'already-written' when an earlier run (before a restart or rebalance) wrote this letter. */
  readonly write: (
    source: DeadLetterSource,
    details: DeadLetterDetails,
  ) => Promise<'written' | 'already-written'>;
  /**
   * True when this record was dead-lettered before (by this service, before a crash or a
   * rebalance redelivered it): it stays with the dead letters until an operator replays it.
   */
  readonly alreadyWritten: (source: DeadLetterSource) => Promise<boolean>;
};

/** How long a written letter is remembered: far longer than a record can stay uncommitted. */
export const WRITTEN_KEEP_MS = 30 * 24 * 60 * 60 * 1000;
const WRITTEN = 'written';
/** An error text is for a person; a stack of nested causes must not make the letter too large. */
const MAX_ERROR_CHARS = 2000;

/** The broker's MESSAGE_TOO_LARGE (kafkajs wraps it as the cause of a non-retriable error). */
const isTooLarge = (error: unknown): boolean =>
  error instanceof Error &&
  ((error as { type?: unknown }).type === 'MESSAGE_TOO_LARGE' || isTooLarge(error.cause));

export const writtenMarkerKey = (keyPrefix: string, letterId: string): string =>
  `${keyPrefix}dlq:written:${letterId}`;

const headersAsText = (headers: IHeaders | undefined): Record<string, string> | null => {
  if (!headers) return null;
  const entries = Object.entries(headers).flatMap(([name, value]) => {
    const first = Array.isArray(value) ? value[0] : value;
    return first === undefined ? [] : [[name, first.toString()] as const];
  });
  return entries.length === 0 ? null : Object.fromEntries(entries);
};

/**
 * Writes each service's dead letters, once per source record. The marker in Redis is checked
 * before and set only after the durable write (acks=all): a restart that redelivers the record
 * finds it and writes nothing. A crash between the write and the marker writes the letter again
 * with the same id (header `dead-letter-id`), and readers keep one. The letter is keyed like the
 * original record, so a replay puts it back on its conversation's partition, in order.
 * Errors (Kafka, Redis) are thrown: the consumer tries again, holding only that conversation.
 */
export const createDeadLetterWriter = (options: {
  readonly service: string;
  readonly topic: string;
  readonly producer: Producer;
  readonly codec: AvroCodec;
  readonly redis: Pick<Redis, 'get' | 'mget' | 'set' | 'isCluster'>;
  readonly keyPrefix: string;
  readonly now?: () => number;
}): DeadLetterWriter => {
  const now = options.now ?? Date.now;
  const markerOf = (source: DeadLetterSource): string =>
    writtenMarkerKey(
      options.keyPrefix,
      deadLetterId(options.service, source.topic, source.partition, source.message.offset),
    );
  // The consumer asks for every message it handles. The markers asked within one turn of the
  // event loop (a fetched batch's conversations starting together) are read with one MGET: one
  // Redis command, not one per message (on a Cluster, one per slot, sent together).
  const markers = new DataLoader<string, boolean>(
    async (keys) => (await mgetAcrossSlots(options.redis, keys)).map((value) => value === WRITTEN),
    { cache: false, maxBatchSize: 500 },
  );
  return {
    alreadyWritten: (source) => markers.load(markerOf(source)),
    write: async (source, details) => {
      const id = deadLetterId(options.service, source.topic, source.partition, source.message.offset);
      const marker = markerOf(source);
      if ((await options.redis.get(marker)) === WRITTEN) return 'already-written';
      const record: DeadLetter = {
        ...details,
        error:
          details.error.length > MAX_ERROR_CHARS
            ? `${details.error.slice(0, MAX_ERROR_CHARS)}…`
            : details.error,
        service: options.service,
        sourceTopic: source.topic,
        partition: source.partition,
        offset: source.message.offset,
        key: source.message.key ?? null,
        value: source.message.value ?? null,
        headers: headersAsText(source.message.headers),
        failedAt: now(),
      };
      const send = async (letter: DeadLetter): Promise<void> => {
        await options.producer.send({
          topic: options.topic,
          acks: -1,
          messages: [
            {
              key: source.message.key ?? null,
              value: await options.codec.encodeRecord(DEAD_LETTER_RECORD, letter),
              headers: { 'dead-letter-reason': details.reason, [DEAD_LETTER_ID_HEADER]: id },
            },
          ],
        });
      };
      try {
        await send(record);
      } catch (error) {
        if (!isTooLarge(error)) throw error;
        // The original record plus why it failed is over the topic's limit: a letter that can
        // never be written would hold its conversation forever. Keep where the original sits
        // instead (replay then has nothing to put back; the operator reads it from the source).
        await send({
          ...record,
          value: null,
          error: `${record.error} (original value not kept: the letter was over the record limit; read it at ${source.topic}/${source.partition}@${source.message.offset})`,
        });
      }
      await options.redis.set(marker, WRITTEN, 'PX', WRITTEN_KEEP_MS);
      return 'written';
    },
  };
};
