import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Redis as RedisServer } from 'ioredis';
import { createLogger } from '../../lib/log.ts';
import { createRedis, type Redis } from '../../lib/redis.ts';
import { waitFor } from '../support/pipeline.ts';
import { SENTINELS_NOT_SET, testSentinels } from '../support/redis-sentinel.ts';

/**
 * The pipeline's client behind Sentinel (`infra/local/redis-sentinel.sh up` prints the
 * variables, which this spec reads as TEST_REDIS_SENTINELS and TEST_REDIS_SENTINEL_NAME): the
 * client finds the master through the sentinels and follows a failover. Skipped unless both are
 * set (CI's "redis cluster" step sets them; scripts/ci/redis-topologies.sh).
 */
describe('Redis behind Sentinel (its own master, replica and sentinels)', function () {
  this.timeout(60000);
  const { sentinels = [], name } = testSentinels() ?? {};
  let redis: Redis | undefined;
  let sentinel: RedisServer | undefined;

  before(function () {
    if (sentinels.length === 0 || name === undefined) {
      console.log(`      ${SENTINELS_NOT_SET}`);
      this.skip();
    }
  });
  after(() => {
    redis?.disconnect();
    sentinel?.disconnect();
  });

  const masterPort = async (): Promise<number> => {
    const [, port] = (await sentinel?.call('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', name ?? '')) as string[];
    return Number(port);
  };
  /** The port of the server `redis` talks to, as that server says (CONFIG GET port). */
  const connectedPort = async (client: Redis): Promise<number> =>
    Number(((await client.call('CONFIG', 'GET', 'port')) as string[])[1]);

  it('given the master failed over by SENTINEL FAILOVER, then the client writes to the new master without a restart', async () => {
    const [first] = sentinels;
    assert.ok(first);
    sentinel = new RedisServer({ host: first.host, port: first.port, lazyConnect: false });
    redis = createRedis(
      { REDIS_URL: 'redis://unused:6379', REDIS_SENTINELS: sentinels, REDIS_SENTINEL_NAME: name },
      createLogger('test', 'silent'),
    );
    const key = `test:sentinel:${randomBytes(4).toString('hex')}`;
    const before = await masterPort();
    await redis.set(key, 'before', 'PX', 60000);
    assert.equal(await connectedPort(redis), before, 'found the master through the sentinels');

    // The replica must have caught up, or Sentinel refuses the failover ("NOGOODSLAVE").
    await waitFor(
      'a failover to be accepted',
      async () => (await sentinel?.call('SENTINEL', 'FAILOVER', name ?? '').catch(() => 'refused')) === 'OK',
      20000,
    );
    await waitFor('the sentinels to name a new master', async () => (await masterPort()) !== before, 30000);
    const after = await masterPort();
    await waitFor(
      'the client to write to the new master',
      async () =>
        (await redis?.set(key, 'after', 'PX', 60000).catch(() => 'failed')) === 'OK' &&
        (await connectedPort(redis as Redis)) === after,
      30000,
    );
    assert.equal(await redis.get(key), 'after');
    await redis.del(key);
  });
});
