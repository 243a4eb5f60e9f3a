import assert from 'node:assert/strict';
import type { Consumer, EachBatchPayload, KafkaMessage } from 'kafkajs';
import { pino } from 'pino';
import { KeyedConsumer } from '../../lib/kafka/index.ts';
import { waitFor } from '../support/pipeline.ts';

type Commit = { topic: string; partition: number; offset: string };

/**
 * Just enough of a kafkajs consumer to drive KeyedConsumer by hand: the test hands it batches and
 * decides whether each commit succeeds. (The consumer contract on the real broker is in
 * test/integration/keyed-consumer.int.spec.ts; a broker does not fail commits on request.)
 */
const fakeConsumer = (failCommits: { count: number }) => {
  let eachBatch: ((payload: EachBatchPayload) => Promise<void>) | undefined;
  const attempts: Commit[][] = [];
  /** The listeners KeyedConsumer registered, by kafkajs event name: the test emits them. */
  const listeners = new Map<string, (event: unknown) => void>();
  const disconnects = { count: 0 };
  const consumer = {
    events: { GROUP_JOIN: 'consumer.group_join', CRASH: 'consumer.crash', FETCH: 'consumer.fetch' },
    on: (name: string, listener: (event: unknown) => void) => (
      listeners.set(name, listener),
      () => undefined
    ),
    connect: async () => undefined,
    subscribe: async () => undefined,
    run: async (options: { eachBatch: (payload: EachBatchPayload) => Promise<void> }) => {
      eachBatch = options.eachBatch;
    },
    pause: () => undefined,
    resume: () => undefined,
    disconnect: async () => void disconnects.count++,
    commitOffsets: async (offsets: Commit[]) => {
      attempts.push(offsets);
      if (failCommits.count > 0) {
        failCommits.count--;
        throw new Error('The coordinator is not aware of this member');
      }
    },
  };
  const deliver = async (offsets: readonly string[]): Promise<void> => {
    const messages = offsets.map(
      (offset) => ({ offset, key: Buffer.from('k'), value: Buffer.from('v') }) as unknown as KafkaMessage,
    );
    await eachBatch?.({
      batch: { topic: 'raw', partition: 0, messages },
      resolveOffset: () => undefined,
      heartbeat: async () => undefined,
    } as unknown as EachBatchPayload);
  };
  const batch = (payload: EachBatchPayload): Promise<void> | undefined => eachBatch?.(payload);
  return { consumer: consumer as unknown as Consumer, attempts, deliver, listeners, disconnects, batch };
};

describe('keyed consumer (driven by hand): the fetch linger', () => {
  const batchOf = (partition: number, offsets: readonly string[]): EachBatchPayload =>
    ({
      batch: {
        topic: 'raw',
        partition,
        messages: offsets.map((offset) => ({
          offset,
          key: Buffer.from(`k${partition}`),
          value: Buffer.from('v'),
        })),
      },
      resolveOffset: () => undefined,
      heartbeat: async () => undefined,
    }) as unknown as EachBatchPayload;

  it("given a fetch that brought two partitions' batches, then the next fetch waits the linger once (not once per batch), and the fetched messages are handled meanwhile", async () => {
    const fake = fakeConsumer({ count: 0 });
    const handledAt: number[] = [];
    const keyed = new KeyedConsumer({
      consumer: fake.consumer,
      topics: ['raw'],
      orderingKey: (message) => message.key?.toString() ?? '',
      handle: async () => (handledAt.push(performance.now()), { kind: 'done' }),
      deadLetters: { write: async () => 'written', alreadyWritten: async () => false },
      logger: pino({ level: 'silent' }),
      fetchLingerMs: 150,
    });
    await keyed.start();
    const started = performance.now();
    fake.listeners.get('consumer.fetch')?.({});
    await fake.batch(batchOf(0, ['0', '1']));
    const first = performance.now() - started;
    await fake.batch(batchOf(1, ['0']));
    const both = performance.now() - started;
    assert.ok(first >= 140, `the first batch of the fetch lingers (${first.toFixed(0)} ms)`);
    assert.ok(
      both - first < 60,
      `the second batch of the same fetch does not linger again (${(both - first).toFixed(0)} ms)`,
    );
    assert.equal(handledAt.length, 3);
    assert.ok(
      handledAt.slice(0, 2).every((at) => at - started < 100),
      'messages are handled while the fetch lingers, not after it',
    );
    await keyed.stop();
  });

  it('given no linger (the default), then a batch is handed back at once', async () => {
    const fake = fakeConsumer({ count: 0 });
    const keyed = new KeyedConsumer({
      consumer: fake.consumer,
      topics: ['raw'],
      orderingKey: () => 'k',
      handle: async () => ({ kind: 'done' }),
      deadLetters: { write: async () => 'written', alreadyWritten: async () => false },
      logger: pino({ level: 'silent' }),
    });
    await keyed.start();
    assert.equal(fake.listeners.has('consumer.fetch'), false, 'no fetch listener without a linger');
    const started = performance.now();
    fake.listeners.get('consumer.fetch')?.({});
    await fake.batch(batchOf(0, ['0']));
    assert.ok(performance.now() - started < 50);
    await keyed.stop();
  });
});

describe('keyed consumer (driven by hand): commits and redeliveries', () => {
  it('given a commit Kafka refuses, when no other message finishes, then the same offset is committed again (it waited for the next message)', async () => {
    const fail = { count: 1 };
    const fake = fakeConsumer(fail);
    const keyed = new KeyedConsumer({
      consumer: fake.consumer,
      topics: ['raw'],
      orderingKey: () => 'one-conversation',
      handle: async () => ({ kind: 'done' }),
      deadLetters: { write: async () => 'written', alreadyWritten: async () => false },
      logger: pino({ level: 'silent' }),
      commitIntervalMs: 10,
    });
    await keyed.start();
    await fake.deliver(['0', '1', '2']);

    const committed = await waitFor(
      'offset 3 committed after the refused commit',
      () => fake.attempts.length >= 2 && fake.attempts,
      5000,
      10,
    );
    assert.deepEqual(committed[0], [{ topic: 'raw', partition: 0, offset: '3' }], 'the refused commit');
    assert.deepEqual(committed[1], [{ topic: 'raw', partition: 0, offset: '3' }], 'tried again unprompted');
    await keyed.stop();
  });

  it('given a redelivered message that was dead-lettered before, then the handler is not called and its offset is committed', async () => {
    const fake = fakeConsumer({ count: 0 });
    const handled: string[] = [];
    const keyed = new KeyedConsumer({
      consumer: fake.consumer,
      topics: ['raw'],
      orderingKey: () => 'one-conversation',
      handle: async (message) => {
        handled.push(message.offset);
        return { kind: 'done' };
      },
      deadLetters: {
        write: async () => 'written',
        alreadyWritten: async (source) => source.message.offset === '5',
      },
      logger: pino({ level: 'silent' }),
      commitIntervalMs: 10,
    });
    await keyed.start();
    await fake.deliver(['5', '6']);
    await waitFor(
      'offset 7 committed',
      () => fake.attempts.some((commit) => commit[0]?.offset === '7'),
      5000,
      10,
    );
    assert.deepEqual(handled, ['6'], 'only the message that was not dead-lettered is handled');
    await keyed.stop();
  });

  it('regression (soak): given a stopped consumer that kafkajs restarted after a crash, when it rejoins its group, then it leaves again instead of holding partitions nothing handles', async () => {
    const fake = fakeConsumer({ count: 0 });
    const { listeners, disconnects } = fake;
    const handled: string[] = [];
    const keyed = new KeyedConsumer({
      consumer: fake.consumer,
      topics: ['raw'],
      orderingKey: () => 'one-conversation',
      handle: async (message) => (handled.push(message.offset), { kind: 'done' }),
      deadLetters: { write: async () => 'written', alreadyWritten: async () => false },
      logger: pino({ level: 'silent' }),
      commitIntervalMs: 10,
    });
    await keyed.start();
    await keyed.stop();
    assert.equal(disconnects.count, 1);
    // kafkajs's restart after a crash: the consumer joins again and is handed a batch.
    listeners.get('consumer.group_join')?.({ payload: { groupId: 'g', memberAssignment: { raw: [0] } } });
    await waitFor('the stopped consumer to leave again', () => disconnects.count === 2, 2000, 10);
    // Its crash while stopping, with kafkajs about to restart it: the restart timer is cleared by
    // another disconnect on the next turn (kafkajs sets the timer right after the event).
    listeners.get('consumer.crash')?.({
      payload: { error: new Error('rebalancing'), groupId: 'g', restart: true },
    });
    await waitFor('the restart cancelled by a disconnect', () => disconnects.count === 3, 2000, 10);
    listeners.get('consumer.crash')?.({ payload: { error: new Error('bad'), groupId: 'g', restart: false } });
    await new Promise((resolve) => setTimeout(resolve, 20));
    assert.equal(disconnects.count, 3, 'no restart coming: nothing to cancel');
    await fake.batch({
      batch: {
        topic: 'raw',
        partition: 0,
        messages: [{ offset: '7', key: null, value: null } as unknown as KafkaMessage],
      },
      resolveOffset: () => assert.fail('a stopped consumer resolved an offset'),
      heartbeat: async () => undefined,
    } as unknown as EachBatchPayload);
    assert.deepEqual(handled, []);
  });
});
