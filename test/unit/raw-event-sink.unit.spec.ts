import assert from 'node:assert/strict';
import type { Org } from '../../lib/orgs/index.ts';
import { createRawEventSink } from '../../services/ingest/src/raw-event-sink.ts';
import type { AcceptedEvent } from '../../services/ingest/src/webhook-batch.ts';

/**
 * The raw records ingest writes: each is its envelope's head followed by the event's bytes. The
 * codec here writes the envelope as JSON (the Avro itself is the registry's, tested with it), so
 * each record says which envelope it got; heads are shared within a call and across calls of the
 * same millisecond, and never where anything in the envelope differs.
 */
describe('raw event sink', () => {
  const orgOf = (orgId: string) => ({ orgId }) as unknown as Org;
  const eventOf = (portalId: number, subscriptionType: string, json = '{}'): AcceptedEvent => ({
    portalId,
    subscriptionType,
    objectKey: `thread:${portalId}`,
    json: Buffer.from(json),
  });

  const start = () => {
    let clock = 1_000;
    const encoded: object[] = [];
    const written: { key: string; orderingKey: string; envelope: unknown; event: string }[] = [];
    const sink = createRawEventSink({
      codec: {
        encodeRecordHead: (_record, payload) => {
          encoded.push(payload);
          // A JSON head then a newline: the tail (an Avro string's length, then the bytes) follows.
          return Buffer.from(`${JSON.stringify(payload)}\n`);
        },
      },
      publisher: {
        publish: async (_topic, messages) => {
          for (const message of messages) {
            const value = message.value as Buffer;
            const newline = value.indexOf(0x0a);
            written.push({
              key: String(message.key),
              orderingKey: String(Object.values(message.headers ?? {})[0]),
              envelope: JSON.parse(value.subarray(0, newline).toString()),
              // One varint byte of length (zigzag) for these short events.
              event: value.subarray(newline + 2).toString(),
            });
          }
        },
      },
      topic: 'raw',
      now: () => clock,
    });
    return { sink, encoded, written, tick: () => clock++ };
  };

  it('given 1-event calls in one millisecond from one organisation, then they share one envelope, each with its own event', async () => {
    const { sink, encoded, written } = start();
    const acme = orgOf('acme');
    await sink('OAUTH_APP', [{ event: eventOf(7, 'conversation.newMessage', '{"a":1}'), org: acme }]);
    await sink('OAUTH_APP', [{ event: eventOf(7, 'conversation.newMessage', '{"a":2}'), org: acme }]);
    assert.equal(encoded.length, 1);
    assert.deepEqual(
      written.map(({ event }) => event),
      ['{"a":1}', '{"a":2}'],
    );
    assert.deepEqual(written[1]?.envelope, {
      receivedAt: 1_000,
      route: 'OAUTH_APP',
      orgId: 'acme',
      portalId: 7,
      subscriptionType: 'conversation.newMessage',
    });
  });

  it('given anything in the envelope different (time, route, organisation, portal, type), then an envelope of its own', async () => {
    const { sink, encoded, written, tick } = start();
    const acme = orgOf('acme');
    const call = (route: 'OAUTH_APP' | 'PRIVATE_APP', org: Org | undefined, portalId: number, type: string) =>
      sink(route, [{ event: eventOf(portalId, type), org }]);
    await call('OAUTH_APP', acme, 7, 'conversation.newMessage');
    tick();
    await call('OAUTH_APP', acme, 7, 'conversation.newMessage');
    await call('PRIVATE_APP', acme, 7, 'conversation.newMessage');
    await call('PRIVATE_APP', orgOf('other'), 7, 'conversation.newMessage');
    await call('PRIVATE_APP', undefined, 7, 'conversation.newMessage');
    await call('PRIVATE_APP', undefined, 8, 'conversation.newMessage');
    await call('PRIVATE_APP', undefined, 8, 'ticket.propertyChange');
    assert.equal(encoded.length, 7);
    assert.deepEqual(
      written.map(({ envelope }) => envelope),
      encoded.map((payload) => payload),
    );
    assert.deepEqual(
      written.map(({ key }) => key),
      ['acme', 'acme', 'acme', 'other', 'portal:7', 'portal:8', 'portal:8'],
    );
    assert.equal(written[0]?.orderingKey, 'acme:thread:7');
  });

  it('given a batch of mixed envelopes, then each event is written with its own, in order', async () => {
    const { sink, encoded, written } = start();
    const acme = orgOf('acme');
    await sink('OAUTH_APP', [
      { event: eventOf(7, 'conversation.newMessage', '1'), org: acme },
      { event: eventOf(7, 'ticket.propertyChange', '2'), org: acme },
      { event: eventOf(7, 'conversation.newMessage', '3'), org: acme },
      { event: eventOf(9, 'conversation.newMessage', '4'), org: undefined },
    ]);
    assert.equal(encoded.length, 3);
    assert.deepEqual(
      written.map(({ event, envelope }) => [
        event,
        (envelope as { subscriptionType: string }).subscriptionType,
      ]),
      [
        ['1', 'conversation.newMessage'],
        ['2', 'ticket.propertyChange'],
        ['3', 'conversation.newMessage'],
        ['4', 'conversation.newMessage'],
      ],
    );
  });
});
