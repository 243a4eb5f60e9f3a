import { randomBytes } from 'node:crypto';
import type { Kafka, KafkaMessage } from 'kafkajs';

/**
 * Every record of `topic` from the beginning up to the high-water marks as they are now: what
 * the broker stored, whoever wrote it. Fails naming the partitions it could not finish.
 */
export const readTopicToEnd = async (
  kafka: Kafka,
  topic: string,
  timeoutMs = 60000,
): Promise<(KafkaMessage & { partition: number })[]> => {
  const admin = kafka.admin();
  await admin.connect();
  const ends = new Map(
    (await admin.fetchTopicOffsets(topic)).map(({ partition, high }) => [partition, Number(high)]),
  );
  await admin.disconnect();
  const pending = new Set([...ends].filter(([, high]) => high > 0).map(([partition]) => partition));
  const records: (KafkaMessage & { partition: number })[] = [];
  if (pending.size === 0) return records;

  const consumer = kafka.consumer({
    groupId: `topic-reader-${randomBytes(4).toString('hex')}`,
    maxBytesPerPartition: 4 * 1024 * 1024,
  });
  await consumer.connect();
  try {
    await consumer.subscribe({ topic, fromBeginning: true });
    const finished = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`${topic}: partitions ${[...pending].join(', ')} not read to their end`)),
        timeoutMs,
      );
      consumer
        .run({
          autoCommit: false,
          eachMessage: async ({ partition, message }) => {
            const end = ends.get(partition) ?? 0;
            if (Number(message.offset) < end) records.push({ ...message, partition });
            if (Number(message.offset) >= end - 1) pending.delete(partition);
            if (pending.size === 0) {
              clearTimeout(timer);
              resolve();
            }
          },
        })
        .catch(reject);
    });
    await finished;
  } finally {
    await consumer.disconnect();
  }
  return records;
};

/** A record with nothing in it but its offset: where only a message's place on its topic counts. */
export const bareMessageAt = (offset: number): KafkaMessage => ({
  key: null,
  value: null,
  offset: String(offset),
  timestamp: '0',
  attributes: 0,
  headers: {},
});
