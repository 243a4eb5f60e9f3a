import assert from 'node:assert/strict';
import {
  TopicRead,
  headersAsText,
  rangesBetween,
  rangesOfRecordAt,
  recordsIn,
} from '../../lib/kafka/index.ts';
import { asKafkaMessage } from '../../tools/reprocess/window.ts';

describe('topic window: the pure parts of a bounded read (lib/kafka/topic-window.ts)', () => {
  it("given the offsets of a window's start and end, when ranged, then each partition reads [start, end)", () => {
    const ranges = rangesBetween(
      [
        { partition: 0, offset: '5' },
        { partition: 1, offset: '7' },
        { partition: 2, offset: '3' },
      ],
      [
        { partition: 0, offset: '9' },
        { partition: 1, offset: '7' },
      ],
    );
    assert.deepEqual(
      [...ranges],
      [
        [0, { start: 5n, end: 9n }],
        [1, { start: 7n, end: 7n }],
        // No end known: an empty range, never the whole partition.
        [2, { start: 3n, end: 3n }],
      ],
    );
    assert.equal(recordsIn(ranges), 4);
  });

  it('given a record still on the topic, when ranged for it, then only its partition reads, exactly it', () => {
    const offsets = [
      { partition: 0, low: '0', high: '10' },
      { partition: 1, low: '4', high: '8' },
    ];
    assert.deepEqual(
      [...rangesOfRecordAt(offsets, 1, '6')],
      [
        [0, { start: 10n, end: 10n }],
        [1, { start: 6n, end: 7n }],
      ],
    );
    assert.equal(recordsIn(rangesOfRecordAt(offsets, 1, '6')), 1);
  });

  it('given a record expired (below low) or not written yet (at high), when ranged, then nothing is read', () => {
    const offsets = [{ partition: 0, low: '4', high: '8' }];
    assert.equal(recordsIn(rangesOfRecordAt(offsets, 0, '3')), 0);
    assert.equal(recordsIn(rangesOfRecordAt(offsets, 0, '8')), 0);
    assert.equal(recordsIn(rangesOfRecordAt(offsets, 5, '5')), 0);
  });

  it('given records inside and outside the window, when accepted, then only those inside count and a partition closes at its end', () => {
    const read = new TopicRead(
      'raw',
      rangesBetween([{ partition: 0, offset: '2' }], [{ partition: 0, offset: '4' }]),
      10,
    );
    assert.equal(read.accept(0, '1'), false, 'before the start: a seek not applied yet');
    assert.equal(read.accept(1, '2'), false, 'a partition not in the window');
    assert.equal(read.accept(0, '2'), true);
    assert.equal(read.done, false);
    assert.equal(read.accept(0, '3'), true);
    assert.equal(read.done, true);
    assert.equal(read.accept(0, '4'), false, 'written since the read started');
    assert.deepEqual(read.summary(false), {
      topic: 'raw',
      inWindow: 2,
      read: 2,
      capped: false,
      timedOut: false,
      unfinished: [],
    });
  });

  it('given more records than the cap, when accepted, then the read stops at the cap and says so', () => {
    const read = new TopicRead(
      'raw',
      rangesBetween(
        [
          { partition: 0, offset: '0' },
          { partition: 1, offset: '0' },
        ],
        [
          { partition: 0, offset: '5' },
          { partition: 1, offset: '5' },
        ],
      ),
      2,
    );
    assert.equal(read.accept(0, '0'), true);
    assert.equal(read.accept(1, '0'), true);
    assert.equal(read.done, true);
    assert.equal(read.accept(0, '1'), false);
    const summary = read.summary(true);
    assert.deepEqual(
      { read: summary.read, capped: summary.capped, timedOut: summary.timedOut, inWindow: summary.inWindow },
      { read: 2, capped: true, timedOut: false, inWindow: 10 },
    );
  });

  it('given the time budget ran out, when summarised, then it is timed out and names the partitions not read to the end', () => {
    const read = new TopicRead(
      'raw',
      rangesBetween(
        [
          { partition: 0, offset: '0' },
          { partition: 1, offset: '0' },
        ],
        [
          { partition: 0, offset: '1' },
          { partition: 1, offset: '3' },
        ],
      ),
      100,
    );
    read.accept(0, '0');
    read.accept(1, '0');
    assert.deepEqual(read.summary(true), {
      topic: 'raw',
      inWindow: 4,
      read: 2,
      capped: false,
      timedOut: true,
      unfinished: [1],
    });
  });

  it('given an empty window, when read, then it is done before it starts', () => {
    assert.equal(new TopicRead('raw', rangesBetween([{ partition: 0, offset: '3' }], []), 10).done, true);
  });

  it('given headers as kafkajs gives them, when read as text, then each is its first value as a string', () => {
    assert.deepEqual(
      headersAsText({ a: Buffer.from('x'), b: 'y', c: [Buffer.from('z'), Buffer.from('w')], d: undefined }),
      { a: 'x', b: 'y', c: 'z' },
    );
    assert.deepEqual(headersAsText(undefined), {});
  });

  it("given a window record, when handed to the processor's handler by reprocess, then it is a kafkajs message with the same bytes", () => {
    const value = Buffer.from('avro');
    const message = asKafkaMessage({
      topic: 'raw',
      partition: 2,
      offset: '41',
      timestamp: 1_700_000_000_000,
      key: Buffer.from('acme'),
      value,
      headers: { h: 'v' },
    });
    assert.equal(message.value, value);
    assert.equal(message.offset, '41');
    assert.equal(message.timestamp, '1700000000000');
    assert.deepEqual(message.headers, { h: 'v' });
  });
});
