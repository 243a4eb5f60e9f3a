import { Redis } from 'ioredis';
import { describeError } from './errors.ts';
import type { Logger } from './log.ts';

export type { Redis };

/**
 * A Redis client that reports its connection through `logger`: one line when it becomes
 * unreachable, one when it is back. ioredis emits an 'error' on every failed reconnect, and
 * without a listener prints each with its stack trace to stderr; the failing commands reject
 * with the error anyway, so nothing is lost by logging only the changes.
 */
export const createRedis = (url: string, logger: Logger): Redis => {
  const redis = new Redis(url, { maxRetriesPerRequest: 3, enableAutoPipelining: true, lazyConnect: false });
  let reachable: boolean | undefined;
  redis.on('ready', () => {
    if (reachable === false) logger.info('Redis reachable again');
    reachable = true;
  });
  redis.on('error', (error: unknown) => {
    if (reachable === false) return;
    reachable = false;
    logger.warn({ error: describeError(error) }, 'Redis unreachable; reconnecting');
  });
  return redis;
};
