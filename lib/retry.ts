import { PipelineError } from './errors.ts';

export type RetryPolicy = {
  /** Total attempts, the first included. */
  readonly attempts: number;
  readonly initialDelayMs: number;
  readonly maxDelayMs: number;
};

export type RetryDeps = {
  /** Injected so tests run with tiny delays and no real timers where they want. */
  readonly sleep?: (ms: number) => Promise<void>;
  readonly random?: () => number;
  readonly onRetry?: (info: { attempt: number; delayMs: number; error: unknown }) => void;
};

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Full-jitter exponential backoff; an upstream's Retry-After wins when it asks for longer. */
export const backoffDelay = (policy: RetryPolicy, attempt: number, random: () => number): number => {
  const ceiling = Math.min(policy.maxDelayMs, policy.initialDelayMs * 2 ** (attempt - 1));
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
};

/**
 * Runs `work` until it succeeds, a non-retriable error is thrown, or the attempts are spent.
 * Only PipelineErrors marked retriable are retried: a programmer error (TypeError, ...) is
 * never retried, it surfaces at once.
 */
export const withRetry = async <T>(
  policy: RetryPolicy,
  work: (attempt: number) => Promise<T>,
  deps: RetryDeps = {},
): Promise<T> => {
  const wait = deps.sleep ?? sleep;
  const random = deps.random ?? Math.random;
  for (let attempt = 1; ; attempt++) {
    try {
      return await work(attempt);
    } catch (error) {
      const retriable = error instanceof PipelineError && error.retriable;
      if (!retriable || attempt >= policy.attempts) throw error;
      const delayMs = Math.max(backoffDelay(policy, attempt, random), error.retryAfterMs ?? 0);
      deps.onRetry?.({ attempt, delayMs, error });
      await wait(delayMs);
    }
  }
};
