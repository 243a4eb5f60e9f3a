import assert from 'node:assert/strict';
import { mgetAcrossSlots } from '../../lib/redis.ts';
import { groupBySlot, hashTag, keySlot } from '../../lib/redis-slots.ts';
import { rateLimitKeys } from '../../lib/rate-limiter.ts';
import { owedTicketLookUpKeys } from '../../services/outbound/src/owed-ticket-look-ups.ts';
import { memorySinceKey } from '../../services/outbound/src/redis-memory.ts';
import { attemptKey } from '../../services/outbound/src/reply-attempts.ts';

describe('Redis Cluster slots', () => {
  it("given keys, when their slot is computed, then it is Redis's (CLUSTER KEYSLOT)", () => {
    // Values from Redis's cluster spec and `redis-cli CLUSTER KEYSLOT`.
    assert.equal(keySlot('123456789'), 12739);
    assert.equal(keySlot('foo'), 12182);
    assert.equal(keySlot('{user1000}.following'), keySlot('{user1000}.followers'));
    assert.equal(keySlot('foo{}{bar}'), keySlot('foo{}{bar}'), 'an empty tag: the whole key');
    assert.notEqual(keySlot('foo{}{bar}'), keySlot('bar'));
    assert.equal(keySlot('foo{{bar}}zap'), keySlot('{bar'));
    assert.equal(keySlot('foo{bar}{zap}'), keySlot('bar'));
  });

  it('given a hash tag of text with braces, then the braces do not end it early', () => {
    assert.equal(hashTag('org:a}b'), '{org:a_b}');
  });

  it("given the keys each script or MULTI reads together, then they share a slot, and different tenants' keys spread", () => {
    const prefix = 'hubspot-opencx:';
    const limit = rateLimitKeys(prefix, 'hubspot:123');
    assert.equal(keySlot(limit.window), keySlot(limit.waiting));
    const owed = owedTicketLookUpKeys(prefix);
    assert.equal(keySlot(owed.queue), keySlot(owed.settled('org-1', 'thread-1')));
    assert.equal(keySlot(owed.queue), keySlot(owed.failures));
    assert.equal(
      keySlot(attemptKey(prefix, 'org-1', 'org-1:ai-reply:e1')),
      keySlot(memorySinceKey(prefix, 'org-1')),
    );
    const slots = new Set(
      Array.from({ length: 50 }, (_, i) => keySlot(rateLimitKeys(prefix, `hubspot:${1000 + i}`).window)),
    );
    assert.ok(slots.size > 40, `50 portals over ${slots.size} slots`);
  });

  it('given keys of several slots, when grouped, then each group holds the positions of one slot, in order', () => {
    const keys = ['{a}1', '{b}1', '{a}2', '{c}1', '{b}2'];
    assert.deepEqual(groupBySlot(keys), [[0, 2], [1, 4], [3]]);
  });

  const fakeRedis = (isCluster: boolean) => {
    const store = new Map([
      ['{a}1', 'x'],
      ['{b}2', 'y'],
    ]);
    const calls: string[][] = [];
    return {
      calls,
      client: {
        isCluster,
        mget: (...keys: string[]) => {
          calls.push(keys);
          if (isCluster && new Set(keys.map(keySlot)).size > 1)
            return Promise.reject(new Error("CROSSSLOT Keys in request don't hash to the same slot"));
          return Promise.resolve(keys.map((key) => store.get(key) ?? null));
        },
      } as unknown as Parameters<typeof mgetAcrossSlots>[0],
    };
  };

  it('given one server, when keys of several slots are read, then one MGET reads them all', async () => {
    const { client, calls } = fakeRedis(false);
    assert.deepEqual(await mgetAcrossSlots(client, ['{a}1', '{b}1', '{a}2', '{b}2']), ['x', null, null, 'y']);
    assert.equal(calls.length, 1);
  });

  it('given a Cluster, when keys of several slots are read, then one MGET per slot, and the values come back in the keys’ order', async () => {
    const { client, calls } = fakeRedis(true);
    assert.deepEqual(await mgetAcrossSlots(client, ['{a}1', '{b}1', '{a}2', '{b}2']), ['x', null, null, 'y']);
    assert.deepEqual(calls, [
      ['{a}1', '{a}2'],
      ['{b}1', '{b}2'],
    ]);
    assert.deepEqual(await mgetAcrossSlots(client, []), []);
  });
});
