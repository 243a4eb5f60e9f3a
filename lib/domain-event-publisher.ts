import type { Kafka } from 'kafkajs';
import { orderingKeyOf, type PipelineEvent } from './domain-events.ts';
import { createRecordWriter } from './kafka/record-writer.ts';
import type { Logger } from './log.ts';
import type { AvroCodec } from './registry.ts';

/** Writes pipeline events (Avro) keyed by conversation; resolves once Kafka acknowledged them (acks=all). */
export type DomainEventPublisher = {
  /**
   * Rejects with PipelineError recordTooLarge (not retriable: dead-letter the cause) when an
   * event is larger than the topic stores, kafkaUnavailable (retriable) when Kafka fails.
   */
  readonly publish: (topic: string, events: readonly PipelineEvent[]) => Promise<void>;
  /** The last call at stop: sends what waits, waits for what is under way, disconnects its producer. */
  readonly drain: () => Promise<void>;
};

/**
 * The publisher has its own producer, not the service's shared one: after a failed send it may
 * replace the producer (see BatchingPublisher), which must not cut the organisation and
 * session-link writes that use the shared one.
 */
export const createDomainEventPublisher = async (options: {
  readonly kafka: Kafka;
  readonly codec: AvroCodec;
  /** The topics it writes: their size limits are read now. */
  readonly topics: readonly string[];
  readonly logger: Logger;
}): Promise<DomainEventPublisher> => {
  const { codec } = options;
  // Many conversations emit at once: their events share requests.
  const writer = await createRecordWriter(options);
  return {
    publish: async (topic, events) => {
      const messages = await Promise.all(
        events.map(async (event) => ({
          key: orderingKeyOf(event),
          value: await codec.encodeEvent(event),
          headers: { 'event-type': event.type, 'event-id': event.eventId },
        })),
      );
      await writer.write(topic, messages, `events ${events.map((event) => event.eventId).join(', ')}`);
    },
    drain: () => writer.close(),
  };
};
