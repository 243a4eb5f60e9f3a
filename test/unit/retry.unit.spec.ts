import assert from 'node:assert/strict';
import { ErrorCode, PipelineError } from '../../lib/errors.ts';
import { backoffDelay, linearDelay, withRetry } from '../../lib/retry.ts';

const retriable = () => new PipelineError(ErrorCode.upstreamUnavailable, 'down', { retriable: true });
const policy = { attempts: 4, initialDelayMs: 100, maxDelayMs: 1000 };

describe('retry helper', () => {
  it('given a retriable failure then success, when run, then it retries with backoff and returns', async () => {
    const delays: number[] = [];
    let calls = 0;
    const result = await withRetry(policy, async () => (++calls < 3 ? Promise.reject(retriable()) : 'ok'), {
      sleep: async (ms) => void delays.push(ms),
      random: () => 1,
    });
    assert.equal(result, 'ok');
    assert.deepEqual(delays, [100, 200]);
  });

  it('given a non-retriable error, when run, then it is thrown at once', async () => {
    let calls = 0;
    await assert.rejects(
      withRetry(
        policy,
        async () => {
          calls++;
          throw new PipelineError(ErrorCode.upstreamRejected, 'bad', { retriable: false });
        },
        { sleep: async () => undefined },
      ),
      /bad/,
    );
    assert.equal(calls, 1);
  });

  it('given a programmer error (TypeError), when run, then it is never retried', async () => {
    let calls = 0;
    await assert.rejects(
      withRetry(
        policy,
        async () => {
          calls++;
          throw new TypeError('oops');
        },
        { sleep: async () => undefined },
      ),
      TypeError,
    );
    assert.equal(calls, 1);
  });

  it('given failures past the budget, when run, then the last error is thrown after all attempts', async () => {
    let calls = 0;
    await assert.rejects(
      withRetry(
        policy,
        async () => {
          calls++;
          throw retriable();
        },
        { sleep: async () => undefined },
      ),
      /down/,
    );
    assert.equal(calls, 4);
  });

  it('given a Retry-After longer than the backoff, when retried, then the upstream wait wins', async () => {
    const delays: number[] = [];
    let calls = 0;
    await withRetry(
      policy,
      async () => {
        if (++calls === 1)
          throw new PipelineError(ErrorCode.upstreamRateLimited, '429', {
            retriable: true,
            retryAfterMs: 5000,
          });
        return 'ok';
      },
      { sleep: async (ms) => void delays.push(ms), random: () => 0 },
    );
    assert.deepEqual(delays, [5000]);
  });

  it('backoff is capped and jittered within [ceiling/2, ceiling]', () => {
    assert.equal(
      backoffDelay(policy, 10, () => 1),
      1000,
    );
    assert.equal(
      backoffDelay(policy, 10, () => 0),
      500,
    );
  });

  describe('options', () => {
    const failing = (times: number, error: () => Error) => {
      let calls = 0;
      const work = async (): Promise<string> => {
        calls++;
        if (calls <= times) throw error();
        return 'ok';
      };
      return { work, calls: () => calls };
    };

    it('given retryIf accepting any error, when a plain Error is thrown, then it is retried', async () => {
      const { work, calls } = failing(2, () => new Error('ECONNREFUSED'));
      const result = await withRetry(policy, work, { retryIf: () => true, sleep: async () => undefined });
      assert.equal(result, 'ok');
      assert.equal(calls(), 3);
    });

    it('given retryIf refusing an error it would otherwise retry, when thrown, then it surfaces at once', async () => {
      const { work, calls } = failing(2, retriable);
      await assert.rejects(
        withRetry(policy, work, { retryIf: () => false, sleep: async () => undefined }),
        /down/,
      );
      assert.equal(calls(), 1);
    });

    it('given onRetry, when retried, then it hears of each failed attempt with its wait and error, not of the last', async () => {
      const heard: { attempt: number; delayMs: number; message: string }[] = [];
      const { work } = failing(5, retriable);
      await assert.rejects(
        withRetry(policy, work, {
          sleep: async () => undefined,
          random: () => 1,
          onRetry: ({ attempt, delayMs, error }) =>
            heard.push({ attempt, delayMs, message: (error as Error).message }),
        }),
      );
      assert.deepEqual(heard, [
        { attempt: 1, delayMs: 100, message: 'down' },
        { attempt: 2, delayMs: 200, message: 'down' },
        { attempt: 3, delayMs: 400, message: 'down' },
      ]);
    });

    it('given a schedule with its own delays and no attempt limit, when retried, then those delays are waited', async () => {
      const delays: number[] = [];
      const { work } = failing(6, retriable);
      await withRetry({ attempts: Number.POSITIVE_INFINITY, delayMs: linearDelay(200, 1000) }, work, {
        sleep: async (ms) => void delays.push(ms),
      });
      assert.deepEqual(delays, [200, 400, 600, 800, 1000, 1000]);
    });

    it('given giveUpAfterMs, when the time runs out, then the last wait is shortened to the deadline and giveUp decides what is thrown', async () => {
      let clock = 0;
      const delays: number[] = [];
      const { work, calls } = failing(100, retriable);
      await assert.rejects(
        withRetry({ attempts: Number.POSITIVE_INFINITY, delayMs: () => 400, giveUpAfterMs: 1000 }, work, {
          now: () => clock,
          sleep: async (ms) => {
            delays.push(ms);
            clock += ms;
          },
          giveUp: (error, { attempts, elapsedMs }) =>
            new Error(`gave up after ${attempts} attempts, ${elapsedMs} ms: ${(error as Error).message}`),
        }),
        /^Error: gave up after 4 attempts, 1000 ms: down$/,
      );
      assert.deepEqual(delays, [400, 400, 200]);
      assert.equal(calls(), 4);
    });

    it('given giveUp, when an error retryIf refuses is thrown, then that error surfaces as it is', async () => {
      const { work } = failing(1, () => new TypeError('oops'));
      await assert.rejects(
        withRetry(policy, work, { sleep: async () => undefined, giveUp: () => new Error('gave up') }),
        TypeError,
      );
    });

    it('given the attempt number, when retried, then work is told which attempt it is', async () => {
      const seen: number[] = [];
      await withRetry(
        policy,
        async (attempt) => {
          seen.push(attempt);
          if (attempt < 3) throw retriable();
        },
        { sleep: async () => undefined },
      );
      assert.deepEqual(seen, [1, 2, 3]);
    });
  });
});
