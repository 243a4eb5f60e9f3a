import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { claimOrWait, createRedisDedupStore } from '../../lib/dedup-store.ts';
import { ErrorCode, PipelineError } from '../../lib/errors.ts';
import { CallClass, createRedisRateLimiter, rateLimitKeys } from '../../lib/rate-limiter.ts';
import { createLogger } from '../../lib/log.ts';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRedis, type Redis } from '../../lib/redis.ts';
import { waitFor } from '../support/pipeline.ts';
import { bareMessageAt } from '../support/topic-reader.ts';
import { SoakRedis } from '../support/soak/cluster.ts';
import {
  createRedisOwedTicketLookUps,
  owedTicketLookUpKeys,
} from '../../services/outbound/src/owed-ticket-look-ups.ts';
import {
  attemptKey,
  createRedisReplyAttempts,
  MEMORY_MARGIN_MS,
} from '../../services/outbound/src/reply-attempts.ts';
import { memorySinceKey } from '../../services/outbound/src/redis-memory.ts';
import { createTestRedis, deleteKeysMatching, serverOf } from '../support/redis.ts';
import { createDeadLetterWriter, writtenMarkerKey } from '../../lib/dead-letters/writer.ts';
import { deadLetterId } from '../../lib/dead-letters/letter.ts';
import type { AvroCodec } from '../../lib/registry.ts';
import type { Producer } from 'kafkajs';

describe('Redis adapters (real Redis)', () => {
  let redis: Redis;
  let prefix: string;

  beforeEach(() => {
    redis = createTestRedis();
    prefix = `test:${randomBytes(4).toString('hex')}:`;
  });
  afterEach(async () => {
    // Only this test's keys: Redis is shared with other runs.
    await deleteKeysMatching(redis, `${prefix}*`);
    redis.disconnect();
  });

  /** A redis-server of the test's own (restartable: SIGKILL, every key lost) and a client of it. */
  const withOwnRedis = async (
    name: string,
    work: (client: Redis, own: SoakRedis) => Promise<void>,
  ): Promise<void> => {
    const own = new SoakRedis(mkdtempSync(join(tmpdir(), `redis-${name}-`)));
    await own.start();
    const client = createRedis(own.url, createLogger('test', 'silent'));
    try {
      await work(client, own);
    } finally {
      client.disconnect();
      await own.stop();
    }
  };

  describe('dedup store: claim, emit, then confirm', () => {
    const store = (owner: string, leaseMs = 500) =>
      createRedisDedupStore(redis, { prefix, owner, leaseMs, doneTtlMs: 60000 });

    it('given a fresh key, when claimed twice by two replicas, then the first claims and the second sees it in flight', async () => {
      assert.equal(await store('a').claim('org:message:1'), 'claimed');
      assert.equal(await store('b').claim('org:message:1'), 'in-flight');
    });

    it('given our own claim (a retried batch in this process), when claimed again, then it is ours again with its lease extended', async () => {
      assert.equal(await store('a', 1000).claim('k'), 'claimed');
      await redis.pexpire(`${prefix}dedup:k`, 100);
      assert.equal(await store('a', 1000).claim('k'), 'claimed');
      assert.ok((await redis.pttl(`${prefix}dedup:k`)) > 500, 'the lease extended');
      assert.equal(await store('b', 1000).claim('k'), 'in-flight');
    });

    it('given a confirmed key, when claimed again, then it is a duplicate', async () => {
      await store('a').claim('k');
      await store('a').confirm('k');
      assert.equal(await store('b').claim('k'), 'duplicate');
      assert.ok((await redis.pttl(`${prefix}dedup:k`)) > 50000, 'done outlives the lease');
    });

    it('given a claimant that died, when its lease runs out, then another replica claims the key', async () => {
      assert.equal(await store('dead', 200).claim('k'), 'claimed');
      const result = await claimOrWait(store('b', 200), 'k', {
        leaseMs: 200,
        now: Date.now,
        sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
      });
      assert.equal(result, 'claimed');
    });

    it("given a released claim, when released by another owner, then that owner's release does nothing", async () => {
      await store('a').claim('k');
      await store('b').release('k');
      assert.equal(await store('c').claim('k'), 'in-flight');
      await store('a').release('k');
      assert.equal(await store('c').claim('k'), 'claimed');
    });

    it('given a claim held past the wait, when waiting, then it gives up with a retriable error', async () => {
      await store('a', 5000).claim('k');
      await assert.rejects(
        claimOrWait(store('b', 100), 'k', {
          leaseMs: 100,
          now: Date.now,
          sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
        }),
        { code: 'DEDUP_IN_FLIGHT', retriable: true },
      );
    });
  });

  describe('owed ticket look-ups', () => {
    const owedIn = async (): Promise<string[]> => redis.zrange(owedTicketLookUpKeys(prefix).queue, 0, -1);

    it('given a thread owed twice, then it is owed once and taken once (leased), and after it is settled another replica owing it again is a no-op', async () => {
      const replicaA = createRedisOwedTicketLookUps(redis, prefix);
      await replicaA.owe('org-1', 'thread-1');
      await replicaA.owe('org-1', 'thread-1');
      assert.deepEqual(await owedIn(), [JSON.stringify(['org-1', 'thread-1'])]);
      assert.deepEqual(await replicaA.takeDue(10), [{ orgId: 'org-1', threadId: 'thread-1' }]);
      assert.deepEqual(await replicaA.takeDue(10), [], 'leased: not due again at once');
      await replicaA.settle({ orgId: 'org-1', threadId: 'thread-1' });
      assert.deepEqual(await owedIn(), []);
      await createRedisOwedTicketLookUps(redis, prefix).owe('org-1', 'thread-1');
      assert.deepEqual(await owedIn(), [], 'settled lately: not owed again');
    });

    it('given a thread this replica owed, when owed again, then Redis is not asked (the owe it holds stands) unless forced; another replica asks', async () => {
      const replicaA = createRedisOwedTicketLookUps(redis, prefix);
      await replicaA.owe('org-1', 'thread-2');
      // Behind the replica's back (as if Redis lost the key): only a call to Redis would owe it again.
      await redis.del(owedTicketLookUpKeys(prefix).queue);
      await replicaA.owe('org-1', 'thread-2');
      assert.deepEqual(await owedIn(), [], 'remembered: no script call');
      await replicaA.owe('org-1', 'thread-2', { checkRedis: true });
      assert.deepEqual(
        await owedIn(),
        [JSON.stringify(['org-1', 'thread-2'])],
        'checkRedis: owed again past the memo (what held ticket events do)',
      );
      await redis.del(owedTicketLookUpKeys(prefix).queue);
      await createRedisOwedTicketLookUps(redis, prefix).owe('org-1', 'thread-2');
      assert.deepEqual(await owedIn(), [JSON.stringify(['org-1', 'thread-2'])], 'another replica owes it');
      await replicaA.settle({ orgId: 'org-1', threadId: 'thread-2' });
      await replicaA.owe('org-1', 'thread-2', { force: true });
      assert.deepEqual(
        await owedIn(),
        [JSON.stringify(['org-1', 'thread-2'])],
        'forced: owed even when settled',
      );
    });
    it('regression (soak): given a thread this replica owed, when Redis restarts without its data, then the next owe reaches Redis again (the memo is forgotten)', async function () {
      this.timeout(30000);
      await withOwnRedis('owed', async (client, own) => {
        const replica = createRedisOwedTicketLookUps(client, prefix);
        await replica.owe('org-1', 'thread-3');
        await own.restart(200);
        await waitFor(
          'the client to reconnect',
          async () => (await client.ping().catch(() => '')) === 'PONG',
          10000,
        );
        assert.deepEqual(
          await client.zrange(owedTicketLookUpKeys(prefix).queue, 0, -1),
          [],
          'the restart lost it',
        );
        await replica.owe('org-1', 'thread-3');
        assert.deepEqual(await client.zrange(owedTicketLookUpKeys(prefix).queue, 0, -1), [
          JSON.stringify(['org-1', 'thread-3']),
        ]);
      });
    });
  });

  describe('AI reply attempt markers (reply-attempts.ts)', () => {
    const MINUTE = 60_000;
    const memorySince = () => memorySinceKey(prefix, 'org');

    it('given Redis that has remembered for an hour, when a reply to a message of a minute ago is marked twice, then the first mark is a first attempt and the second is not', async () => {
      const attempts = createRedisReplyAttempts(redis, prefix, 60_000);
      await redis.set(memorySince(), String(Date.now() - 60 * MINUTE));
      assert.equal(await attempts.mark('org', 'org:ai-reply:e1', Date.now() - MINUTE), true);
      assert.equal(await attempts.mark('org', 'org:ai-reply:e1', Date.now() - MINUTE), false);
      await attempts.clear('org', 'org:ai-reply:e1');
      assert.equal(
        await attempts.mark('org', 'org:ai-reply:e1', Date.now() - MINUTE),
        true,
        'cleared: first again',
      );
    });

    it('regression (soak): given a reply attempted before Redis lost its data, when it is marked after, then it is not a first attempt (the thread is read before posting)', async () => {
      const attempts = createRedisReplyAttempts(redis, prefix, 60_000);
      await redis.set(memorySince(), String(Date.now() - 60 * MINUTE));
      const occurredAt = Date.now() - 2 * MINUTE;
      assert.equal(
        await attempts.mark('org', 'org:ai-reply:e2', occurredAt),
        true,
        'posted; its record then failed',
      );
      // Redis restarts without its data: the marker and the time it remembered from are gone.
      await redis.del(attemptKey(prefix, 'org', 'org:ai-reply:e2'), memorySince());
      assert.equal(
        await attempts.mark('org', 'org:ai-reply:e2', occurredAt),
        false,
        'may have been posted: read first',
      );
      assert.equal(
        await attempts.mark('org', 'org:ai-reply:e3', occurredAt),
        false,
        'any reply to a message before the loss',
      );
      assert.equal(
        await attempts.mark('org', 'org:ai-reply:e4', Date.now() + 2 * MINUTE),
        true,
        'a message after the loss (beyond the clock margin) cannot have been attempted before it',
      );
      const since = Number(await redis.get(memorySince()));
      assert.ok(Math.abs(since - Date.now()) < 5000, 'Redis remembers from now (its own clock)');
    });

    it('given a reply whose message occurred within the clock margin of when Redis began remembering, then it is read first (HubSpot and Redis clocks may differ)', async () => {
      const attempts = createRedisReplyAttempts(redis, prefix, 60_000);
      await redis.set(memorySince(), String(Date.now() - 30_000));
      assert.equal(await attempts.mark('org', 'org:ai-reply:e5', Date.now()), false);
      assert.equal(await attempts.mark('org', 'org:ai-reply:e6', Date.now() + MEMORY_MARGIN_MS), true);
    });
  });

  describe('rolling-window rate limiter', () => {
    it('given a limit of 5 per 400 ms, when 8 requests come at once, then 5 pass and the rest wait for the window', async () => {
      const limiter = createRedisRateLimiter(redis, { prefix, max: 5, windowMs: 400 });
      const waits = await Promise.all(Array.from({ length: 8 }, () => limiter.acquire('portal-a')));
      // acquire answers how long it slept for the window (what Redis told it), not a stopwatch.
      assert.equal(waits.filter((wait) => wait === 0).length, 5);
      assert.equal(
        waits.filter((wait) => wait > 0).length,
        3,
        'the last three waited for the window to roll',
      );
    });

    it('given 300 customer calls at once on a window with room, then they ask Redis together (two script calls, of 256 and 44) and all get a slot; with room for 280, 280 get one at once and 20 wait for the window', async () => {
      // Every command Redis runs for this bucket, as Redis saw it (MONITOR, filtered by key).
      const bucketKey = rateLimitKeys(prefix, 'portal-a').window;
      const monitor = await (await serverOf(redis, bucketKey)).monitor();
      const seen: string[][] = [];
      monitor.on('monitor', (_time: string, args: string[]) => {
        if (args.includes(bucketKey)) seen.push(args);
      });
      try {
        const roomy = createRedisRateLimiter(redis, { prefix, max: 1000, windowMs: 60000 });
        const waits = await Promise.all(Array.from({ length: 300 }, () => roomy.acquire('portal-a')));
        assert.deepEqual(new Set(waits), new Set([0]));
        assert.equal(await redis.zcard(bucketKey), 300, 'one slot each');
        // The ZCARD above ran after both calls: once MONITOR reports it, it has reported them.
        await waitFor(
          'MONITOR to report the calls',
          () => seen.some(([command]) => command === 'zcard'),
          5000,
        );
        const scriptCalls = seen.filter(([command]) => /^eval(sha)?$/i.test(command ?? ''));
        // EVALSHA, and EVAL once when Redis did not have the script yet (NOSCRIPT): 2 or 3.
        assert.deepEqual(
          [...new Set(scriptCalls.map((args) => args.at(-2)))].sort(),
          ['256', '44'],
          'two calls: 256 callers and 44',
        );
      } finally {
        monitor.disconnect();
      }

      const tight = createRedisRateLimiter(redis, { prefix, max: 280, windowMs: 600 });
      const tightWaits = await Promise.all(Array.from({ length: 300 }, () => tight.acquire('portal-b')));
      assert.equal(tightWaits.filter((wait) => wait === 0).length, 280);
      assert.equal(
        tightWaits.filter((wait) => wait > 0).length,
        20,
        'the last 20 waited for the window to roll',
      );
    });

    it('given one bucket at its limit, when another bucket asks, then it is not delayed', async () => {
      const limiter = createRedisRateLimiter(redis, { prefix, max: 1, windowMs: 5000 });
      assert.equal(await limiter.acquire('portal-a'), 0);
      assert.equal(
        await redis.zcard(rateLimitKeys(prefix, 'portal-a').window),
        1,
        'portal-a is at its limit',
      );
      // Held behind portal-a it would have slept for its 5 s window: it got its slot without a wait.
      assert.equal(await limiter.acquire('portal-b'), 0);
    });

    it('given a window of 10 with 8 slots taken, when a bookkeeping call asks, then it gets no slot (2 are kept for customers) and gives up at once, while customer calls still take both', async () => {
      const limiter = createRedisRateLimiter(redis, { prefix, max: 10, windowMs: 5000 });
      for (let i = 0; i < 7; i++) await limiter.acquire('portal-a');
      assert.equal(await limiter.acquire('portal-a', { callClass: CallClass.bookkeeping, maxWaitMs: 0 }), 0);
      await assert.rejects(
        limiter.acquire('portal-a', { callClass: CallClass.bookkeeping, maxWaitMs: 0 }),
        (error: unknown) =>
          error instanceof PipelineError &&
          error.code === ErrorCode.upstreamRateLimited &&
          error.retriable &&
          (error.retryAfterMs ?? 0) > 0,
      );
      assert.equal(await limiter.acquire('portal-a'), 0);
      assert.equal(await limiter.acquire('portal-a', { callClass: CallClass.customer }), 0);
      assert.equal(
        await redis.zcard(rateLimitKeys(prefix, 'portal-a').window),
        10,
        'the bookkeeping call that gave up took nothing',
      );
    });

    it('given a full window with bookkeeping calls of another replica waiting, when one slot frees and a customer call asks after them, then the customer gets it and the bookkeeping calls wait for the window to roll', async () => {
      const replicaB = createTestRedis();
      const until = (at: number) =>
        new Promise((resolve) => setTimeout(resolve, Math.max(0, at - Date.now())));
      try {
        const options = { prefix, max: 10, windowMs: 2000 };
        const limiterA = createRedisRateLimiter(redis, options);
        const limiterB = createRedisRateLimiter(replicaB, options);
        // One slot taken at t0 (frees at t0+2000), nine at t0+1000 (free at t0+3000).
        await limiterA.acquire('portal-a');
        const t0 = Date.now();
        await until(t0 + 1000);
        await Promise.all(Array.from({ length: 9 }, () => limiterA.acquire('portal-a')));
        const order: string[] = [];
        const bookkeeping = Array.from({ length: 5 }, (_, i) =>
          limiterB
            .acquire('portal-a', { callClass: CallClass.bookkeeping })
            .then(() => void order.push(`bookkeeping-${i}`)),
        );
        // Without priority a bookkeeping waiter takes the slot freed at t0+2000 (they all wake by
        // t0+2500); with it, that slot is the customers' and bookkeeping waits for t0+3000.
        await until(t0 + 2750);
        const customer = limiterA.acquire('portal-a').then(() => void order.push('customer'));
        await Promise.all([customer, ...bookkeeping]);
        assert.equal(order[0], 'customer', `slots went in this order: ${order.join(', ')}`);
      } finally {
        replicaB.disconnect();
      }
    });
  });

  describe('Redis gone: the batched paths fail, they do not hang', () => {
    // Nothing listens on port 1: every command fails once ioredis's retries are spent.
    const gone = () => createRedis('redis://127.0.0.1:1', createLogger('test', 'silent'));

    it("given Redis unreachable, when 20 customer calls ask the rate limiter together, then each rejects with Redis's error (the conversation is retried, never stalled)", async () => {
      const unreachable = gone();
      try {
        const limiter = createRedisRateLimiter(unreachable, { prefix, max: 100, windowMs: 1000 });
        const outcomes = await Promise.allSettled(
          Array.from({ length: 20 }, () => limiter.acquire('portal-a')),
        );
        assert.deepEqual(new Set(outcomes.map((outcome) => outcome.status)), new Set(['rejected']));
      } finally {
        unreachable.disconnect();
      }
    });

    it('given Redis unreachable, when the dead-letter writer is asked about 20 records in one turn, then each ask rejects (the consumer counts it as not dead-lettered)', async () => {
      const unreachable = gone();
      try {
        const writer = createDeadLetterWriter({
          service: 'processor',
          topic: 'unused',
          producer: {} as Producer,
          codec: {} as AvroCodec,
          redis: unreachable,
          keyPrefix: prefix,
        });
        const outcomes = await Promise.allSettled(
          Array.from({ length: 20 }, (_, offset) =>
            writer.alreadyWritten({
              topic: 'raw',
              partition: 0,
              message: bareMessageAt(offset),
            }),
          ),
        );
        assert.deepEqual(new Set(outcomes.map((outcome) => outcome.status)), new Set(['rejected']));
      } finally {
        unreachable.disconnect();
      }
    });
  });

  describe('dead-letter markers read together (one MGET; one per slot on a Cluster)', () => {
    it('given 40 records of which every third was dead-lettered, when the writer is asked about all in one turn, then each answer is its own', async () => {
      const writer = createDeadLetterWriter({
        service: 'processor',
        topic: 'unused',
        producer: {} as Producer,
        codec: {} as AvroCodec,
        redis,
        keyPrefix: prefix,
      });
      const offsets = Array.from({ length: 40 }, (_, offset) => offset);
      const written = offsets.filter((offset) => offset % 3 === 0);
      for (const offset of written)
        await redis.set(
          writtenMarkerKey(prefix, deadLetterId('processor', 'raw', 0, bareMessageAt(offset).offset)),
          'written',
        );
      const answers = await Promise.all(
        offsets.map((offset) =>
          writer.alreadyWritten({ topic: 'raw', partition: 0, message: bareMessageAt(offset) }),
        ),
      );
      assert.deepEqual(
        offsets.filter((offset) => answers[offset]),
        written,
      );
    });
  });

  describe('Lua scripts by SHA (defineScript)', () => {
    it("given a Redis restart that empties the script cache (its own redis-server), then the rate limiter's and the dedup store's scripts still run", async function () {
      this.timeout(30000);
      await withOwnRedis('scripts', async (client, own) => {
        const limiter = createRedisRateLimiter(client, { prefix, max: 5, windowMs: 10000 });
        const dedup = createRedisDedupStore(client, { prefix, owner: 'a', leaseMs: 5000, doneTtlMs: 60000 });
        assert.equal(await limiter.acquire('portal-1'), 0);
        assert.equal(await dedup.claim('k1'), 'claimed');
        assert.equal(await dedup.renew('k1'), true);
        const cachedScripts = async () =>
          Number(/number_of_cached_scripts:(\d+)/.exec(await client.info('memory'))?.[1] ?? 'NaN');
        // The limiter's customer slots, the claim and the renewal.
        assert.equal(await cachedScripts(), 3, 'called by SHA, loaded once each');
        await own.restart(200);
        await waitFor(
          'the client to reconnect',
          async () => (await client.ping().catch(() => '')) === 'PONG',
          10000,
        );
        assert.equal(await cachedScripts(), 0, 'the restart emptied the script cache');
        // Every key and every cached script is gone: the next calls load their scripts again.
        assert.equal(await limiter.acquire('portal-1'), 0);
        assert.equal(await dedup.claim('k1'), 'claimed');
        assert.equal(await dedup.renew('k1'), true);
        await dedup.release('k1');
        assert.equal(await client.exists(`${prefix}dedup:k1`), 0, 'released by its script');
      });
    });
  });
});
