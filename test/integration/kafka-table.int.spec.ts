import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { Kafka } from 'kafkajs';
import { createKafka, ensureTopics, KafkaTable } from '../../lib/kafka/index.ts';
import { createLogger } from '../../lib/log.ts';

const logger = createLogger('kafka-table-test', 'silent');

/** lib/kafka/table.ts on the real broker: a compacted topic read whole, and caught up on demand. */
describe('Kafka table (real Kafka)', function () {
  this.timeout(60000);
  let kafka: Kafka;
  const tables: KafkaTable<string>[] = [];
  before(() => {
    kafka = createKafka({
      clientId: 'kafka-table-test',
      brokers: (process.env.KAFKA_BROKERS ?? assert.fail('KAFKA_BROKERS is not set')).split(','),
      logger,
    });
  });
  after(async () => {
    await Promise.all(tables.splice(0).map((table) => table.stop()));
  });

  it('given a row another process wrote just now, when caught up, then the table has it (a miss is not trusted before that)', async () => {
    const topic = `test-table-${randomBytes(4).toString('hex')}`;
    const admin = kafka.admin();
    await admin.connect();
    await ensureTopics(admin, [{ name: topic, compacted: true, partitions: 3 }], { replicationFactor: 1 });
    await admin.disconnect();
    const table = new KafkaTable<string>({
      kafka,
      topic,
      groupPrefix: 'test-',
      decode: (raw) => raw.toString(),
      logger,
    });
    tables.push(table);
    await table.start();
    assert.equal(await table.catchUp(), true, 'an empty topic: caught up at once');

    const producer = kafka.producer();
    await producer.connect();
    const keys = Array.from({ length: 50 }, (_, index) => `thread-${index}`);
    await producer.send({
      topic,
      acks: -1,
      messages: keys.map((key) => ({ key, value: `session-of-${key}` })),
    });
    await producer.disconnect();
    // Written by "another replica": caught up, every row is there.
    assert.equal(await table.catchUp(), true);
    for (const key of keys) assert.equal(table.get(key), `session-of-${key}`, key);
  });
});
