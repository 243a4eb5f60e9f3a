import assert from 'node:assert/strict';
import { ErrorCode, PipelineError } from '../../lib/errors.ts';
import { backoffDelay, withRetry } from '../../lib/retry.ts';

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
});
