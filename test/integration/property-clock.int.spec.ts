import assert from 'node:assert/strict';
import { createTestRedis } from '../support/redis.ts';
import { randomBytes } from 'node:crypto';
import { createRedisPropertyClock } from '../../lib/property-clock.ts';
import type { Redis } from '../../lib/redis.ts';

describe('property clock (real Redis)', () => {
  let redis: Redis;
  let prefix: string;
  const key = { orgId: 'org-1', objectType: 'ticket', objectId: '1500', propertyName: 'hs_ticket_priority' };
  before(() => {
    redis = createTestRedis();
  });
  beforeEach(() => {
    prefix = `test:${randomBytes(4).toString('hex')}:`;
  });
  // Only ever this one key (KEYS would scan everyone's keys on the shared Redis).
  afterEach(async () => {
    await redis.del(`${prefix}property-clock:org-1:ticket:1500:hs_ticket_priority`);
  });
  after(() => redis.disconnect());

  it('given no change handled, when read, then there is no clock', async () => {
    const clock = createRedisPropertyClock(redis, { prefix, ttlMs: 60000 });
    assert.equal(await clock.lastApplied(key), undefined);
  });

  it('given a clock, when advanced to an older time, then it keeps the newer one; a newer time raises it', async () => {
    const clock = createRedisPropertyClock(redis, { prefix, ttlMs: 60000 });
    await clock.advance(key, 1_764_000_000_500);
    await clock.advance(key, 1_764_000_000_100);
    assert.equal(await clock.lastApplied(key), 1_764_000_000_500);
    await clock.advance(key, 1_764_000_000_900);
    assert.equal(await clock.lastApplied(key), 1_764_000_000_900);
    assert.equal(await clock.lastApplied({ ...key, propertyName: 'subject' }), undefined, 'per property');
  });

  it('given concurrent advances in any order, when they settle, then the clock is the newest of them', async () => {
    const clock = createRedisPropertyClock(redis, { prefix, ttlMs: 60000 });
    const times = Array.from({ length: 50 }, (_, index) => 1_764_000_000_000 + ((index * 37) % 50));
    await Promise.all(times.map((occurredAt) => clock.advance(key, occurredAt)));
    assert.equal(await clock.lastApplied(key), Math.max(...times));
  });

  it('given a TTL, when the clock is written, then the key expires (longer than HubSpot retries in production)', async () => {
    const clock = createRedisPropertyClock(redis, { prefix, ttlMs: 60000 });
    await clock.advance(key, 1_000);
    const ttl = await redis.pttl(`${prefix}property-clock:org-1:ticket:1500:hs_ticket_priority`);
    assert.ok(ttl > 50000 && ttl <= 60000, `pttl ${ttl}`);
  });
});
