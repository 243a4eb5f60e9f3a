import type { Consumer, EachBatchPayload, KafkaMessage } from 'kafkajs';
import type { Logger } from '../log.ts';

export type KeyedHandler = (message: KafkaMessage, partition: number, topic: string) => Promise<void>;

export type KeyedConsumerOptions = {
  readonly consumer: Consumer;
  readonly topics: readonly string[];
  /** Messages with the same ordering key are handled one after another, in offset order. */
  readonly orderingKey: (message: KafkaMessage) => string;
  readonly handle: KeyedHandler;
  /** How many ordering keys of one batch run at once. */
  readonly keyConcurrency: number;
  readonly partitionsConsumedConcurrently: number;
  readonly logger: Logger;
};

/**
 * Runs one batch: messages grouped by ordering key (one conversation), groups in parallel, each
 * group in order. The batch's offsets are committed only when every group is done, so a crash
 * anywhere redelivers the unfinished work (handlers are idempotent). A handler that throws fails
 * the batch; kafkajs then redelivers from the last committed offset.
 */
export const handleBatchByKey = async (
  payload: Pick<EachBatchPayload, 'batch' | 'heartbeat' | 'resolveOffset' | 'commitOffsetsIfNecessary' | 'isRunning' | 'isStale'>,
  options: Pick<KeyedConsumerOptions, 'orderingKey' | 'handle' | 'keyConcurrency'>,
): Promise<void> => {
  const { batch } = payload;
  const groups = new Map<string, KafkaMessage[]>();
  for (const message of batch.messages) {
    const key = options.orderingKey(message);
    const group = groups.get(key);
    if (group) group.push(message);
    else groups.set(key, [message]);
  }

  // Heartbeat on a timer so a slow group does not get the consumer thrown out of its group.
  const beat = setInterval(() => {
    payload.heartbeat().catch(() => undefined);
  }, 1000);
  try {
    const queue = [...groups.values()];
    const worker = async (): Promise<void> => {
      for (let group = queue.shift(); group; group = queue.shift()) {
        for (const message of group) {
          if (!payload.isRunning() || payload.isStale()) return;
          await options.handle(message, batch.partition, batch.topic);
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(options.keyConcurrency, queue.length) }, worker));
  } finally {
    clearInterval(beat);
  }
  if (!payload.isRunning() || payload.isStale()) return;
  payload.resolveOffset(batch.lastOffset());
  await payload.commitOffsetsIfNecessary();
};

export const runKeyedConsumer = async (options: KeyedConsumerOptions): Promise<void> => {
  await options.consumer.connect();
  await options.consumer.subscribe({ topics: [...options.topics], fromBeginning: true });
  await options.consumer.run({
    eachBatchAutoResolve: false,
    autoCommit: true,
    partitionsConsumedConcurrently: options.partitionsConsumedConcurrently,
    eachBatch: (payload) => handleBatchByKey(payload, options),
  });
};
