import { PipelineError } from './errors.ts';

export type RetryPolicy = {
  /** Total attempts, the first included. */
  readonly attempts: number;
  readonly initialDelayMs: number;
  readonly maxDelayMs: number;
};

/**
 * When to try again, for callers whose waits are not the jittered backoff of a RetryPolicy: a
 * fixed recipe per attempt (`delayMs`), for at most `attempts` (Infinity: no count) and, when
 * given, until `giveUpAfterMs` have passed since the first attempt (the last wait is shortened
 * to end there, and one more attempt is made then).
 */
export type RetrySchedule = {
  readonly attempts: number;
  readonly delayMs: (attempt: number, error: unknown) => number;
  readonly giveUpAfterMs?: number;
};

export type RetryDeps = {
  /** Injected so tests run with tiny delays and no real timers where they want. */
  readonly sleep?: (ms: number) => Promise<void>;
  readonly random?: () => number;
  /** Injected with `giveUpAfterMs`, so tests need no real clock. */
  readonly now?: () => number;
  /** Called before each wait: the attempt that failed, the wait, its error (for a log line). */
  readonly onRetry?: (info: { attempt: number; delayMs: number; error: unknown }) => void;
  /**
   * Which errors are tried again. By default only PipelineErrors marked retriable: a programmer
   * error (TypeError, ...) is never retried, it surfaces at once.
   */
  readonly retryIf?: (error: unknown) => boolean;
  /**
   * What is thrown when the attempts (or the time) run out on an error retryIf accepts; by
   * default that last error itself. An error retryIf refuses is always thrown as it is.
   */
  readonly giveUp?: (error: unknown, info: { attempts: number; elapsedMs: number }) => Error;
};
/** The options of withRetry besides its schedule. */
export type RetryOptions = RetryDeps;

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Full-jitter exponential backoff; an upstream's Retry-After wins when it asks for longer. */
export const backoffDelay = (policy: RetryPolicy, attempt: number, random: () => number): number => {
  const ceiling = Math.min(policy.maxDelayMs, policy.initialDelayMs * 2 ** (attempt - 1));
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
};

/** A wait that grows by `stepMs` per attempt, up to `maxMs`: for loops that wait out a restart. */
export const linearDelay =
  (stepMs: number, maxMs = Number.POSITIVE_INFINITY) =>
  (attempt: number): number =>
    Math.min(maxMs, stepMs * attempt);

const isRetriablePipelineError = (error: unknown): boolean =>
  error instanceof PipelineError && error.retriable;

const delayOf = (
  schedule: RetryPolicy | RetrySchedule,
  attempt: number,
  error: unknown,
  random: () => number,
): number => {
  if ('delayMs' in schedule) return schedule.delayMs(attempt, error);
  const retryAfterMs = error instanceof PipelineError ? (error.retryAfterMs ?? 0) : 0;
  return Math.max(backoffDelay(schedule, attempt, random), retryAfterMs);
};

/**
 * The one retry loop: runs `work` until it succeeds, throws an error `retryIf` refuses, or the
 * attempts (or the time) are spent. With a RetryPolicy the waits are its jittered backoff, and
 * an upstream's Retry-After wins when longer; with a RetrySchedule, the schedule's own.
 */
export const withRetry = async <T>(
  schedule: RetryPolicy | RetrySchedule,
  work: (attempt: number) => Promise<T>,
  deps: RetryOptions = {},
): Promise<T> => {
  const wait = deps.sleep ?? sleep;
  const random = deps.random ?? Math.random;
  const now = deps.now ?? Date.now;
  const retryIf = deps.retryIf ?? isRetriablePipelineError;
  const giveUpAfterMs = 'giveUpAfterMs' in schedule ? schedule.giveUpAfterMs : undefined;
  const started = giveUpAfterMs === undefined ? 0 : now();
  for (let attempt = 1; ; attempt++) {
    try {
      return await work(attempt);
    } catch (error) {
      if (!retryIf(error)) throw error;
      const elapsedMs = giveUpAfterMs === undefined ? 0 : now() - started;
      const left = giveUpAfterMs === undefined ? Number.POSITIVE_INFINITY : giveUpAfterMs - elapsedMs;
      if (attempt >= schedule.attempts || left <= 0)
        throw deps.giveUp ? deps.giveUp(error, { attempts: attempt, elapsedMs }) : error;
      const delayMs = Math.max(0, Math.min(delayOf(schedule, attempt, error, random), left));
      deps.onRetry?.({ attempt, delayMs, error });
      await wait(delayMs);
    }
  }
};
