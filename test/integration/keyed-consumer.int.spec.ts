import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { Kafka, KafkaMessage } from 'kafkajs';
import { createKafka, ensureTopics, KeyedConsumer } from '../../lib/kafka/index.ts';
import { createLogger } from '../../lib/log.ts';
import { sleep, waitFor } from '../support/pipeline.ts';

const logger = createLogger('keyed-consumer-test', 'silent');

/** The consumer contract of lib/kafka/keyed-consumer.ts, on the real broker. */
describe('keyed consumer (real Kafka)', function () {
  this.timeout(60000);
  // Built in before(): KAFKA_BROKERS is set by the global setup, after this file is loaded.
  let kafka: Kafka;
  let topic: string;
  let group: string;

  before(() => {
    kafka = createKafka({
      clientId: 'keyed-consumer-test',
      brokers: (
        process.env.KAFKA_BROKERS ??
        assert.fail('KAFKA_BROKERS is not set: run through mocha (test/setup.ts)')
      ).split(','),
      logger,
    });
  });

  beforeEach(async () => {
    const id = randomBytes(4).toString('hex');
    topic = `test-keyed-${id}`;
    group = `test-keyed-${id}`;
    const admin = kafka.admin();
    await admin.connect();
    await ensureTopics(admin, [{ name: topic, compacted: false, partitions: 1 }], { replicationFactor: 1 });
    await admin.disconnect();
  });

  const produce = async (messages: { key: string; value: string }[]): Promise<void> => {
    const producer = kafka.producer();
    await producer.connect();
    await producer.send({ topic, acks: -1, messages });
    await producer.disconnect();
  };
  const consumerWith = (handle: (message: KafkaMessage) => Promise<void>) =>
    new KeyedConsumer({
      consumer: kafka.consumer({ groupId: group, sessionTimeout: 6000, heartbeatInterval: 500 }),
      topics: [topic],
      orderingKey: (message) => message.key?.toString() ?? '',
      handle: (message) => handle(message),
      logger,
      commitIntervalMs: 50,
    });

  it('given a handler that fails once on a message, then that message is retried, its key waits, and other keys go on', async () => {
    await produce([
      { key: 'a', value: 'a1' },
      { key: 'a', value: 'a2' },
      { key: 'b', value: 'b1' },
      { key: 'a', value: 'a3' },
      { key: 'b', value: 'b2' },
    ]);
    const seen: string[] = [];
    let failedOnce = false;
    const consumer = consumerWith(async (message) => {
      const value = message.value?.toString() ?? '';
      if (value === 'a2' && !failedOnce) {
        failedOnce = true;
        await sleep(300);
        throw new Error('transient');
      }
      seen.push(value);
    });
    await consumer.start();
    try {
      await waitFor('all five handled', () => seen.length === 5);
      assert.deepEqual(
        seen.filter((value) => value.startsWith('a')),
        ['a1', 'a2', 'a3'],
        'key a in order, a2 retried before a3',
      );
      assert.ok(seen.indexOf('b2') < seen.indexOf('a2'), 'key b did not wait for the retry of a2');
    } finally {
      await consumer.stop();
    }
  });

  it('given a key stuck when the consumer stops, when a new consumer starts, then only unfinished work is redelivered', async () => {
    await produce([
      { key: 'a', value: 'a1' },
      { key: 'b', value: 'b1' },
      { key: 'a', value: 'a2-stuck' },
      { key: 'b', value: 'b2' },
      { key: 'a', value: 'a3' },
    ]);
    const firstRun: string[] = [];
    const first = consumerWith(async (message) => {
      const value = message.value?.toString() ?? '';
      if (value === 'a2-stuck') await new Promise(() => undefined); // never finishes: a process about to die
      firstRun.push(value);
    });
    await first.start();
    await waitFor('a1, b1 and b2 handled', () =>
      ['a1', 'b1', 'b2'].every((value) => firstRun.includes(value)),
    );
    await sleep(300); // let the commit happen
    await first.stop();

    const secondRun: string[] = [];
    const second = consumerWith(async (message) => void secondRun.push(message.value?.toString() ?? ''));
    await second.start();
    try {
      await waitFor('the redelivery', () => secondRun.includes('a3'), 30000);
      await sleep(500);
      // Offsets are committed up to the first unfinished message (a2-stuck, offset 2): b2 comes
      // again (harmless: handlers are idempotent), a1 and b1 do not.
      assert.deepEqual(
        secondRun,
        ['a2-stuck', 'b2', 'a3'].filter((value) => secondRun.includes(value)),
      );
      assert.ok(
        !secondRun.includes('a1') && !secondRun.includes('b1'),
        'finished work before the stuck message is not redelivered',
      );
      assert.ok(secondRun.includes('a2-stuck'), 'the unfinished message is redelivered');
      assert.deepEqual(
        secondRun.filter((value) => value.startsWith('a')),
        ['a2-stuck', 'a3'],
        'in order',
      );
    } finally {
      await second.stop();
    }
  });

  it('given one partition over its in-memory budget (a throttled backlog), when another partition gets messages, then they are still handled', async () => {
    // Regression (found by bench/isolation.bench.ts): the back-pressure waited inside eachBatch,
    // and kafkajs fetches no partition until every batch returned: all portals stopped.
    const admin = kafka.admin();
    await admin.connect();
    const split = `${topic}-split`;
    await ensureTopics(admin, [{ name: split, compacted: false, partitions: 2 }], { replicationFactor: 1 });
    await admin.disconnect();
    const producer = kafka.producer();
    await producer.connect();
    let releaseA: () => void = () => undefined;
    const aBlocked = new Promise<void>((resolve) => (releaseA = resolve));
    const handled: string[] = [];
    const consumer = new KeyedConsumer({
      consumer: kafka.consumer({ groupId: `${group}-split`, sessionTimeout: 6000, heartbeatInterval: 500 }),
      topics: [split],
      orderingKey: (message) => message.key?.toString() ?? '',
      handle: async (message) => {
        const value = message.value?.toString() ?? '';
        if (value.startsWith('a')) await aBlocked;
        handled.push(value);
      },
      logger,
      maxBufferedMessages: 3,
      commitIntervalMs: 50,
    });
    await consumer.start();
    try {
      const aMessages = Array.from({ length: 10 }, (_, index) => ({
        key: `a${index}`,
        value: `a${index}`,
        partition: 0,
      }));
      await producer.send({ topic: split, acks: -1, messages: aMessages });
      await waitFor('portal A backlog in memory', () => consumer.buffered >= 10);
      await producer.send({
        topic: split,
        acks: -1,
        messages: [0, 1, 2].map((index) => ({ key: `b${index}`, value: `b${index}`, partition: 1 })),
      });
      await waitFor(
        'portal B handled while A is stuck',
        () => ['b0', 'b1', 'b2'].every((value) => handled.includes(value)),
        15000,
      );
      assert.ok(!handled.some((value) => value.startsWith('a')), 'A is still stuck');
      releaseA();
      await waitFor('A drained', () => handled.filter((value) => value.startsWith('a')).length === 10);
    } finally {
      releaseA();
      await consumer.stop();
      await producer.disconnect();
    }
  });
});
