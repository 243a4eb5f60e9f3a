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

/** The broker's MESSAGE_TOO_LARGE (kafkajs wraps it as the cause of a non-retriable error): no retry fixes it. */
const isTooLarge = (error: unknown): boolean =>
  error instanceof Error &&
  ((error as { type?: unknown }).type === 'MESSAGE_TOO_LARGE' || isTooLarge(error.cause));

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
        if (isTooLarge(error))
          throw new PipelineError(ErrorCode.recordTooLarge, `events refused by ${topic}: ${String(error)}`, {
            retriable: false,
            cause: error,
          });
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
