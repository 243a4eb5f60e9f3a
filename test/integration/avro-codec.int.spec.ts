import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { SchemaRegistry } from '@kafkajs/confluent-schema-registry';
import { ConfluentSchemaRegistryValidationError } from '@kafkajs/confluent-schema-registry/dist/errors.js';
import type { CustomerMessage } from '../../lib/domain-events.ts';
import { AvroCodec, withAvroStringTail } from '../../lib/registry.ts';

const RAW = 'io.opencx.pipeline.RawWebhookEvent';

/**
 * The codec writes records itself (issue 10: one buffer per record, no promise), with the schema
 * the registry client compiled. Against the real registry: the bytes must be the client's own,
 * whatever the record's size, and a value the schema refuses must fail as the client fails.
 */
describe('Avro codec: records written without the registry client', function () {
  this.timeout(60000);
  const prefix = `test-${randomBytes(4).toString('hex')}-`;
  let codec: AvroCodec;
  let client: SchemaRegistry;

  before(async () => {
    // Read here, not when the file loads: test/setup.ts sets it in a root hook.
    const registryUrl = process.env.SCHEMA_REGISTRY_URL ?? '';
    codec = new AvroCodec({ url: registryUrl, subjectPrefix: prefix });
    await codec.registerAll();
    client = new SchemaRegistry({ host: registryUrl });
  });

  const rawEvent = (eventBytes: number) => ({
    receivedAt: Date.now(),
    route: 'OAUTH_APP',
    orgId: eventBytes % 2 === 0 ? 'acme' : null,
    portalId: 77,
    subscriptionType: 'conversation.newMessage',
    event: JSON.stringify({ portalId: 77, text: 'é'.repeat(eventBytes / 2) }),
  });

  it("given raw events from 0 bytes to 300 kB (past the 64 KiB scratch buffer), then each record is the registry client's bytes and decodes back", async () => {
    for (const size of [0, 10, 500, 65_000, 65_536, 70_000, 300_000]) {
      const payload = rawEvent(size);
      const written = codec.encodeRecordNow(RAW, payload);
      const schemaId = written.readInt32BE(1);
      assert.deepEqual(written, await client.encode(schemaId, payload), `event of ~${size} bytes`);
      const decoded = await codec.decodeRecord(written);
      assert.equal(decoded.recordName, RAW);
      assert.deepEqual({ ...decoded.record }, payload);
    }
  });

  it('given two records written one after the other, then the first is not overwritten by the second (no shared buffer is returned)', () => {
    const first = codec.encodeRecordNow(RAW, rawEvent(100));
    const copy = Buffer.from(first);
    const second = codec.encodeRecordNow(RAW, rawEvent(400));
    assert.deepEqual(first, copy);
    assert.notDeepEqual(second, first);
  });

  it('given a domain event, then encodeEvent writes it and decodeEvent reads it back', async () => {
    const event: CustomerMessage = {
      type: 'customer-message',
      eventId: `evt-${randomBytes(4).toString('hex')}`,
      orgId: 'acme',
      portalId: 77,
      occurredAt: 1_700_000_000_000,
      threadId: 'thread-1',
      messageId: 'msg-1',
      text: 'hello ü',
      subject: null,
      channelId: '1000',
      channelAccountId: '2000',
      channelType: 'chat',
      senderActorId: 'V-1',
      senderName: 'Ada',
      senderDeliveryType: null,
      senderDeliveryValue: null,
    };
    const decoded = await codec.decodeEvent(await codec.encodeEvent(event));
    assert.deepEqual(decoded, event);
  });

  it("given a value the schema refuses, then the registry client's validation error, naming the field", async () => {
    assert.throws(
      () => codec.encodeRecordNow(RAW, { ...rawEvent(10), portalId: 'seventy-seven' }),
      (error: unknown) =>
        error instanceof ConfluentSchemaRegistryValidationError &&
        JSON.stringify((error as { paths?: unknown }).paths) === JSON.stringify([['portalId']]),
    );
    // The next record is written whole: the failed one left nothing behind.
    const payload = rawEvent(20);
    assert.deepEqual({ ...(await codec.decodeRecord(codec.encodeRecordNow(RAW, payload))).record }, payload);
  });

  it("given a head and the event's UTF-8 bytes (ingest's path), then the record is the registry client's bytes, at every varint length boundary", async () => {
    // 63/64 and 8191/8192 bytes: where the zigzag length takes a second and a third byte.
    for (const size of [0, 1, 63, 64, 65, 500, 8191, 8192, 70_000, 1_048_000]) {
      for (const fill of ['a', 'é', '😀']) {
        const each = Buffer.byteLength(fill);
        const text = fill.repeat(Math.floor(size / each)) + 'a'.repeat(size % each); // `size` bytes
        const { event, ...rest } = { ...rawEvent(0), event: text };
        const written = withAvroStringTail(codec.encodeRecordHead(RAW, rest), Buffer.from(event));
        const expected = await client.encode(written.readInt32BE(1), { ...rest, event });
        assert.deepEqual(written, expected, `${size} chars of ${fill}`);
      }
    }
  });

  it('given a head of a value the schema refuses, or of a payload that holds the last field, or of a record not ending in a string, then it throws', () => {
    const { event, ...rest } = rawEvent(10);
    assert.throws(
      () => codec.encodeRecordHead(RAW, { ...rest, portalId: 'seventy-seven' }),
      ConfluentSchemaRegistryValidationError,
    );
    assert.throws(() => codec.encodeRecordHead(RAW, { ...rest, event }), /holds the last field event/);
    // DeadLetter ends in a long (failedAt).
    assert.throws(
      () => codec.encodeRecordHead('io.opencx.pipeline.DeadLetter', {}),
      /does not end in a string field/,
    );
  });

  it('given a record name never registered, then a clear error saying to register first', () => {
    assert.throws(
      () => codec.encodeRecordNow('io.opencx.pipeline.Nope', {}),
      /not registered: call registerAll\(\) first/,
    );
  });
});
