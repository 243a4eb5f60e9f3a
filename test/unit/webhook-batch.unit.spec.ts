import assert from 'node:assert/strict';
import { eventCheckVerdicts } from '../../services/ingest/src/webhook-batch.ts';
import * as fixtures from '../fakes/hubspot-fixtures.ts';

const NOW = Date.UTC(2026, 10, 30);
const DAY = 24 * 60 * 60 * 1000;
const FIELDS = [
  'portalId',
  'subscriptionType',
  'eventType',
  'eventId',
  'subscriptionId',
  'appId',
  'attemptNumber',
  'objectId',
  'occurredAt',
  'messageId',
  'messageType',
  'changeFlag',
  'changeSource',
  'sourceId',
  'propertyName',
  'propertyValue',
  'objectTypeId',
] as const;
const VALUES: readonly unknown[] = [
  undefined,
  null,
  '',
  'x',
  '12',
  0,
  -0,
  1,
  -1,
  1.5,
  2 ** 53,
  Number.MAX_SAFE_INTEGER,
  Number.NaN,
  Number.POSITIVE_INFINITY,
  true,
  [],
  {},
  Date.UTC(2000, 0, 1) - 1,
  Date.UTC(2000, 0, 1),
  NOW + DAY,
  NOW + DAY + 1,
];

const bases = (): Record<string, unknown>[] => [
  { ...fixtures.webhookEvent({ occurredAt: NOW }) },
  { ...fixtures.ticketPropertyChangeEvent({ occurredAt: NOW }) },
  { ...fixtures.noteCreationEvent({ occurredAt: NOW }) },
];

describe('ingest: the quick event check and the schema', () => {
  it('given HubSpot-shaped events, when checked, then the quick check accepts them (the fast path is taken)', () => {
    for (const event of bases())
      assert.deepEqual(eventCheckVerdicts(event, NOW), { quick: true, schema: true });
  });

  it('given every field set to every awkward value, when checked, then the quick check never accepts what the schema refuses', () => {
    let refusedBySchema = 0;
    for (const base of bases())
      for (const field of FIELDS)
        for (const value of VALUES) {
          const event = { ...base, [field]: value };
          const { quick, schema } = eventCheckVerdicts(event, NOW);
          if (!schema) refusedBySchema++;
          assert.ok(
            !quick || schema,
            `${field} = ${String(value)}: the quick check accepts what the schema refuses`,
          );
        }
    for (const item of [null, [], 'event', 7, [fixtures.webhookEvent()]])
      assert.equal(eventCheckVerdicts(item, NOW).quick, false);
    assert.ok(refusedBySchema > 100, 'the variations include many the schema refuses');
  });

  it('given random combinations of awkward values, when checked, then the quick check and the schema agree', () => {
    let seed = 7;
    const random = (): number => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    for (let round = 0; round < 5000; round++) {
      const event: Record<string, unknown> = { ...(bases()[round % 3] as Record<string, unknown>) };
      for (let changes = 1 + Math.floor(random() * 3); changes > 0; changes--)
        event[FIELDS[Math.floor(random() * FIELDS.length)] as string] =
          VALUES[Math.floor(random() * VALUES.length)];
      const { quick, schema } = eventCheckVerdicts(event, NOW);
      assert.equal(quick, schema, JSON.stringify(event));
    }
  });
});
