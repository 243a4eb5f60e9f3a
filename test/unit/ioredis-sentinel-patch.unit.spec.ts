import assert from 'node:assert/strict';
import type { Redis } from 'ioredis';
import { createLogger } from '../../lib/log.ts';
import { createRedis } from '../../lib/redis.ts';
import { startFakeRedisMaster, startFakeSentinel } from '../fakes/redis-sentinel.ts';
import { sleep, waitFor } from '../support/pipeline.ts';

/**
 * patches/ioredis+5.11.1.patch (applied by patch-package at `npm install`/`npm ci`). The
 * pipeline's Sentinel client (lib/redis.ts) has ioredis's failover detector on: on a sentinel's
 * +switch-master it disconnects the connector so that the client reconnects to the new master.
 * Unpatched, when that message came while the client was already reconnecting (the master had
 * died, and the client was asking a sentinel where the master is), the disconnect aborted the
 * connect in progress and the client ended for good (status `end`, every command "Connection is
 * closed."): the soak's first Sentinel failovers (issue 22) left 3 of 4 service replicas without
 * Redis until restarted, and outbound stopped. Reproduced here at that exact point with fakes.
 */
describe('ioredis patch: a failover announced while the Sentinel client reconnects', () => {
  const name = 'pipeline';

  it('given the master died and the client is asking a sentinel for it, when +switch-master comes, then the client connects again rather than ending', async () => {
    const master = await startFakeRedisMaster();
    const sentinel = await startFakeSentinel(name, () => master.port);
    const redis = createRedis(
      {
        REDIS_URL: 'redis://127.0.0.1:6379',
        REDIS_SENTINELS: [{ host: '127.0.0.1', port: sentinel.port }],
        REDIS_SENTINEL_NAME: name,
      },
      createLogger('ioredis-patch-test', 'silent'),
    ) as Redis;
    try {
      assert.equal(await redis.ping(), 'PONG');
      await waitFor('the failover detector to subscribe', () => sentinel.subscribers() > 0, 5000);

      // The master dies: the client reconnects and asks the sentinel, which holds its answer.
      sentinel.hold();
      master.dropClients();
      await waitFor('the reconnecting client to ask the sentinel', () => sentinel.held() > 0, 5000);
      // The sentinels announce the failover while that question is open.
      sentinel.switchMaster(master.port, master.port);
      await sleep(100);
      sentinel.release();

      await waitFor(
        'the client to be ready again',
        () => {
          assert.notEqual(redis.status, 'end', 'the client ended: it will never reconnect');
          return redis.status === 'ready';
        },
        5000,
      );
      assert.equal(await redis.ping(), 'PONG');
    } finally {
      redis.disconnect();
      await Promise.all([sentinel.close(), master.close()]);
    }
  });
});
