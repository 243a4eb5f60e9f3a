import type { Kafka, Message } from 'kafkajs';
import { ErrorCode, PipelineError } from '../errors.ts';
import type { Logger } from '../log.ts';
import { BatchingPublisher } from './batching-publisher.ts';
import { createDurableProducer, readTopicLimits, whileLeadersSettle } from './client.ts';

/**
 * Durable writes (acks=all) of many concurrent callers, sharing requests: kafkajs has no linger,
 * and its idempotent producer sends one request at a time, so callers that each `send` on their
 * own queue behind each other (at a few hundred events/s, a new session's link would wait about
 * 0.5 s behind the others). One caller's refused record never fails another's (BatchingPublisher).
 */
export type RecordWriter = {
  /**
   * Resolves once Kafka acknowledged the messages. Rejects with PipelineError recordTooLarge (not
   * retriable) when a message is larger than the topic stores, kafkaUnavailable (retriable) when
   * Kafka fails; `what` names the records in the error.
   */
  readonly write: (topic: string, messages: Message[], what?: string) => Promise<void>;
  /** The last call at stop: sends what waits, waits for what is under way, disconnects. */
  readonly close: () => Promise<void>;
};

/** How long a starting writer waits out a broker that does not answer (a restart takes seconds). */
const STARTUP_KAFKA_WAIT_MS = 60_000;

/** Its own producer: after a failed send it may be replaced, which must not cut other writers. */
export const createRecordWriter = async (options: {
  readonly kafka: Kafka;
  /** The topics it writes: their size limits are read now. */
  readonly topics: readonly string[];
  readonly logger: Logger;
}): Promise<RecordWriter> => {
  const { kafka } = options;
  // Start-up steps: a broker restarting meanwhile is waited out (STARTUP_KAFKA_WAIT_MS), not an exit.
  const limits = await whileLeadersSettle(
    `reading the size limits of ${options.topics.join(', ')}`,
    async () => {
      const admin = kafka.admin();
      await admin.connect();
      return readTopicLimits(admin, options.topics).finally(() => admin.disconnect());
    },
    STARTUP_KAFKA_WAIT_MS,
  );
  const batching = new BatchingPublisher({
    createProducer: () => createDurableProducer(kafka),
    limits,
    lingerMs: 1,
    maxBatchMessages: 500,
    sendTimeoutMs: 10000,
    failingForMs: 30000,
    logger: options.logger,
  });
  await whileLeadersSettle('connecting a producer', () => batching.connect(), STARTUP_KAFKA_WAIT_MS);
  return {
    write: (topic, messages, what = `${messages.length} records`) =>
      batching.publish(topic, messages).catch((error: unknown) => {
        if (error instanceof PipelineError && error.code === ErrorCode.recordTooLarge)
          throw new PipelineError(
            ErrorCode.recordTooLarge,
            `${what} not written to ${topic}: ${error.message}`,
            {
              retriable: false,
              cause: error,
            },
          );
        throw new PipelineError(
          ErrorCode.kafkaUnavailable,
          `${what} not written to ${topic}: ${String(error)}`,
          {
            retriable: true,
            cause: error,
          },
        );
      }),
    close: () => batching.close(),
  };
};
