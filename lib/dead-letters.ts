import type { IHeaders, KafkaMessage, Producer } from 'kafkajs';
import type { AvroCodec } from './registry.ts';

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
