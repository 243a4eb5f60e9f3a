import assert from 'node:assert/strict';
import { createTestRedis, deleteKeysMatching } from '../support/redis.ts';
import type { Redis } from '../../lib/redis.ts';
import * as fixtures from '../fakes/hubspot-fixtures.ts';
import { startTestPipeline, waitFor, type TestOrg, type TestPipeline } from '../support/pipeline.ts';

/** Deletes every key of this run (its own prefix only: the Redis is shared), as a Redis restart would. */
const forgetEverything = (redis: Redis, prefix: string): Promise<number> =>
  deleteKeysMatching(redis, `${prefix}*`);

/**
 * Found by the chaos soak: Redis restarted (no persistence), then HubSpot retried a message that
 * was already answered. The processor's dedup key was gone, so it emitted again (same event id,
 * harmless at OpenCX, which replays its stored answer), and the AI reply's claim was gone too,
 * so the same reply was posted to the customer a second time.
 */
describe('Redis losing its data (real Kafka, registry, Redis)', function () {
  this.timeout(120000);
  let pipeline: TestPipeline;
  let org: TestOrg;
  let redis: Redis;

  before(async () => {
    pipeline = await startTestPipeline();
    org = await pipeline.createOrg();
    redis = createTestRedis();
  });
  after(async () => {
    redis?.disconnect();
    await pipeline?.stop();
  });

  it('given an answered message, when Redis forgets everything and HubSpot retries it, then the AI reply is not posted again', async () => {
    const first = fixtures.message({ kind: 'customer-chat', text: 'Where is my parcel?' });
    pipeline.hubspot.addMessage(first, { portalId: org.portalId });
    const event = fixtures.webhookEventFor(first, { portalId: org.portalId });
    assert.equal((await pipeline.postBatch([event])).status, 200);
    const thread = first.conversationsThreadId;
    await waitFor('the AI reply in HubSpot', () =>
      pipeline.hubspot.posted.some((entry) => entry.threadId === thread),
    );

    assert.ok((await forgetEverything(redis, pipeline.env.REDIS_KEY_PREFIX ?? '')) > 0, 'keys were deleted');
    assert.equal((await pipeline.postBatch([{ ...event, attemptNumber: 1 }])).status, 200);

    // A later message of the same thread follows the retried one through both services, in order.
    const marker = fixtures.message({ kind: 'customer-chat', threadId: thread, text: 'Marker' });
    pipeline.hubspot.addMessage(marker, { portalId: org.portalId });
    assert.equal(
      (await pipeline.postBatch([fixtures.webhookEventFor(marker, { portalId: org.portalId })])).status,
      200,
    );
    await waitFor(
      "the marker's AI reply in HubSpot",
      () => pipeline.hubspot.posted.filter((entry) => entry.threadId === thread).length >= 2,
      60000,
    );
    assert.equal(
      pipeline.hubspot.posted.filter((entry) => entry.threadId === thread).length,
      2,
      'one reply to each customer message: the retried one was not answered twice',
    );
  });
});
