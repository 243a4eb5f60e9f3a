import assert from 'node:assert/strict';
import type { Producer } from 'kafkajs';
import { pino } from 'pino';
import { ErrorCode } from '../../lib/errors.ts';
import { KeyPartitions, partitionOfKey } from '../../lib/kafka/batching/partitioner.ts';
import {
  RECORD_BATCH_ENVELOPE_BYTES,
  SendBudget,
  recordBudgetOf,
} from '../../lib/kafka/batching/record-budget.ts';
import { afterFailedSend, kafkaErrorTypeOf } from '../../lib/kafka/batching/refused-records.ts';
import { ReplaceableProducer } from '../../lib/kafka/batching/replaceable-producer.ts';
import { TimeoutError } from '../../lib/timeout.ts';

const limit = { maxBatchBytes: 1000 + RECORD_BATCH_ENVELOPE_BYTES, partitions: 3 };
const record = (bytes: number, partition: number | undefined) => ({
  message: { value: 'x' },
  bytes,
  partition,
});

/** What kafkajs throws when a broker refuses with error code `type`, wrapped in its retry error. */
const refused = (type: string): Error =>
  Object.assign(new Error('retries exhausted'), {
    name: 'KafkaJSNumberOfRetriesExceeded',
    cause: Object.assign(new Error(type), { name: 'KafkaJSProtocolError', type }),
  });

describe('batching publisher parts', () => {
  describe('SendBudget: one record batch per partition', () => {
    it('given records of one partition, when they fill its budget, then the next does not fit but another partition does', () => {
      const budget = new SendBudget();
      assert.equal(recordBudgetOf(limit), 1000);
      budget.add('t', record(600, 0));
      assert.equal(budget.fits('t', record(400, 0), limit), true);
      assert.equal(budget.fits('t', record(401, 0), limit), false);
      assert.equal(budget.fits('t', record(900, 1), limit), true);
      assert.equal(budget.count, 1);
      assert.equal(budget.partitionCount, 1);
    });

    it('given a keyless record, when counted, then it weighs on every partition and the send counts as several partitions', () => {
      const budget = new SendBudget();
      budget.add('t', record(500, undefined));
      assert.equal(budget.fits('t', record(501, 2), limit), false);
      assert.equal(budget.fits('t', record(500, 2), limit), true);
      assert.ok(budget.partitionCount > 1);
    });

    it('given two topics, when counted, then each has its own budget', () => {
      const budget = new SendBudget();
      budget.add('a', record(1000, 0));
      assert.equal(budget.fits('b', record(1000, 0), limit), true);
      assert.equal(budget.partitionCount, 1);
    });
  });

  describe('KeyPartitions', () => {
    const partitions = new KeyPartitions();
    it('given a string key, when asked twice, then the murmur2 partition both times', () => {
      const expected = partitionOfKey('org-1', 3);
      assert.equal(partitions.of('t', { key: 'org-1', value: 'v' }, limit), expected);
      assert.equal(partitions.of('t', { key: 'org-1', value: 'v' }, limit), expected);
    });
    it('given a record naming its partition, then that one; given no key, then none (kafkajs picks)', () => {
      assert.equal(partitions.of('t', { key: 'org-1', value: 'v', partition: 2 }, limit), 2);
      assert.equal(partitions.of('t', { value: 'v' }, limit), undefined);
    });
    it('given a Buffer key, then the same partition as its string', () => {
      assert.equal(
        partitions.of('t', { key: Buffer.from('org-7'), value: 'v' }, limit),
        partitionOfKey('org-7', 3),
      );
    });
  });

  describe('afterFailedSend: only the guilty caller fails', () => {
    it('given a broker error type wrapped in kafkajs retry errors, then it is found', () => {
      assert.equal(kafkaErrorTypeOf(refused('INVALID_RECORD')), 'INVALID_RECORD');
      assert.equal(kafkaErrorTypeOf(new Error('no type')), undefined);
    });

    it('given a record refused in a send of several callers, then its callers are sent again one by one', () => {
      const next = afterFailedSend(refused('INVALID_RECORD'), { callers: 2, records: 5, partitions: 2 });
      assert.deepEqual(next, { replaceProducer: true, kind: 'isolate', isolation: 'caller' });
    });

    it('given a record refused in one caller’s send of several records, then its records are sent one at a time', () => {
      const next = afterFailedSend(refused('CORRUPT_MESSAGE'), { callers: 1, records: 3, partitions: 1 });
      assert.deepEqual(next, { replaceProducer: false, kind: 'isolate', isolation: 'record' });
    });

    it('given one record refused as too large alone, then its caller fails, not retriable, and writes are not failing', () => {
      const next = afterFailedSend(refused('MESSAGE_TOO_LARGE'), { callers: 1, records: 1, partitions: 1 });
      assert.equal(next.kind, 'fail');
      assert.equal(next.replaceProducer, false);
      if (next.kind !== 'fail') return;
      assert.equal(next.error.code, ErrorCode.recordTooLarge);
      assert.equal(next.error.retriable, false);
      assert.equal(next.writesFailing, false);
    });

    it('given Kafka failing the request (a connection error), then its callers fail retriable, the producer is replaced and writes are failing', () => {
      const next = afterFailedSend(new Error('Connection error: ECONNREFUSED'), {
        callers: 3,
        records: 9,
        partitions: 1,
      });
      assert.equal(next.kind, 'fail');
      assert.equal(next.replaceProducer, true);
      if (next.kind !== 'fail') return;
      assert.equal(next.error.code, ErrorCode.kafkaUnavailable);
      assert.equal(next.error.retriable, true);
      assert.equal(next.writesFailing, true);
    });
  });

  describe('ReplaceableProducer', () => {
    const fakeProducer = (
      events: string[],
      name: string,
      connect: () => Promise<void> = async () => undefined,
    ) =>
      ({
        connect: async () => {
          events.push(`${name} connect`);
          await connect();
        },
        disconnect: async () => void events.push(`${name} disconnect`),
      }) as unknown as Producer;

    it('given a sound producer, when asked again, then the same one; once marked, a new one replaces it and the reason is reported', async () => {
      const events: string[] = [];
      const replaced: string[] = [];
      let made = 0;
      const producers = new ReplaceableProducer({
        create: () => fakeProducer(events, `p${++made}`),
        logger: pino({ level: 'silent' }),
        onReplaced: (reason) => replaced.push(reason),
      });
      const first = await producers.current(1000);
      assert.equal(await producers.current(1000), first);
      producers.replaceBeforeNextWrite('send failed: out of order sequence');
      producers.replaceBeforeNextWrite('a later reason');
      const second = await producers.current(1000);
      assert.notEqual(second, first);
      assert.deepEqual(events, ['p1 connect', 'p1 disconnect', 'p2 connect']);
      assert.deepEqual(replaced, ['send failed: out of order sequence']);
      await producers.close();
      assert.deepEqual(events.at(-1), 'p2 disconnect');
    });

    it('given a producer that does not connect in time, when asked, then a TimeoutError and the next ask makes another', async () => {
      const events: string[] = [];
      let made = 0;
      const producers = new ReplaceableProducer({
        create: () =>
          fakeProducer(
            events,
            `p${++made}`,
            made === 1 ? () => new Promise<void>(() => undefined) : undefined,
          ),
        logger: pino({ level: 'silent' }),
      });
      await assert.rejects(producers.current(5), TimeoutError);
      await producers.current(1000);
      assert.deepEqual(events, ['p1 connect', 'p1 disconnect', 'p2 connect']);
    });
  });
});
