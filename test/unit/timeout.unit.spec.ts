import assert from 'node:assert/strict';
import { TimeoutError, withTimeout } from '../../lib/timeout.ts';

const never = new Promise<never>(() => undefined);

/** Counts the timers set and cleared while `run` is in progress. */
const watchingTimers = async (run: () => Promise<unknown>): Promise<{ set: number; cleared: number }> => {
  const counts = { set: 0, cleared: 0 };
  const realSet = globalThis.setTimeout;
  const realClear = globalThis.clearTimeout;
  const live = new Set<unknown>();
  globalThis.setTimeout = ((...args: Parameters<typeof realSet>) => {
    const timer = realSet(...args);
    counts.set++;
    live.add(timer);
    return timer;
  }) as typeof realSet;
  globalThis.clearTimeout = (timer: Parameters<typeof realClear>[0]) => {
    if (live.delete(timer)) counts.cleared++;
    realClear(timer);
  };
  try {
    await run().catch(() => undefined);
  } finally {
    globalThis.setTimeout = realSet;
    globalThis.clearTimeout = realClear;
  }
  return counts;
};

describe('withTimeout', () => {
  it('given work that resolves in time, when raced, then its value passes through and the timer is cleared', async () => {
    let value: unknown;
    const timers = await watchingTimers(async () => {
      value = await withTimeout(Promise.resolve(42), 10_000, 'too slow');
    });
    assert.equal(value, 42);
    assert.deepEqual(timers, { set: 1, cleared: 1 });
  });

  it('given work that rejects in time, when raced, then its own error passes through and the timer is cleared', async () => {
    const own = new Error('refused');
    let caught: unknown;
    const timers = await watchingTimers(async () => {
      caught = await withTimeout(Promise.reject(own), 10_000, 'too slow').catch((error: unknown) => error);
    });
    assert.equal(caught, own);
    assert.deepEqual(timers, { set: 1, cleared: 1 });
  });

  it('given work that never settles, when the time runs out, then it rejects with a TimeoutError carrying the message', async () => {
    await assert.rejects(withTimeout(never, 5, 'Redis PING: no answer within 5 ms'), (error: unknown) => {
      assert.ok(error instanceof TimeoutError);
      assert.equal(error.message, 'Redis PING: no answer within 5 ms');
      assert.equal(error.timeoutMs, 5);
      return true;
    });
  });

  it('given a fallback, when the time runs out, then it resolves with the fallback', async () => {
    assert.equal(await withTimeout(never, 5, () => 'gave up waiting'), 'gave up waiting');
  });

  it('given a fallback that throws, when the time runs out, then it rejects with that error', async () => {
    await assert.rejects(
      withTimeout(never, 5, () => {
        throw new RangeError('own timeout error');
      }),
      RangeError,
    );
  });

  it('given work that settles late, when the time ran out first, then the late outcome is ignored', async () => {
    let settle = (): void => undefined;
    const late = new Promise<string>((resolve) => {
      settle = () => resolve('late');
    });
    const raced = withTimeout(late, 5, () => 'fallback');
    assert.equal(await raced, 'fallback');
    settle();
    assert.equal(await raced, 'fallback');
  });
});
