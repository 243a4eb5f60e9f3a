import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';

/**
 * patches/kafkajs+2.2.4.patch (applied by patch-package at `npm install`/`npm ci`): the request
 * queue's idle timer loop (every connection's CPU at rest), and costs of
 * kafkajs's producer that issue 10's ingest profiles put at ~35 % of a 100-event batch, then,
 * once those were gone, its varints (an array and a Buffer.from each) and per-header encoders. These
 * tests fail on an install where the patch did not apply (postinstall skipped), not only on
 * wrong output. The producing paths themselves run against the real broker in the integration
 * tests.
 */
const require = createRequire(import.meta.url);

type Encoder = {
  buf: Buffer;
  buffer: Buffer;
  offset: number;
  writeInt32: (value: number) => Encoder;
  writeVarInt: (value: number) => Encoder;
  writeUVarInt: (value: number) => Encoder;
  writeVarLong: (value: number | bigint | string) => Encoder;
  writeVarIntString: (value: string) => Encoder;
  writeVarIntBytes: (value: Buffer | string | null) => Encoder;
  writeInt8: (value: number) => Encoder;
  writeVarIntArray: (array: readonly Encoder[]) => Encoder;
};
type EncoderClass = (new (size?: number) => Encoder) & {
  sizeOfVarLong: (value: number) => number;
  sizeOfVarInt: (value: number) => number;
  sizeOfVarIntBytes: (value: Buffer | string) => number;
};
type RecordHeaders = Record<string, string | Buffer | (string | Buffer)[]>;
type EncodeRecord = (record: {
  offsetDelta: number;
  timestampDelta: number;
  key: Buffer | string | null;
  value: Buffer | string;
  headers?: RecordHeaders;
}) => Encoder;

/** LEB128 of a zigzag-encoded integer, as Kafka writes varints and varlongs (BigInt: no overflow). */
const zigzagLeb128 = (value: bigint): number[] => {
  let unsigned = value >= 0n ? value << 1n : (-value << 1n) - 1n;
  const bytes: number[] = [];
  while (unsigned >= 0x80n) {
    bytes.push(Number((unsigned & 0x7fn) | 0x80n));
    unsigned >>= 7n;
  }
  bytes.push(Number(unsigned));
  return bytes;
};

/** Counts Buffer.from calls while `work` runs. */
const buffersFromDuring = (work: () => void): number => {
  const original = Object.getOwnPropertyDescriptor(Buffer, 'from')!;
  const from = original.value as (...args: unknown[]) => Buffer;
  let calls = 0;
  Object.defineProperty(Buffer, 'from', {
    ...original,
    value: (...args: unknown[]) => {
      calls++;
      return from.apply(Buffer, args);
    },
  });
  try {
    work();
  } finally {
    Object.defineProperty(Buffer, 'from', original);
  }
  return calls;
};

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

  it('given varints and varlongs at every byte-length boundary, then their bytes are zigzag LEB128 (as Kafka reads them), written in place without a Buffer.from each', () => {
    const Encoder = require('kafkajs/src/protocol/encoder.js') as EncoderClass;
    const values = [
      0,
      1,
      -1,
      63,
      -64,
      64,
      -65,
      8191,
      8192,
      2 ** 20,
      -(2 ** 20),
      2 ** 30 - 1,
      2 ** 30,
      -(2 ** 30),
    ];
    values.push(
      -(2 ** 30) - 1,
      2 ** 31 - 1,
      -(2 ** 31),
      ...Array.from({ length: 50 }, () => Math.round((Math.random() - 0.5) * 2 ** 31)),
    );
    for (const value of values) {
      const expected = zigzagLeb128(BigInt(value));
      let varint: Encoder | undefined;
      const allocations = buffersFromDuring(() => {
        varint = new Encoder().writeVarInt(value);
      });
      assert.deepEqual([...varint!.buffer], expected, `varint ${value}`);
      assert.equal(allocations, 0, `varint ${value} is written in place`);
      assert.equal(Encoder.sizeOfVarInt(value), expected.length);
    }
    const longs = [...values, 2 ** 40, -(2 ** 40), Number.MAX_SAFE_INTEGER, Number.MIN_SAFE_INTEGER];
    for (const value of longs) {
      const expected = zigzagLeb128(BigInt(value));
      assert.deepEqual([...new Encoder().writeVarLong(value).buffer], expected, `varlong ${value}`);
      assert.equal(Encoder.sizeOfVarLong(value), expected.length, `size of varlong ${value}`);
    }
    // A small timestamp delta (every record has one) takes the in-place path too.
    assert.equal(
      buffersFromDuring(() => new Encoder().writeVarLong(1234)),
      0,
    );
    // kafkajs also passes a Long's string or a large value: still the 64-bit zigzag.
    assert.deepEqual(
      [...new Encoder().writeVarLong('-9007199254740993').buffer],
      zigzagLeb128(-9007199254740993n),
    );
  });

  it("given records with and without headers (repeated keys, Buffer values, 1 MiB values), then the patched record encoder writes kafkajs's own bytes, with no encoder per header", () => {
    const Encoder = require('kafkajs/src/protocol/encoder.js') as EncoderClass;
    const encodeRecord = require('kafkajs/src/protocol/recordBatch/record/v0/index.js') as EncodeRecord;
    const Header = require('kafkajs/src/protocol/recordBatch/header/v0/index.js') as (header: {
      key: string;
      value: string | Buffer;
    }) => Encoder;
    // kafkajs 2.2.4's record v0, unpatched, written out: the bytes the patched one must produce.
    const reference: EncodeRecord = ({ offsetDelta, timestampDelta, key, value, headers = {} }) => {
      const headersArray = Object.keys(headers).flatMap((name) => {
        const given = headers[name]!;
        return Array.isArray(given)
          ? given.map((item) => ({ key: name, value: item }))
          : [{ key: name, value: given }];
      });
      let headerBytes = Encoder.sizeOfVarInt(headersArray.length);
      for (const header of headersArray) {
        const keySize = Buffer.byteLength(header.key);
        const valueSize = Buffer.byteLength(header.value);
        headerBytes += Encoder.sizeOfVarInt(keySize) + keySize + Encoder.sizeOfVarInt(valueSize) + valueSize;
      }
      const size =
        1 +
        Encoder.sizeOfVarLong(timestampDelta) +
        Encoder.sizeOfVarInt(offsetDelta) +
        Encoder.sizeOfVarIntBytes(key as Buffer | string) +
        Encoder.sizeOfVarIntBytes(value) +
        headerBytes;
      return new Encoder()
        .writeVarInt(size)
        .writeInt8(0)
        .writeVarLong(timestampDelta)
        .writeVarInt(offsetDelta)
        .writeVarIntBytes(key)
        .writeVarIntBytes(value)
        .writeVarIntArray(headersArray.map(Header));
    };
    const records: Parameters<EncodeRecord>[0][] = [
      { offsetDelta: 0, timestampDelta: 0, key: 'org-1', value: randomBytes(300) },
      {
        offsetDelta: 7,
        timestampDelta: 3,
        key: null,
        value: 'text é',
        headers: { 'x-ordering-key': 'org-1:thread:42' },
      },
      {
        offsetDelta: 999,
        timestampDelta: -5,
        key: Buffer.from('k'),
        value: randomBytes(2000),
        headers: { a: ['1', Buffer.from('2')], ünï: 'çödé', b: randomBytes(40) },
      },
      {
        offsetDelta: 1,
        timestampDelta: 2 ** 35,
        key: 'big',
        value: randomBytes(1024 * 1024),
        headers: { h: 'v' },
      },
    ];
    for (const record of records) {
      assert.deepEqual(
        encodeRecord(record).buffer,
        reference(record).buffer,
        `record at offset delta ${record.offsetDelta}`,
      );
    }
    assert.doesNotMatch(String(encodeRecord), /map\(Header\)/, 'no encoder per header');
    assert.match(
      String(encodeRecord),
      /encoder\.writeVarIntString\(header\.key\)/,
      'headers are written in place',
    );
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

  describe("a connection's request queue", () => {
    type QueuedRequest = {
      entry: {
        correlationId: number;
        apiKey: number;
        apiName: string;
        apiVersion: number;
        resolve: () => void;
        reject: () => void;
      };
      expectResponse: boolean;
      sendRequest: () => void;
    };
    type RequestQueue = {
      throttleCheckTimeoutId: NodeJS.Timeout | null;
      pending: unknown[];
      push: (request: QueuedRequest) => void;
      fulfillRequest: (response: { correlationId: number; payload: Buffer; size: number }) => void;
      maybeThrottle: (ms: number) => void;
      destroy: () => void;
    };
    const RequestQueueClass = require('kafkajs/src/network/requestQueue/index.js') as new (options: {
      maxInFlightRequests: number | null;
      requestTimeout: number;
      enforceRequestTimeout: boolean;
      clientId: string;
      broker: string;
      logger: Record<'debug' | 'info' | 'warn' | 'error', () => void>;
    }) => RequestQueue;
    const quiet = {
      debug: () => undefined,
      info: () => undefined,
      warn: () => undefined,
      error: () => undefined,
    };
    const newQueue = () =>
      new RequestQueueClass({
        maxInFlightRequests: null,
        requestTimeout: 1000,
        enforceRequestTimeout: false,
        clientId: 'test',
        broker: 'broker:9092',
        logger: quiet,
      });
    const request = (correlationId: number, sent: number[]): QueuedRequest => ({
      entry: {
        correlationId,
        apiKey: 1,
        apiName: 'Fetch',
        apiVersion: 11,
        resolve: () => undefined,
        reject: () => undefined,
      },
      expectResponse: true,
      sendRequest: () => void sent.push(correlationId),
    });

    it('given a request sent and answered with nothing else queued, then no timer is left polling the queue (kafkajs 2.2.4 left a 1 ms timer loop on every connection: the idle CPU of every consumer)', () => {
      const queue = newQueue();
      const sent: number[] = [];
      queue.push(request(1, sent));
      queue.fulfillRequest({ correlationId: 1, payload: Buffer.alloc(0), size: 0 });
      assert.deepEqual(sent, [1]);
      assert.equal(queue.throttleCheckTimeoutId, null, 'an idle queue schedules no check');
      queue.destroy();
    });

    it('given the broker throttles the client, when a request is queued, then it is sent once the throttle ends, and then the queue stops checking', async () => {
      const queue = newQueue();
      const sent: number[] = [];
      queue.maybeThrottle(30);
      queue.push(request(2, sent));
      assert.deepEqual(sent, [], 'held while throttled');
      assert.notEqual(queue.throttleCheckTimeoutId, null, 'a check is scheduled for the throttle end');
      await new Promise((resolve) => setTimeout(resolve, 80));
      assert.deepEqual(sent, [2], 'sent after the throttle');
      assert.equal(queue.pending.length, 0);
      assert.equal(queue.throttleCheckTimeoutId, null, 'nothing pending: no further check');
      queue.fulfillRequest({ correlationId: 2, payload: Buffer.alloc(0), size: 0 });
      assert.equal(queue.throttleCheckTimeoutId, null);
      queue.destroy();
    });
  });
});
