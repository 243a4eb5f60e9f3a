import type { Message } from 'kafkajs';
import type { TopicLimit } from './record-budget.ts';

/**
 * Kafka's murmur2 (the Java client's `Utils.murmur2`, which kafkajs's DefaultPartitioner also
 * implements, on emulated 64-bit Longs: a fifth of ingest's CPU at 100-event batches), in 32-bit
 * integer arithmetic. A unit test checks it against kafkajs's on many keys.
 */
export const murmur2 = (key: Buffer | string): number => {
  const data = typeof key === 'string' ? Buffer.from(key) : key;
  const length = data.length;
  const m = 0x5bd1e995;
  let h = (0x9747b28c ^ length) | 0;
  const length4 = length >>> 2;
  for (let i = 0; i < length4; i++) {
    const i4 = i * 4;
    let k =
      (data[i4] as number) |
      ((data[i4 + 1] as number) << 8) |
      ((data[i4 + 2] as number) << 16) |
      ((data[i4 + 3] as number) << 24);
    k = Math.imul(k, m);
    k ^= k >>> 24;
    k = Math.imul(k, m);
    h = Math.imul(h, m) ^ k;
  }
  const tail = length & ~3;
  const rest = length % 4;
  if (rest === 3) h ^= (data[tail + 2] as number) << 16;
  if (rest >= 2) h ^= (data[tail + 1] as number) << 8;
  if (rest >= 1) {
    h ^= data[tail] as number;
    h = Math.imul(h, m);
  }
  h ^= h >>> 13;
  h = Math.imul(h, m);
  h ^= h >>> 15;
  return h | 0;
};

/** The partition kafkajs's DefaultPartitioner (and Java's) gives a keyed record. */
export const partitionOfKey = (key: Buffer | string, partitions: number): number =>
  (murmur2(key) & 0x7fffffff) % partitions;

/**
 * The partition kafkajs's default partitioner would choose for a record (murmur2 of the key, as
 * Java's), its partition if it names one, undefined for a keyless record (kafkajs then picks one
 * round-robin). String keys are few (organisations), hashing each record was not: they are cached.
 */
export class KeyPartitions {
  readonly #partitionByKey = new Map<string, number>();

  of(topic: string, message: Message, limit: TopicLimit): number | undefined {
    if (message.partition !== undefined) return message.partition;
    const key = message.key;
    if (key === null || key === undefined) return undefined;
    if (typeof key !== 'string') return partitionOfKey(key, limit.partitions);
    const cacheKey = `${topic}\0${limit.partitions}\0${key}`;
    let partition = this.#partitionByKey.get(cacheKey);
    if (partition === undefined) {
      partition = partitionOfKey(key, limit.partitions);
      // Bounded: a publisher keyed by something with many values just hashes again.
      if (this.#partitionByKey.size >= 10_000) this.#partitionByKey.clear();
      this.#partitionByKey.set(cacheKey, partition);
    }
    return partition;
  }
}
