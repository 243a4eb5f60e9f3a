import type { Consumer, EachBatchPayload } from 'kafkajs';

/**
 * Connects, subscribes and starts a keyed consumer's batch loop (the live one and the replay
 * reader alike): nothing is committed or resolved by kafkajs, the offsets are the consumer's to
 * commit once each message is finished, and four partitions are fetched at once.
 */
export const runBatches = async (
  consumer: Consumer,
  subscription: { readonly topics: readonly string[]; readonly fromBeginning: boolean },
  eachBatch: (payload: EachBatchPayload) => Promise<void>,
): Promise<void> => {
  await consumer.connect();
  await consumer.subscribe({ topics: [...subscription.topics], fromBeginning: subscription.fromBeginning });
  await consumer.run({
    autoCommit: false,
    eachBatchAutoResolve: false,
    partitionsConsumedConcurrently: 4,
    eachBatch,
  });
};
