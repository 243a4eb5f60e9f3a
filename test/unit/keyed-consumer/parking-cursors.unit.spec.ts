import assert from 'node:assert/strict';
import {
  MAX_CURSOR_METADATA_CHARS,
  cursorCommitPoint,
  cursorsOf,
  decodeCursors,
  type ReplayProgress,
} from '../../../lib/kafka/keyed-consumer/parking-cursors.ts';

const parked = (entries: Record<string, number>) =>
  new Map(Object.entries(entries).map(([tenant, from]) => [tenant, { from: BigInt(from) }]));
const replay = (progress: {
  tenants: Record<string, number>;
  entries?: [offset: number, done: boolean][];
  reading: boolean;
  position: number;
}): ReplayProgress => ({
  tenants: new Map(Object.entries(progress.tenants).map(([tenant, from]) => [tenant, BigInt(from)])),
  entries: (progress.entries ?? []).map(([offset, done]) => ({ offset: BigInt(offset), done })),
  reading: progress.reading,
  position: BigInt(progress.position),
});

describe('keyed consumer: parked-tenant cursors (lib/kafka/keyed-consumer/parking-cursors.ts)', () => {
  describe('cursorsOf', () => {
    it('given parked tenants and no replay, then each cursor is where the tenant was parked', () => {
      assert.deepEqual(
        cursorsOf(parked({ A: 10, B: 4 }), undefined),
        new Map([
          ['A', 10n],
          ['B', 4n],
        ]),
      );
    });

    it('given a replay still reading with nothing unfinished, then its tenants stand where it reads, not before their own cursors', () => {
      const cursors = cursorsOf(
        parked({}),
        replay({ tenants: { A: 10, B: 40 }, reading: true, position: 25 }),
      );
      assert.deepEqual(
        cursors,
        new Map([
          ['A', 25n],
          ['B', 40n],
        ]),
      );
    });

    it('given a replay with an unfinished message below where it reads, then its tenants stand at that message', () => {
      const cursors = cursorsOf(
        parked({}),
        replay({
          tenants: { A: 10 },
          entries: [
            [12, true],
            [15, false],
            [18, false],
          ],
          reading: true,
          position: 25,
        }),
      );
      assert.deepEqual(cursors, new Map([['A', 15n]]));
    });

    it('given a replay that caught up and finished everything, then its tenants need no cursor (the live stream has them)', () => {
      const cursors = cursorsOf(
        parked({ B: 7 }),
        replay({ tenants: { A: 10 }, entries: [[12, true]], reading: false, position: 30 }),
      );
      assert.deepEqual(cursors, new Map([['B', 7n]]));
    });

    it('given a tenant parked again while its replay runs, then the lower of the two cursors is kept', () => {
      const cursors = cursorsOf(
        parked({ A: 20 }),
        replay({ tenants: { A: 10 }, entries: [[14, false]], reading: false, position: 30 }),
      );
      assert.deepEqual(cursors, new Map([['A', 14n]]));
    });
  });

  describe('cursorCommitPoint and decodeCursors', () => {
    it('given no cursors, then the offset is committed with no metadata', () => {
      assert.deepEqual(cursorCommitPoint(42n, new Map(), new Map(), 1000), { offset: 42n, metadata: null });
    });

    it('given cursors, when committed and read back, then each tenant comes back with its cursor and since when it waits', () => {
      const point = cursorCommitPoint(
        42n,
        new Map([
          ['B', 30n],
          ['A', 12n],
        ]),
        new Map([['A', 500]]),
        1000,
      );
      assert.equal(point.offset, 42n);
      assert.equal(point.metadata, '{"v":1,"p":[["A","12",500],["B","30",1000]]}', 'lowest cursor first');
      assert.deepEqual(decodeCursors(point.metadata), [
        { tenant: 'A', from: 12n, since: 500 },
        { tenant: 'B', from: 30n, since: 1000 },
      ]);
    });

    it('given more cursors than the metadata holds, then the lowest are kept and the first left out holds the offset back', () => {
      const cursors = new Map(
        Array.from({ length: 200 }, (_, i) => [
          `organisation-${String(i).padStart(4, '0')}`,
          BigInt(100 + i),
        ]),
      );
      const point = cursorCommitPoint(1000n, cursors, new Map(), 1_800_000_000_000);
      assert.ok(point.metadata !== null && point.metadata.length <= MAX_CURSOR_METADATA_CHARS);
      const kept = decodeCursors(point.metadata);
      assert.ok(kept !== 'foreign' && kept.length > 0 && kept.length < 200);
      assert.deepEqual(
        kept.map(({ from }) => from),
        Array.from({ length: kept.length }, (_, i) => BigInt(100 + i)),
      );
      assert.equal(point.offset, BigInt(100 + kept.length), 'redelivered from the first tenant left out');
    });

    it('given cursors that do not fit but lie past the finished messages, then the offset is not moved', () => {
      const cursors = new Map(Array.from({ length: 200 }, (_, i) => [`organisation-${i}`, BigInt(5000 + i)]));
      assert.equal(cursorCommitPoint(1000n, cursors, new Map(), 0).offset, 1000n);
    });

    it('given no metadata, or metadata of another version, then there are no cursors', () => {
      assert.deepEqual(decodeCursors(null), []);
      assert.deepEqual(decodeCursors(''), []);
      assert.deepEqual(decodeCursors('{"v":2,"p":[["A","1",0]]}'), []);
    });

    it('given metadata that is not ours, then it is told apart', () => {
      assert.equal(decodeCursors('event-id-3'), 'foreign');
      assert.equal(decodeCursors('null'), 'foreign');
    });
  });
});
