/** What `withTimeout` rejects with when it is given a message: the work did not settle in time. */
export class TimeoutError extends Error {
  readonly timeoutMs: number;

  constructor(message: string, timeoutMs: number) {
    super(message);
    this.name = 'TimeoutError';
    this.timeoutMs = timeoutMs;
  }
}

/**
 * Settles as `work` does, unless `ms` pass first. Then, given a message, it rejects with a
 * TimeoutError carrying it; given a function, it settles as that function does (it returns a
 * fallback value, or throws the caller's own error). The timer is cleared as soon as either
 * side wins, so a finished race keeps no timer alive. The work itself is not cancelled: what it
 * does after the deadline is the caller's to ignore (kafkajs and ioredis calls take no signal).
 */
export function withTimeout<T>(work: Promise<T>, ms: number, onTimeout: string): Promise<T>;
export function withTimeout<T, F>(work: Promise<T>, ms: number, onTimeout: () => F): Promise<T | F>;
export function withTimeout<T, F>(
  work: Promise<T>,
  ms: number,
  onTimeout: string | (() => F),
): Promise<T | F> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<F>((resolve, reject) => {
    timer = setTimeout(() => {
      if (typeof onTimeout === 'string') reject(new TimeoutError(onTimeout, ms));
      else {
        try {
          resolve(onTimeout());
        } catch (error) {
          reject(error instanceof Error ? error : new Error(String(error)));
        }
      }
    }, ms);
  });
  return Promise.race([work, expired]).finally(() => clearTimeout(timer));
}
