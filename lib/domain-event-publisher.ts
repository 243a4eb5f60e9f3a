import type { Producer } from 'kafkajs';
import { orderingKeyOf, type PipelineEvent } from './domain-events.ts';
import { ErrorCode, PipelineError } from './errors.ts';
import { BatchingPublisher } from './kafka/index.ts';
import type { AvroCodec } from './registry.ts';

/** Writes pipeline events (Avro) keyed by conversation; resolves once Kafka acknowledged them (acks=all). */
export type DomainEventPublisher = {
  readonly publish: (topic: string, events: readonly PipelineEvent[]) => Promise<void>;
  /** Sends what waits and waits for what is under way. */
  readonly drain: () => Promise<void>;
};

export const createDomainEventPublisher = (producer: Producer, codec: AvroCodec): DomainEventPublisher => {
  // Many conversations emit at once: their events share requests (kafkajs has no linger).
  const batching = new BatchingPublisher(producer, {
    lingerMs: 1,
    maxBatchMessages: 500,
    sendTimeoutMs: 10000,
  });
  return {
    publish: async (topic, events) => {
      const messages = await Promise.all(
        events.map(async (event) => ({
          key: orderingKeyOf(event),
          value: await codec.encodeEvent(event),
          headers: { 'event-type': event.type, 'event-id': event.eventId },
        })),
      );
      await batching.publish(topic, messages).catch((error: unknown) => {
        throw new PipelineError(
          ErrorCode.kafkaUnavailable,
          `events not written to ${topic}: ${String(error)}`,
          { retriable: true, cause: error },
        );
      });
    },
    drain: () => batching.drain(),
  };
};
