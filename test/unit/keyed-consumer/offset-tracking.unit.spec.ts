import assert from 'node:assert/strict';
import {
  finishedRun,
  firstUnfinished,
  nextCommit,
  type Tracked,
} from '../../../lib/kafka/keyed-consumer/offset-tracking.ts';

const tracked = (...entries: [offset: number, done: boolean][]): Tracked[] =>
  entries.map(([offset, done]) => ({ offset: BigInt(offset), done }));

describe('keyed consumer: offset tracking (lib/kafka/keyed-consumer/offset-tracking.ts)', () => {
  describe('finishedRun', () => {
    it('given no messages, then there is nothing to commit', () => {
      assert.deepEqual(finishedRun([]), { count: 0, next: undefined });
    });

    it('given a first message not finished, when later ones are, then the commit may not pass it', () => {
      assert.deepEqual(finishedRun(tracked([3, false], [4, true], [5, true])), { count: 0, next: undefined });
    });

    it('given finished messages up to an unfinished one, then the commit goes to the unfinished one', () => {
      assert.deepEqual(finishedRun(tracked([3, true], [4, true], [5, false], [6, true])), {
        count: 2,
        next: 5n,
      });
    });

    it('given every message finished with gaps between offsets, then the commit goes just past the last', () => {
      assert.deepEqual(finishedRun(tracked([3, true], [7, true], [12, true])), { count: 3, next: 13n });
    });
  });

  describe('firstUnfinished', () => {
    it('given finished messages before an unfinished one, then it is the unfinished one', () => {
      assert.equal(firstUnfinished(tracked([3, true], [4, false], [5, false])), 4n);
    });

    it('given every message finished, then there is none', () => {
      assert.equal(firstUnfinished(tracked([3, true], [4, true])), undefined);
    });
  });

  describe('nextCommit', () => {
    it('given nothing committed yet, then the point is committed as it is', () => {
      assert.deepEqual(nextCommit({ offset: undefined, metadata: null }, { offset: 4n, metadata: null }), {
        offset: 4n,
        metadata: null,
      });
    });

    it('given a point past the committed offset, then it is committed', () => {
      assert.deepEqual(nextCommit({ offset: 5n, metadata: 'm' }, { offset: 7n, metadata: 'm' }), {
        offset: 7n,
        metadata: 'm',
      });
    });

    it('given the same offset and the same metadata, then there is nothing to commit', () => {
      assert.equal(nextCommit({ offset: 5n, metadata: 'm' }, { offset: 5n, metadata: 'm' }), undefined);
      assert.equal(nextCommit({ offset: 5n, metadata: null }, { offset: 5n, metadata: null }), undefined);
    });

    it('given the same offset with other metadata (a tenant parked or back), then it is committed again', () => {
      assert.deepEqual(nextCommit({ offset: 5n, metadata: null }, { offset: 5n, metadata: 'cursors' }), {
        offset: 5n,
        metadata: 'cursors',
      });
    });

    it('given a point below the committed offset (a cursor held it back), then the commit does not move back', () => {
      assert.deepEqual(nextCommit({ offset: 9n, metadata: null }, { offset: 7n, metadata: 'cursors' }), {
        offset: 9n,
        metadata: 'cursors',
      });
      assert.equal(
        nextCommit({ offset: 9n, metadata: 'cursors' }, { offset: 7n, metadata: 'cursors' }),
        undefined,
      );
    });
  });
});
