import assert from 'node:assert/strict';
import type { Producer, ProducerBatch } from 'kafkajs';
import { BatchingPublisher } from '../../lib/kafka/batching-publisher.ts';

/** Records sendBatch calls; the broker itself is exercised by the integration tests. */
const recordingProducer = (behaviour: (batch: ProducerBatch) => Promise<unknown> = async () => []) => {
  const batches: ProducerBatch[] = [];
  const producer = {
    sendBatch: async (batch: ProducerBatch) => {
      batches.push(batch);
      return behaviour(batch);
    },
  } as unknown as Producer;
  return { producer, batches };
};

describe('batching publisher (linger for kafkajs)', () => {
  it('given concurrent publishes within the linger, when flushed, then they share one sendBatch with acks=all', async () => {
    const { producer, batches } = recordingProducer();
    const publisher = new BatchingPublisher(producer, {
      lingerMs: 20,
      maxBatchMessages: 100,
      sendTimeoutMs: 1000,
    });
    await Promise.all([
      publisher.publish('t', [{ value: 'a' }]),
      publisher.publish('t', [{ value: 'b' }]),
      publisher.publish('u', [{ value: 'c' }]),
    ]);
    assert.equal(batches.length, 1);
    assert.equal(batches[0]?.acks, -1);
    assert.deepEqual(
      batches[0]?.topicMessages?.map((entry) => [entry.topic, entry.messages.length]),
      [
        ['t', 2],
        ['u', 1],
      ],
    );
  });

  it('given a full batch, when published, then it is sent without waiting for the linger', async () => {
    const { producer, batches } = recordingProducer();
    const publisher = new BatchingPublisher(producer, {
      lingerMs: 60000,
      maxBatchMessages: 2,
      sendTimeoutMs: 1000,
    });
    await publisher.publish('t', [{ value: 'a' }, { value: 'b' }]);
    assert.equal(batches.length, 1);
  });

  it('given Kafka failing, when published, then every caller of that batch is rejected', async () => {
    const { producer } = recordingProducer(async () => Promise.reject(new Error('broker down')));
    const publisher = new BatchingPublisher(producer, {
      lingerMs: 5,
      maxBatchMessages: 100,
      sendTimeoutMs: 1000,
    });
    const results = await Promise.allSettled([
      publisher.publish('t', [{ value: 'a' }]),
      publisher.publish('t', [{ value: 'b' }]),
    ]);
    assert.deepEqual(
      results.map((result) => result.status),
      ['rejected', 'rejected'],
    );
  });

  it('given Kafka not answering, when the send timeout passes, then callers are rejected (ingest answers 503)', async () => {
    const { producer } = recordingProducer(() => new Promise(() => undefined));
    const publisher = new BatchingPublisher(producer, {
      lingerMs: 1,
      maxBatchMessages: 100,
      sendTimeoutMs: 50,
    });
    await assert.rejects(publisher.publish('t', [{ value: 'a' }]), /did not acknowledge within 50 ms/);
  });
});
