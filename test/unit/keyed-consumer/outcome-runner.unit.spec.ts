import assert from 'node:assert/strict';
import type { KafkaMessage } from 'kafkajs';
import { pino } from 'pino';
import type { DeadLetterDetails } from '../../../lib/dead-letters/index.ts';
import type { HandlerOutcome } from '../../../lib/kafka/index.ts';
import { OutcomeRunner, type RunnableWork } from '../../../lib/kafka/keyed-consumer/outcome-runner.ts';

const work = (deadLetteredBefore = false): RunnableWork => ({
  message: { offset: '7', key: Buffer.from('k'), value: Buffer.from('v') } as unknown as KafkaMessage,
  topic: 'raw',
  partition: 0,
  deadLettered: Promise.resolve(deadLetteredBefore),
});

/** A runner with no real time: sleeps are recorded, the clock and the jitter are fixed. */
const runnerWith = (
  handle: () => Promise<HandlerOutcome>,
  options: { writeFailures?: number; current?: () => boolean; now?: number } = {},
) => {
  const slept: number[] = [];
  const letters: DeadLetterDetails[] = [];
  const seen = { crashed: 0, retried: [] as string[], deadLettered: [] as string[] };
  let writeFailures = options.writeFailures ?? 0;
  const runner = new OutcomeRunner<RunnableWork>({
    handle,
    deadLetters: {
      write: async (_source, details) => {
        if (writeFailures-- > 0) throw new Error('Kafka unavailable');
        letters.push(details);
        return 'written';
      },
      alreadyWritten: async () => false,
    },
    logger: pino({ level: 'silent' }),
    observer: {
      crashed: () => seen.crashed++,
      retried: (error) => seen.retried.push(error),
      deadLettered: (reason) => seen.deadLettered.push(reason),
    },
    crashBudget: { attempts: 3, initialDelayMs: 100, maxDelayMs: 1000 },
    now: () => options.now ?? 1_000_000,
    random: () => 0.5,
    sleep: async (ms) => void slept.push(ms),
    current: options.current ?? (() => true),
    tenants: { waitForTenant: () => 'in-memory', ended: () => undefined },
  });
  return { runner, slept, letters, seen };
};

describe('keyed consumer: the outcome runner (lib/kafka/keyed-consumer/outcome-runner.ts)', () => {
  it('given a handler that always throws, then it gets the crash budget of attempts with jittered backoff, then a handler_crashed dead letter', async () => {
    let calls = 0;
    const { runner, slept, letters, seen } = runnerWith(async () => {
      calls++;
      throw new TypeError('cannot read properties of undefined');
    });
    assert.equal(await runner.run(work(), undefined), true, 'finished: its conversation goes on');
    assert.equal(calls, 3);
    assert.equal(seen.crashed, 3);
    // Full jitter at 0.5: three quarters of 100 ms, then of 200 ms.
    assert.deepEqual(slept, [75, 150]);
    assert.equal(letters.length, 1);
    assert.equal(letters[0]?.reason, 'handler_crashed');
    assert.equal(letters[0]?.attempts, 3);
    assert.match(letters[0]?.error ?? '', /TypeError: cannot read properties of undefined/);
    assert.deepEqual(seen.deadLettered, ['handler_crashed']);
  });

  it('given a retry outcome, then the same message is handled again after the delay it asked for', async () => {
    const outcomes: HandlerOutcome[] = [
      { kind: 'retry', error: 'redis down', afterMs: 250 },
      { kind: 'done' },
    ];
    const { runner, slept, seen } = runnerWith(async () => outcomes.shift() ?? assert.fail('called again'));
    assert.equal(await runner.run(work(), undefined), true);
    assert.deepEqual(slept, [250]);
    assert.deepEqual(seen.retried, ['redis down']);
  });

  it('given wait-for-tenant with nowhere to park, then it waits in memory until the stated time (1 s at least), then handles the message again', async () => {
    const outcomes: HandlerOutcome[] = [
      { kind: 'wait-for-tenant', reason: 'over budget', untilMs: 1_004_000 },
      { kind: 'wait-for-tenant', reason: 'over budget' },
      { kind: 'skipped', reason: 'test' },
    ];
    const { runner, slept, seen } = runnerWith(async () => outcomes.shift() ?? assert.fail('called again'), {
      now: 1_000_000,
    });
    assert.equal(await runner.run(work(), undefined), true);
    assert.deepEqual(slept, [4000, 1000]);
    assert.deepEqual(seen.retried, ['over budget', 'over budget']);
  });

  it('given a dead letter Kafka refuses once, then it is written on the next attempt and the message is finished', async () => {
    const { runner, slept, letters } = runnerWith(
      async () => ({
        kind: 'dead-letter',
        reason: 'malformed_event',
        error: 'no objectId',
        attempts: 1,
        orgId: 'org-1',
        eventType: null,
        eventId: null,
      }),
      { writeFailures: 1 },
    );
    assert.equal(await runner.run(work(), undefined), true);
    assert.equal(letters.length, 1);
    assert.equal(slept.length, 1, 'one backoff before the second write');
  });

  it('given a message dead-lettered before it was redelivered, then the handler is not called and it is finished', async () => {
    const { runner } = runnerWith(async () => assert.fail('handled a dead-lettered message'));
    assert.equal(await runner.run(work(true), undefined), true);
  });

  it('given a consumer that lost the partition or is stopping, then the message is left unfinished', async () => {
    let calls = 0;
    let current = true;
    const { runner } = runnerWith(
      async () => {
        calls++;
        current = false;
        return { kind: 'retry', error: 'claim held elsewhere', afterMs: 10 };
      },
      { current: () => current },
    );
    assert.equal(await runner.run(work(), undefined), false);
    assert.equal(calls, 1);
  });
});
