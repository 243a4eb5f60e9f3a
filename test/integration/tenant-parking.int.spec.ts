import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { Kafka, KafkaMessage } from 'kafkajs';
import { createDeadLetterWriter, type DeadLetterWriter } from '../../lib/dead-letters/index.ts';
import {
  createKafka,
  done,
  ensureTopics,
  KeyedConsumer,
  type HandlerOutcome,
} from '../../lib/kafka/index.ts';
import { createTenantGate, type TenantGate } from '../../lib/kafka/tenant-gate.ts';
import { createLogger } from '../../lib/log.ts';
import { createRedis, type Redis } from '../../lib/redis.ts';
import { AvroCodec } from '../../lib/registry.ts';
import { waitFor } from '../support/pipeline.ts';

const logger = createLogger('tenant-parking-test', process.env.TEST_LOG_LEVEL ?? 'silent');

/**
 * Parking a tenant that must wait (lib/kafka/keyed-consumer/tenant-parking.ts, TenantParking), on the real
 * broker: one partition shared by a waiting tenant A and a flowing tenant B. Records are keyed
 * `<tenant>:<conversation>` and their value is `<conversation>#<sequence>`.
 */
describe('keyed consumer: a waiting tenant is parked, not held in memory (real Kafka)', function () {
  this.timeout(120000);
  let kafka: Kafka;
  let codec: AvroCodec;
  let redis: Redis;
  let topic: string;
  let group: string;
  let deadLetters: DeadLetterWriter;
  const runId = randomBytes(4).toString('hex');
  const cleanups: (() => Promise<unknown>)[] = [];

  before(async () => {
    codec = new AvroCodec({
      url: process.env.SCHEMA_REGISTRY_URL ?? assert.fail('SCHEMA_REGISTRY_URL is not set'),
      subjectPrefix: `test-parking-${runId}-`,
    });
    await codec.registerAll();
    redis = createRedis(process.env.REDIS_URL ?? assert.fail('REDIS_URL is not set'), logger);
    kafka = createKafka({
      clientId: 'tenant-parking-test',
      brokers: (process.env.KAFKA_BROKERS ?? assert.fail('KAFKA_BROKERS is not set')).split(','),
      logger,
    });
  });
  after(() => redis?.disconnect());

  beforeEach(async () => {
    const id = randomBytes(4).toString('hex');
    topic = `test-parking-${id}`;
    group = `test-parking-${id}`;
    const admin = kafka.admin();
    await admin.connect();
    await ensureTopics(
      admin,
      [
        { name: topic, compacted: false, partitions: 1 },
        { name: `${topic}-dead-letters`, compacted: false, partitions: 1 },
      ],
      { replicationFactor: 1 },
    );
    await admin.disconnect();
    const producer = kafka.producer();
    await producer.connect();
    cleanups.push(() => producer.disconnect());
    deadLetters = createDeadLetterWriter({
      service: 'tenant-parking-test',
      topic: `${topic}-dead-letters`,
      producer,
      codec,
      redis,
      keyPrefix: `test:parking:${id}:`,
    });
  });
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => undefined);
  });

  const produce = async (
    messages: { key: string; value: string; headers?: Record<string, string> }[],
  ): Promise<void> => {
    const producer = kafka.producer();
    await producer.connect();
    for (let i = 0; i < messages.length; i += 2000)
      await producer.send({ topic, acks: -1, messages: messages.slice(i, i + 2000) });
    await producer.disconnect();
  };
  /** `count` records of `tenant` over `conversations` conversations, sequence numbers per conversation. */
  const recordsOf = (tenant: string, count: number, conversations: number) =>
    Array.from({ length: count }, (_, i) => {
      const conversation = `${tenant}${i % conversations}`;
      return { key: `${tenant}:${conversation}`, value: `${conversation}#${Math.floor(i / conversations)}` };
    });

  const consumerWith = (
    gate: TenantGate,
    handle: (message: KafkaMessage) => Promise<HandlerOutcome>,
    options: { maxBufferedMessages?: number; parkingKafka?: Kafka } = {},
  ) => {
    const consumer = new KeyedConsumer({
      consumer: kafka.consumer({ groupId: group, sessionTimeout: 6000, heartbeatInterval: 500 }),
      topics: [topic],
      orderingKey: (message) => message.key?.toString() ?? '',
      handle,
      deadLetters,
      logger,
      commitIntervalMs: 50,
      maxBufferedMessages: options.maxBufferedMessages ?? 500,
      parking: {
        kafka: options.parkingKafka ?? kafka,
        groupId: group,
        gate,
        tenantOf: (message) => message.key?.toString().split(':')[0],
      },
    });
    cleanups.push(() => consumer.stop());
    return consumer;
  };
  const committed = async (): Promise<{ offset: number; metadata: string | null }> => {
    const admin = kafka.admin();
    await admin.connect();
    try {
      const [offsets] = await admin.fetchOffsets({ groupId: group, topics: [topic] });
      const partition = offsets?.partitions[0];
      return { offset: Number(partition?.offset ?? -1), metadata: partition?.metadata ?? null };
    } finally {
      await admin.disconnect();
    }
  };
  /**
   * Every conversation's handled sequence numbers are 0, 1, 2, ... with none missing; with
   * `once`, none repeated either. Otherwise a repeat is allowed only of an already handled
   * message (a replay reading again what finished just before its tenant was parked: handlers
   * are idempotent), never a first handling out of order.
   */
  const assertInOrder = (
    handled: readonly string[],
    expected: number,
    conversations: number,
    { once = true } = {},
  ) => {
    if (once) assert.equal(handled.length, expected, `${handled.length} handled, ${expected} expected`);
    const next = new Map<string, number>();
    for (const value of handled) {
      if (!once) {
        const [conversation = '', sequence = ''] = value.split('#');
        if (Number(sequence) < (next.get(conversation) ?? 0)) continue;
      }
      const [conversation = '', sequence = ''] = value.split('#');
      const want = next.get(conversation) ?? 0;
      assert.equal(Number(sequence), want, `${conversation}: #${sequence} handled when #${want} was due`);
      next.set(conversation, want + 1);
    }
    assert.equal(next.size, conversations);
    assert.equal(
      [...next.values()].reduce((sum, count) => sum + count, 0),
      expected,
      'every message handled',
    );
  };

  it('given 20,000 of tenant A waiting on one partition with tenant B, then B flows, A leaves memory and the commit passes it, and A comes back once, in order, when its gate opens', async () => {
    const gate = createTenantGate({ initialBackoffMs: 300, maxBackoffMs: 300 });
    let aMayGo = false;
    const handledA: string[] = [];
    const handledB: string[] = [];
    let callsOfAWhileWaiting = 0;
    const consumer = consumerWith(gate, async (message) => {
      const value = message.value?.toString() ?? '';
      if (value.startsWith('A')) {
        if (!aMayGo) {
          callsOfAWhileWaiting += 1;
          return { kind: 'wait-for-tenant', reason: 'test: A over budget' };
        }
        handledA.push(value);
        return done;
      }
      handledB.push(value);
      return done;
    });
    await consumer.start();
    // A's 20,000 first, then B's: B's are behind all of A's in the partition.
    await produce(recordsOf('A', 20_000, 200));
    await produce(recordsOf('B', 2000, 20));
    await waitFor('all of B handled while A waits', () => handledB.length === 2000, 60000);
    // Parked, A's backlog stops reaching the handler: its first conversations (up to
    // TENANT_CONCURRENCY) and a probe every 300 ms do, not its 20,000 messages.
    assert.ok(
      callsOfAWhileWaiting >= 1 && callsOfAWhileWaiting < 1000,
      `A's handler was called ${callsOfAWhileWaiting} times while A waited`,
    );
    // A's messages left memory: nothing is queued while A still waits.
    await waitFor('nothing held in memory', () => consumer.buffered === 0);
    const parked = await waitFor('the commit past A with its cursor', async () => {
      const point = await committed();
      return point.offset === 22_000 && point.metadata?.includes('"A"') ? point : undefined;
    });
    const cursors = JSON.parse(parked.metadata ?? '{}') as { p?: [string, string, number][] };
    assert.deepEqual(cursors.p?.[0]?.slice(0, 2), ['A', '0'], 'A parked from its first offset');
    assert.deepEqual(consumer.parkedTenants, ['A']);

    aMayGo = true;
    await waitFor('all of A handled after its gate opened', () => handledA.length >= 20_000, 60000);
    assertInOrder(handledA, 20_000, 200);
    assertInOrder(handledB, 2000, 20);
    await waitFor(
      'the cursor cleared from the commit',
      async () => (await committed()).metadata === null || !(await committed()).metadata?.includes('"A"'),
    );
    assert.deepEqual(consumer.parkedTenants, []);
  });

  it('given a tenant parked when its consumer dies, when another consumer takes the partition, then it reads the parked messages from the committed cursor, in order, before the tenant’s later ones', async () => {
    const gate = createTenantGate({ initialBackoffMs: 60_000, maxBackoffMs: 60_000 });
    const first = consumerWith(gate, async (message) =>
      message.value?.toString().startsWith('A') ? { kind: 'wait-for-tenant', reason: 'test: down' } : done,
    );
    await first.start();
    await produce([...recordsOf('A', 300, 10), ...recordsOf('B', 50, 5)]);
    await waitFor('A parked in the commit', async () => {
      const point = await committed();
      return point.offset === 350 && point.metadata?.includes('"A"');
    });
    // Dies: leaves the group without finishing anything (no final commit of the KeyedConsumer).
    await first.stop();

    const handledA: string[] = [];
    const second = consumerWith(createTenantGate(), async (message) => {
      const value = message.value?.toString() ?? '';
      if (value.startsWith('A')) handledA.push(value);
      return done;
    });
    await second.start();
    // A's later messages arrive while (or before) the parked ones are read again.
    await produce(recordsOf('A', 600, 10).slice(300));
    await waitFor('A’s 600 handled', () => handledA.length >= 600, 60000);
    assertInOrder(handledA, 600, 10);
  });

  it('given a tenant that fails again while its parked messages are read again, then it is parked again from there and nothing is skipped', async () => {
    const gate = createTenantGate({ initialBackoffMs: 200, maxBackoffMs: 200 });
    const handledA: string[] = [];
    let failuresLeft = 3;
    let budget = 0;
    const consumer = consumerWith(gate, async (message) => {
      const value = message.value?.toString() ?? '';
      if (!value.startsWith('A')) return done;
      // Like a rate limit: 40 calls per window, then wait.
      if (budget <= 0) {
        if (failuresLeft-- > 0 || budget <= 0) {
          budget = 40;
          return { kind: 'wait-for-tenant', reason: 'test: window spent', untilMs: Date.now() + 200 };
        }
      }
      budget--;
      handledA.push(value);
      return done;
    });
    budget = 0;
    await consumer.start();
    await produce(recordsOf('A', 400, 8));
    await waitFor('A’s 400 handled over several windows', () => new Set(handledA).size >= 400, 60000);
    assertInOrder(handledA, 400, 8, { once: false });
  });

  it('regression (soak): given a replay whose reader kafkajs restarts after a crash (a broker restart), then the replay goes on from where it stood: every parked message is handled, in order', async () => {
    const gate = createTenantGate({ initialBackoffMs: 300, maxBackoffMs: 300 });
    // The replay reader's batches fail (retriably) from its second batch on until kafkajs gives
    // up and restarts it: the new consumer starts at the partition's end, with no seek.
    let readerBatches = 0;
    let readerCrashed = false;
    const parkingKafka = new Proxy(kafka, {
      get: (target, property, receiver) => {
        if (property !== 'consumer') return Reflect.get(target, property, receiver) as unknown;
        return (config: Parameters<Kafka['consumer']>[0]) => {
          const reader = target.consumer({ ...config, retry: { retries: 1, initialRetryTime: 100 } });
          reader.on(reader.events.CRASH, () => {
            readerCrashed = true;
          });
          const run = reader.run.bind(reader);
          reader.run = (runConfig) =>
            run({
              ...runConfig,
              eachBatch: async (payload) => {
                if (payload.batch.messages.length > 0 && ++readerBatches >= 2 && !readerCrashed)
                  throw Object.assign(new Error('test: the broker went away'), { retriable: true });
                await runConfig?.eachBatch?.(payload);
              },
            });
          return reader;
        };
      },
    });
    let aMayGo = false;
    const handledA: string[] = [];
    const consumer = consumerWith(
      gate,
      async (message) => {
        const value = message.value?.toString() ?? '';
        if (!value.startsWith('A')) return done;
        if (!aMayGo) return { kind: 'wait-for-tenant', reason: 'test: A over budget' };
        handledA.push(value);
        return done;
      },
      { parkingKafka },
    );
    await consumer.start();
    // 1 MB of A in record batches of 200: the reader takes several fetches (256 KiB each) to
    // read it again. A waits until all of it is parked behind the commit.
    const padded = recordsOf('A', 3000, 10).map((record) => ({
      ...record,
      headers: { pad: 'x'.repeat(300) },
    }));
    for (let i = 0; i < padded.length; i += 200) await produce(padded.slice(i, i + 200));
    await produce(recordsOf('B', 50, 5));
    await waitFor('A parked behind the commit', async () => {
      const point = await committed();
      return point.offset === 3050 && point.metadata?.includes('"A"');
    });
    aMayGo = true;
    await waitFor('the reader crashed and was restarted by kafkajs', () => readerCrashed, 30000);
    await waitFor('all of A handled after the reader’s restart', () => new Set(handledA).size >= 3000, 60000);
    assertInOrder(handledA, 3000, 10, { once: false });
  });

  it('given a parked tenant whose gate opens while its upstream still refuses, then one message probes it (not a burst of calls), and once one succeeds the rest flow concurrently', async () => {
    const gate = createTenantGate({ initialBackoffMs: 300, maxBackoffMs: 300 });
    // A's upstream refuses for 1.2 s from the first call: the live burst, then the probes.
    let refuseUntil: number | undefined;
    let inFlight = 0;
    const refusals: { at: number; inFlight: number }[] = [];
    let concurrencyAfter = 0;
    const handledA: string[] = [];
    const consumer = consumerWith(gate, async (message) => {
      const value = message.value?.toString() ?? '';
      if (!value.startsWith('A')) return done;
      refuseUntil ??= Date.now() + 1200;
      inFlight++;
      try {
        await new Promise((resolve) => setTimeout(resolve, 20));
        if (Date.now() < refuseUntil) {
          refusals.push({ at: Date.now(), inFlight });
          return { kind: 'wait-for-tenant', reason: 'test: still refused' };
        }
        concurrencyAfter = Math.max(concurrencyAfter, inFlight);
        handledA.push(value);
        return done;
      } finally {
        inFlight--;
      }
    });
    await consumer.start();
    // 200 conversations of one message each: without a probe, each replay meets the refusing
    // upstream with up to TENANT_CONCURRENCY calls at once, as the live burst did.
    await produce(recordsOf('A', 200, 200));
    await waitFor('all of A handled', () => handledA.length >= 200, 60000);
    assertInOrder(handledA, 200, 200);
    const firstAt = refusals[0]?.at ?? 0;
    const probes = refusals.filter((refusal) => refusal.at > firstAt + 200);
    assert.ok(probes.length >= 2, `${probes.length} probes refused (the gate opens every 300 ms for 1.2 s)`);
    assert.deepEqual(
      probes.map((probe) => probe.inFlight),
      probes.map(() => 1),
      'each probe after a wait is alone',
    );
    assert.ok(concurrencyAfter > 1, `after the probe succeeded: ${concurrencyAfter} at once`);
  });
});
