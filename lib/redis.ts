import { Redis } from 'ioredis';

export type { Redis };

export const createRedis = (url: string): Redis =>
  new Redis(url, { maxRetriesPerRequest: 3, enableAutoPipelining: true, lazyConnect: false });
