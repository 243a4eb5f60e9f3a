import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';

/**
 * patches/kafkajs+2.2.4.patch (applied by patch-package at `npm install`/`npm ci`): three costs of
 * kafkajs's producer that issue 10's ingest profiles put at ~35 % of a 100-event batch. These
 * tests fail on an install where the patch did not apply (postinstall skipped), not only on
 * wrong output. The producing paths themselves run against the real broker in the integration
 * tests.
 */
const require = createRequire(import.meta.url);

type Encoder = { buf: Buffer; buffer: Buffer; writeInt32: (value: number) => Encoder };
type GroupMessages = (options: {
  topic: string;
  partitionMetadata: readonly { partitionId: number }[];
  messages: readonly { key: string }[];
  partitioner: (options: { message: { key: string } }) => number;
}) => Record<string, { key: string }[]>;

describe('kafkajs patches (patches/kafkajs+2.2.4.patch)', () => {
  it("given a new protocol Encoder, then its buffer is a slice of Node's pool (allocUnsafe), not a zero-filled allocation of its own, and it still writes what it is given", () => {
    const Encoder = require('kafkajs/src/protocol/encoder.js') as new () => Encoder;
    const encoder = new Encoder();
    assert.equal(encoder.buf.buffer.byteLength, Buffer.poolSize, 'the 512-byte buffer comes from the pool');
    encoder.writeInt32(0x01020304).writeInt32(-1);
    assert.deepEqual([...encoder.buffer], [1, 2, 3, 4, 255, 255, 255, 255]);
  });

  it("given buffers of many sizes, then the record batch's CRC-32C is native (@node-rs/crc32) and equals kafkajs's own JavaScript loop", () => {
    const crc = require('kafkajs/src/protocol/recordBatch/crc32C/index.js') as (buffer: Buffer) => number;
    const javascript = require('kafkajs/src/protocol/recordBatch/crc32C/crc32C.js') as (
      buffer: Buffer,
    ) => number;
    const { crc32c } = require('@node-rs/crc32') as { crc32c: (buffer: Buffer) => number };
    assert.match(String(crc), /native\(buffer\)/, 'the patched checksum');
    // The check value of CRC-32C (RFC 3720): "123456789" -> 0xE3069283.
    assert.equal(crc(Buffer.from('123456789')), 0xe3069283);
    for (let size = 0; size < 3000; size += 61) {
      const buffer = randomBytes(size);
      assert.equal(crc(buffer), javascript(buffer), `size ${size}`);
      assert.equal(crc(buffer), crc32c(buffer));
    }
  });

  it('given messages for three partitions, when grouped, then each partition gets its messages in order, and the grouping appends in place (no copy of the list per message)', () => {
    const group = require('kafkajs/src/producer/groupMessagesPerPartition.js') as GroupMessages;
    const messages = Array.from({ length: 9 }, (_, index) => ({ key: `k${index}` }));
    const grouped = group({
      topic: 't',
      partitionMetadata: [{ partitionId: 0 }, { partitionId: 1 }, { partitionId: 2 }],
      messages,
      partitioner: ({ message }) => Number(message.key.slice(1)) % 3,
    });
    assert.deepEqual(
      Object.fromEntries(
        Object.entries(grouped).map(([partition, list]) => [partition, list.map((m) => m.key)]),
      ),
      { 0: ['k0', 'k3', 'k6'], 1: ['k1', 'k4', 'k7'], 2: ['k2', 'k5', 'k8'] },
    );
    assert.match(String(group), /current\.push\(message\)/, 'the patched, linear grouping');
  });
});
