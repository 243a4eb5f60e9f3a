import { createHash } from 'node:crypto';
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

/** A Lua script bound to a client: `run(keys, args)`. */
export type RedisScript = (keys: readonly string[], args: readonly (string | number)[]) => Promise<unknown>;

/**
 * A Lua script called by its SHA1 (EVALSHA; ioredis loads it, and loads it again with EVAL after a
 * Redis restart emptied the script cache). `redis.eval` sends the whole script on every call and
 * makes Redis hash it each time: for the rate limiter's script, once per HubSpot or OpenCX call.
 */
export const defineScript = (redis: Redis, lua: string, numberOfKeys: number): RedisScript => {
  const name = `script_${createHash('sha1').update(lua).digest('hex').slice(0, 16)}`;
  const client = redis as unknown as Record<
    string,
    ((...args: (string | number)[]) => Promise<unknown>) | undefined
  >;
  if (client[name] === undefined) redis.defineCommand(name, { numberOfKeys, lua });
  return (keys, args) => {
    const command = client[name];
    if (!command) throw new Error(`Redis script ${name} not defined`);
    return command.call(redis, ...keys, ...args);
  };
};
