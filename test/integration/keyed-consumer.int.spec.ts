import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { Kafka, KafkaMessage } from 'kafkajs';
import {
  createDeadLetterWriter,
  readDeadLetters,
  type DeadLetterWriter,
} from '../../lib/dead-letters/index.ts';
import {
  createKafka,
  done,
  ensureTopics,
  KeyedConsumer,
  type HandlerOutcome,
} from '../../lib/kafka/index.ts';
import { createLogger } from '../../lib/log.ts';
import { createRedis, type Redis } from '../../lib/redis.ts';
import { AvroCodec } from '../../lib/registry.ts';
import { sleep, waitFor } from '../support/pipeline.ts';

const logger = createLogger('keyed-consumer-test', 'silent');

/** The consumer contract of lib/kafka/keyed-consumer/, on the real broker. */
describe('keyed consumer (real Kafka)', function () {
  this.timeout(60000);
  // Built in before(): KAFKA_BROKERS is set by the global setup, after this file is loaded.
  let kafka: Kafka;
  let topic: string;
  let group: string;
  let deadLetterTopic: string;
  let codec: AvroCodec;
  let redis: Redis;
  let deadLetters: DeadLetterWriter;
  const runId = randomBytes(4).toString('hex');

  before(async () => {
    codec = new AvroCodec({
      url: process.env.SCHEMA_REGISTRY_URL ?? assert.fail('SCHEMA_REGISTRY_URL is not set'),
      subjectPrefix: `test-keyed-${runId}-`,
    });
    await codec.registerAll();
    redis = createRedis(process.env.REDIS_URL ?? assert.fail('REDIS_URL is not set'), logger);
    kafka = createKafka({
      clientId: 'keyed-consumer-test',
      brokers: (
        process.env.KAFKA_BROKERS ??
        assert.fail('KAFKA_BROKERS is not set: run through mocha (test/setup.ts)')
      ).split(','),
      logger,
    });
  });
  after(() => redis?.disconnect());

  beforeEach(async () => {
    const id = randomBytes(4).toString('hex');
    topic = `test-keyed-${id}`;
    group = `test-keyed-${id}`;
    deadLetterTopic = `test-keyed-${id}-dead-letters`;
    const admin = kafka.admin();
    await admin.connect();
    await ensureTopics(
      admin,
      [
        { name: topic, compacted: false, partitions: 1 },
        { name: deadLetterTopic, compacted: false, partitions: 1 },
      ],
      { replicationFactor: 1 },
    );
    await admin.disconnect();
    const producer = kafka.producer();
    await producer.connect();
    producers.push(producer);
    deadLetters = createDeadLetterWriter({
      service: 'keyed-consumer-test',
      topic: deadLetterTopic,
      producer,
      codec,
      redis,
      keyPrefix: `test:keyed:${id}:`,
    });
  });
  const producers: { disconnect: () => Promise<void> }[] = [];
  afterEach(async () => {
    await Promise.all(producers.splice(0).map((producer) => producer.disconnect()));
  });

  /** Records on the dead-letter topic, duplicates included (readers would drop those). */
  const recordsOnDeadLetterTopic = async (): Promise<number> => {
    const admin = kafka.admin();
    await admin.connect();
    try {
      return (await admin.fetchTopicOffsets(deadLetterTopic)).reduce(
        (sum, { high }) => sum + Number(high),
        0,
      );
    } finally {
      await admin.disconnect();
    }
  };
  const committedOffset = async (): Promise<number> => {
    const admin = kafka.admin();
    await admin.connect();
    try {
      const [offsets] = await admin.fetchOffsets({ groupId: group, topics: [topic] });
      return Number(offsets?.partitions[0]?.offset ?? -1);
    } finally {
      await admin.disconnect();
    }
  };

  const produce = async (
    messages: { key: string; value: string; headers?: Record<string, string> }[],
  ): Promise<void> => {
    const producer = kafka.producer();
    await producer.connect();
    await producer.send({ topic, acks: -1, messages });
    await producer.disconnect();
  };
  const consumerWith = (
    handle: (message: KafkaMessage) => Promise<HandlerOutcome | void>,
    options: { commitIntervalMs?: number; rawConsumer?: ReturnType<Kafka['consumer']> } = {},
  ) =>
    new KeyedConsumer({
      consumer:
        options.rawConsumer ??
        kafka.consumer({ groupId: group, sessionTimeout: 6000, heartbeatInterval: 500 }),
      topics: [topic],
      orderingKey: (message) => message.key?.toString() ?? '',
      handle: async (message) => (await handle(message)) ?? done,
      deadLetters,
      logger,
      crashBudget: { attempts: 3, initialDelayMs: 20, maxDelayMs: 100 },
      commitIntervalMs: options.commitIntervalMs ?? 50,
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
        return done;
      },
      deadLetters,
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

  it('given a handler that always throws on one message, then it gets the crash budget of attempts, then a handler_crashed dead letter, and its key goes on', async () => {
    await produce([
      { key: 'a', value: 'a1' },
      { key: 'a', value: 'a2-crashes', headers: { 'ordering-key': 'org:thread:a' } },
      { key: 'a', value: 'a3' },
    ]);
    const seen: string[] = [];
    let attempts = 0;
    const consumer = consumerWith(async (message) => {
      const value = message.value?.toString() ?? '';
      if (value === 'a2-crashes') {
        attempts++;
        throw new TypeError('cannot read properties of undefined');
      }
      seen.push(value);
    });
    await consumer.start();
    try {
      await waitFor('a3, behind the crashing message', () => seen.includes('a3'));
      assert.equal(attempts, 3, 'the crash budget: three attempts, no more');
      assert.deepEqual(seen, ['a1', 'a3']);
      const { letters } = await readDeadLetters({ kafka, codec, topic: deadLetterTopic });
      assert.equal(letters.length, 1);
      const [{ letter }] = letters as [(typeof letters)[number]];
      assert.equal(letter.reason, 'handler_crashed');
      assert.equal(letter.attempts, 3);
      assert.match(letter.error, /TypeError: cannot read properties of undefined/);
      assert.equal(letter.service, 'keyed-consumer-test');
      assert.equal(letter.sourceTopic, topic);
      assert.equal(letter.offset, '1');
      assert.equal(letter.key?.toString(), 'a', 'keyed like the original, so a replay keeps its order');
      assert.equal(letter.value?.toString(), 'a2-crashes');
      assert.deepEqual(letter.headers, { 'ordering-key': 'org:thread:a' }, 'the original headers are kept');
      await waitFor('the offset committed past all three', async () => (await committedOffset()) === 3);
    } finally {
      await consumer.stop();
    }
  });

  it('given a dead-letter outcome, when the consumer dies before committing and another takes over, then the poison is not handled again and the letter not written again', async () => {
    await produce([
      { key: 'a', value: 'a1' },
      { key: 'a', value: 'a2-poison' },
      { key: 'a', value: 'a3' },
    ]);
    const poison = async (message: KafkaMessage): Promise<HandlerOutcome | void> =>
      message.value?.toString() === 'a2-poison'
        ? {
            kind: 'dead-letter',
            reason: 'malformed_event',
            error: 'occurredAt is not a long',
            attempts: 1,
            orgId: 'org-1',
            eventType: 'test',
            eventId: null,
          }
        : undefined;
    const firstSeen: string[] = [];
    // Commits only at stop, which a crash never reaches: everything is redelivered.
    const raw = kafka.consumer({ groupId: group, sessionTimeout: 6000, heartbeatInterval: 500 });
    const first = consumerWith(
      async (message) => {
        firstSeen.push(message.value?.toString() ?? '');
        return poison(message);
      },
      { commitIntervalMs: 600_000, rawConsumer: raw },
    );
    await first.start();
    await waitFor('the first consumer past the poison', () => firstSeen.includes('a3'));
    assert.equal(await recordsOnDeadLetterTopic(), 1);
    // The crash: the group connection goes, nothing is committed.
    await raw.disconnect();
    assert.equal(await committedOffset(), -1, 'nothing committed');

    const secondSeen: string[] = [];
    const second = consumerWith(async (message) => {
      secondSeen.push(message.value?.toString() ?? '');
      return poison(message);
    });
    await second.start();
    try {
      await waitFor('the redelivery past the poison', () => secondSeen.includes('a3'), 30000);
      // The poison stays with the dead letters (only a replay brings it back): handled now, it
      // could be applied after later messages of its conversation that the first consumer applied.
      assert.deepEqual(secondSeen, ['a1', 'a3'], 'everything else redelivered, in order');
      assert.equal(await recordsOnDeadLetterTopic(), 1, 'the letter was not written a second time');
      await waitFor('the offset committed past the poison', async () => (await committedOffset()) === 3);
    } finally {
      await second.stop();
      await first.stop().catch(() => undefined);
    }
  });

  it('given a record just under the size limit whose letter would be over it, then the letter is written without the value, and its key goes on', async () => {
    // The broker's default limit is 1,048,588 bytes a batch: the record fits, the letter (the
    // record plus its reason, error and source) does not.
    const large = 'x'.repeat(1_048_400);
    await produce([
      { key: 'a', value: large },
      { key: 'a', value: 'a2' },
    ]);
    const seen: string[] = [];
    const consumer = consumerWith(async (message) => {
      const value = message.value?.toString() ?? '';
      if (value !== large) return void seen.push(value);
      return {
        kind: 'dead-letter',
        reason: 'opencx_rejected',
        error: '413 Payload Too Large',
        attempts: 1,
        orgId: null,
        eventType: null,
        eventId: null,
      };
    });
    await consumer.start();
    try {
      await waitFor('a2, behind the large record', () => seen.includes('a2'), 30000);
      const { letters } = await readDeadLetters({ kafka, codec, topic: deadLetterTopic });
      assert.equal(letters.length, 1);
      const [{ letter }] = letters as [(typeof letters)[number]];
      assert.equal(letter.value, null);
      assert.equal(letter.offset, '0');
      assert.match(
        letter.error,
        /^413 Payload Too Large \(original value not kept: .* read it at test-keyed-\w+\/0@0\)$/,
      );
    } finally {
      await consumer.stop();
    }
  });
});
