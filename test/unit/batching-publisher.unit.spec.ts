import assert from 'node:assert/strict';
import { Partitioners, type Message, type Producer, type ProducerBatch } from 'kafkajs';
import { pino } from 'pino';
import { ErrorCode, PipelineError } from '../../lib/errors.ts';
import {
  BatchingPublisher,
  RECORD_BATCH_ENVELOPE_BYTES,
  encodedRecordBytes,
  partitionOfKey as fastPartitionOfKey,
  type BatchingPublisherOptions,
  type TopicLimit,
} from '../../lib/kafka/batching-publisher.ts';

type FakeProducer = { readonly id: number; readonly batches: ProducerBatch[]; disconnected: boolean };

/**
 * Producers that record their sendBatch calls; `behaviour` decides each answer. The broker itself
 * (its size checks, sequence numbers) is exercised by the integration tests.
 */
const fakeProducers = (
  behaviour: (batch: ProducerBatch, producer: FakeProducer) => Promise<unknown> = async () => [],
) => {
  const producers: FakeProducer[] = [];
  const createProducer = (): Producer => {
    const state: FakeProducer = { id: producers.length + 1, batches: [], disconnected: false };
    producers.push(state);
    return {
      connect: async () => undefined,
      disconnect: async () => {
        state.disconnected = true;
      },
      sendBatch: async (batch: ProducerBatch) => {
        state.batches.push(batch);
        return behaviour(batch, state);
      },
    } as unknown as Producer;
  };
  return {
    producers,
    createProducer,
    batches: () => producers.flatMap((producer) => producer.batches),
  };
};

const silent = pino({ level: 'silent' });

const defaultOptions = (): BatchingPublisherOptions => ({
  createProducer: fakeProducers().createProducer,
  limits: new Map(),
  lingerMs: 5,
  maxBatchMessages: 100,
  sendTimeoutMs: 1000,
  failingForMs: 60000,
  logger: silent,
});

const publisherWith = async (
  createProducer: () => Producer,
  options: Partial<BatchingPublisherOptions> = {},
): Promise<BatchingPublisher> => {
  const publisher = new BatchingPublisher({ ...defaultOptions(), createProducer, ...options });
  await publisher.connect();
  return publisher;
};

/** An error shaped like kafkajs's: the broker's error code as `type`, under a retry wrapper. */
const kafkaError = (type: string): Error =>
  new Error(`KafkaJSNonRetriableError: ${type}`, { cause: Object.assign(new Error(type), { type }) });

const valuesOf = (batch: ProducerBatch | undefined): string[] =>
  (batch?.topicMessages ?? []).flatMap((entry) => entry.messages.map((message) => String(message.value)));

const partitioner = Partitioners.DefaultPartitioner();
const partitionOfKey = (topic: string, key: string, partitions: number): number =>
  partitioner({
    topic,
    message: { key, value: null },
    partitionMetadata: Array.from({ length: partitions }, (_, partitionId) => ({
      partitionErrorCode: 0,
      partitionId,
      leader: 0,
      replicas: [],
      isr: [],
      offlineReplicas: [],
    })),
  });
/** Keys that kafkajs's default partitioner puts on `partition`. */
const keysOnPartition = (topic: string, partition: number, partitions: number, count: number): string[] => {
  const keys: string[] = [];
  for (let index = 0; keys.length < count; index++)
    if (partitionOfKey(topic, `key-${index}`, partitions) === partition) keys.push(`key-${index}`);
  return keys;
};

const rejectionOf = async (promise: Promise<unknown>): Promise<PipelineError> => {
  const error = await promise.then(
    () => undefined,
    (reason: unknown) => reason,
  );
  assert.ok(error instanceof PipelineError, `expected a PipelineError, got ${String(error)}`);
  return error;
};

describe('batching publisher (linger for kafkajs)', () => {
  it('given concurrent publishes within the linger, when flushed, then they share one sendBatch with acks=all', async () => {
    const kafka = fakeProducers();
    const publisher = await publisherWith(kafka.createProducer, { lingerMs: 20 });
    await Promise.all([
      publisher.publish('t', [{ key: 'a', value: 'a' }]),
      publisher.publish('t', [{ key: 'b', value: 'b' }]),
      publisher.publish('u', [{ key: 'c', value: 'c' }]),
    ]);
    assert.equal(kafka.batches().length, 1);
    assert.equal(kafka.batches()[0]?.acks, -1);
    assert.deepEqual(
      kafka.batches()[0]?.topicMessages?.map((entry) => [entry.topic, entry.messages.length]),
      [
        ['t', 2],
        ['u', 1],
      ],
    );
  });

  it('given a full batch, when published, then it is sent without waiting for the linger', async () => {
    const kafka = fakeProducers();
    const publisher = await publisherWith(kafka.createProducer, { lingerMs: 60000, maxBatchMessages: 2 });
    await publisher.publish('t', [{ value: 'a' }, { value: 'b' }]);
    assert.equal(kafka.batches().length, 1);
  });

  it('given Kafka failing, when published, then every caller of that batch is rejected as Kafka unavailable (retriable)', async () => {
    const kafka = fakeProducers(async () => Promise.reject(new Error('broker down')));
    const publisher = await publisherWith(kafka.createProducer);
    const errors = await Promise.all([
      rejectionOf(publisher.publish('t', [{ value: 'a' }])),
      rejectionOf(publisher.publish('t', [{ value: 'b' }])),
    ]);
    assert.deepEqual(
      errors.map((error) => [error.code, error.retriable]),
      [
        [ErrorCode.kafkaUnavailable, true],
        [ErrorCode.kafkaUnavailable, true],
      ],
    );
  });

  it('given Kafka not answering, when the send timeout passes, then callers are rejected (ingest answers 503)', async () => {
    const kafka = fakeProducers(() => new Promise(() => undefined));
    const publisher = await publisherWith(kafka.createProducer, { lingerMs: 1, sendTimeoutMs: 50 });
    const error = await rejectionOf(publisher.publish('t', [{ value: 'a' }]));
    assert.equal(error.code, ErrorCode.kafkaUnavailable);
    assert.match(error.message, /did not finish within 50 ms/);
  });

  describe('one caller never harms another (issue 7)', () => {
    const limits = new Map<string, TopicLimit>([['raw', { maxBatchBytes: 10_000, partitions: 3 }]]);

    it('given a caller whose record the topic cannot store among concurrent callers, when flushed, then it alone fails with recordTooLarge and its record is never sent', async () => {
      const kafka = fakeProducers();
      const publisher = await publisherWith(kafka.createProducer, { limits, lingerMs: 20 });
      const small = ['a', 'b', 'c'].map((key) => publisher.publish('raw', [{ key, value: `small-${key}` }]));
      const large = rejectionOf(publisher.publish('raw', [{ key: 'x', value: 'L'.repeat(10_000) }]));
      await Promise.all(small);
      const error = await large;
      assert.equal(error.code, ErrorCode.recordTooLarge);
      assert.equal(error.retriable, false);
      assert.deepEqual(kafka.batches().flatMap(valuesOf).sort(), ['small-a', 'small-b', 'small-c']);
    });

    it('given medium records of different callers on one partition, when flushed, then no send holds more bytes on a partition than the topic stores', async () => {
      const kafka = fakeProducers();
      const publisher = await publisherWith(kafka.createProducer, { limits, lingerMs: 20 });
      const [first, second] = keysOnPartition('raw', 1, 3, 2) as [string, string];
      const [other] = keysOnPartition('raw', 2, 3, 1) as [string];
      const medium = (key: string): Message => ({ key, value: key.padEnd(6000, '.') });
      await Promise.all([
        publisher.publish('raw', [medium(first)]),
        publisher.publish('raw', [medium(second)]),
        publisher.publish('raw', [medium(other)]),
      ]);
      // Two medium records fit one send only when they are on different partitions.
      assert.equal(kafka.batches().length, 2);
      for (const batch of kafka.batches()) {
        const perPartition = new Map<number, number>();
        for (const message of batch.topicMessages?.[0]?.messages ?? []) {
          const partition = partitionOfKey('raw', String(message.key), 3);
          perPartition.set(partition, (perPartition.get(partition) ?? 0) + encodedRecordBytes(message));
        }
        for (const bytes of perPartition.values()) assert.ok(bytes <= 10_000 - RECORD_BATCH_ENVELOPE_BYTES);
      }
      assert.deepEqual(kafka.batches().flatMap(valuesOf).length, 3);
    });

    it('given Kafka refusing one record of a shared send as too large, when flushed, then callers are sent again one by one and only the guilty one fails', async () => {
      const kafka = fakeProducers(async (batch) => {
        if (valuesOf(batch).includes('guilty')) throw kafkaError('MESSAGE_TOO_LARGE');
        return [];
      });
      const publisher = await publisherWith(kafka.createProducer, { lingerMs: 20 });
      const innocent = ['a', 'b'].map((key) => publisher.publish('raw', [{ key, value: `ok-${key}` }]));
      const guilty = rejectionOf(publisher.publish('raw', [{ key: 'g', value: 'guilty' }]));
      await Promise.all(innocent);
      const error = await guilty;
      assert.equal(error.code, ErrorCode.recordTooLarge);
      assert.equal(error.retriable, false);
      assert.deepEqual(
        kafka.producers.at(-1)?.batches.map(valuesOf),
        [['ok-a'], ['ok-b'], ['guilty']],
        'after the shared send failed, each caller went alone',
      );
    });

    it('given a send failing with an out-of-order sequence, when the next caller publishes, then it is written by a new producer and the old one is disconnected', async () => {
      const kafka = fakeProducers(async (_batch, producer) => {
        if (producer.id === 1) throw kafkaError('OUT_OF_ORDER_SEQUENCE_NUMBER');
        return [];
      });
      const publisher = await publisherWith(kafka.createProducer);
      const error = await rejectionOf(publisher.publish('raw', [{ key: 'a', value: 'first' }]));
      assert.equal(error.code, ErrorCode.kafkaUnavailable);
      assert.equal(error.retriable, true);
      await publisher.publish('raw', [{ key: 'a', value: 'second' }]);
      assert.equal(kafka.producers.length, 2);
      assert.equal(kafka.producers[0]?.disconnected, true);
      assert.deepEqual(kafka.producers[1]?.batches.map(valuesOf), [['second']]);
    });

    it('given a multi-partition send refused for one record, when retried, then the retry goes through a new producer (kafkajs rolled back sequences of partitions the broker wrote)', async () => {
      const kafka = fakeProducers(async (batch) => {
        if (valuesOf(batch).includes('guilty')) throw kafkaError('MESSAGE_TOO_LARGE');
        return [];
      });
      const publisher = await publisherWith(kafka.createProducer, { limits, lingerMs: 20 });
      const [onOne] = keysOnPartition('raw', 1, 3, 1) as [string];
      const [onTwo] = keysOnPartition('raw', 2, 3, 1) as [string];
      const innocent = publisher.publish('raw', [{ key: onOne, value: 'innocent' }]);
      const guilty = rejectionOf(publisher.publish('raw', [{ key: onTwo, value: 'guilty' }]));
      await innocent;
      await guilty;
      assert.deepEqual(kafka.producers[0]?.batches.map(valuesOf), [['innocent', 'guilty']]);
      assert.equal(kafka.producers[0]?.disconnected, true);
      assert.deepEqual(kafka.producers[1]?.batches.map(valuesOf), [['innocent'], ['guilty']]);
    });

    it('given a timed-out send, when the next caller publishes, then a new producer writes it', async () => {
      const kafka = fakeProducers((_batch, producer) =>
        producer.id === 1 ? new Promise(() => undefined) : Promise.resolve([]),
      );
      const publisher = await publisherWith(kafka.createProducer, { sendTimeoutMs: 50 });
      await rejectionOf(publisher.publish('raw', [{ value: 'stuck' }]));
      await publisher.publish('raw', [{ value: 'next' }]);
      assert.equal(kafka.producers[0]?.disconnected, true);
      assert.deepEqual(kafka.producers[1]?.batches.map(valuesOf), [['next']]);
    });
  });

  it('given a linger of 0, when callers publish in one turn of the event loop, then they share one send', async () => {
    const kafka = fakeProducers();
    const publisher = await publisherWith(kafka.createProducer, { lingerMs: 0 });
    await Promise.all(['a', 'b', 'c'].map((value) => publisher.publish('t', [{ value }])));
    assert.deepEqual(kafka.batches().map(valuesOf), [['a', 'b', 'c']]);
  });

  describe('readiness', () => {
    it('given a failed write, when asked, then it reports failing writes until a write succeeds', async () => {
      let failing = true;
      const kafka = fakeProducers(async () => {
        if (failing) throw new Error('broker down');
        return [];
      });
      const publisher = await publisherWith(kafka.createProducer);
      assert.equal(publisher.isWriting(), true);
      await rejectionOf(publisher.publish('raw', [{ value: 'a' }]));
      assert.equal(publisher.isWriting(), false);
      failing = false;
      await publisher.publish('raw', [{ value: 'b' }]);
      assert.equal(publisher.isWriting(), true);
    });

    it('given a record refused as too large, when asked, then writes are not reported failing (the caller was at fault)', async () => {
      const kafka = fakeProducers();
      const publisher = await publisherWith(kafka.createProducer, {
        limits: new Map([['raw', { maxBatchBytes: 1000, partitions: 1 }]]),
      });
      await rejectionOf(publisher.publish('raw', [{ value: 'L'.repeat(2000) }]));
      assert.equal(publisher.isWriting(), true);
    });
  });
});

describe('murmur2 partitioning', () => {
  it('given keys of every length (strings and bytes), when partitioned, then each lands where kafkajs (and the Java client) puts it', () => {
    const keys = [
      '',
      'a',
      'ab',
      'abc',
      'abcd',
      'org-1',
      'portal:123456',
      'émoji-🙂',
      ...Array.from({ length: 2000 }, (_, index) => `org-${index}-${'x'.repeat(index % 37)}`),
    ];
    const kafkajs = Partitioners.DefaultPartitioner();
    const metadata = (partitions: number) =>
      Array.from({ length: partitions }, (_, partitionId) => ({
        partitionErrorCode: 0,
        partitionId,
        leader: 0,
        replicas: [],
        isr: [],
        offlineReplicas: [],
      }));
    for (const partitions of [1, 3, 7, 64]) {
      for (const key of keys)
        assert.equal(
          fastPartitionOfKey(key, partitions),
          partitionOfKey('t', key, partitions),
          `key "${key}"`,
        );
      const bytes = Buffer.from([0xff, 0x80, 0x01, 0x7f, 0x00]);
      assert.equal(
        fastPartitionOfKey(bytes, partitions),
        kafkajs({
          topic: 't',
          partitionMetadata: metadata(partitions),
          message: { key: bytes, value: null },
        }),
      );
    }
  });
});
