import assert from 'node:assert/strict';
import {
  DeadLetterReason,
  HeldOutcome,
  IgnoreReason,
  SkipReason,
  WaitReason,
  decodeRawWebhookEvent,
  eventIdOf,
  type RawWebhookEvent,
} from '../../lib/contracts/index.ts';
import { HubSpotMessage, HubSpotNote } from '../../lib/hubspot/index.ts';
import { expectedEventIds, type RawRecord } from '../../services/console/src/records.ts';
import {
  decideHandoff,
  decideNoteMirror,
  decideTicketFieldChange,
  parseWebhookEvent,
  routeNewMessage,
  type ConversationPropertyChangeEvent,
  type Decision,
  type NewMessageEvent,
  type ObjectCreationEvent,
  type TicketPropertyChangeEvent,
  type WebhookEvent,
} from '../../services/processor/src/rules/index.ts';
import * as fixtures from '../fakes/hubspot-fixtures.ts';

const ORG = 'org-1';
const RAW_RECORD = 'io.opencx.pipeline.RawWebhookEvent';

const rawFields = {
  receivedAt: 1_764_500_000_000,
  route: 'OAUTH_APP',
  orgId: ORG,
  portalId: fixtures.FIXTURE_PORTAL_ID,
  subscriptionType: 'conversation.newMessage',
  event: '{"subscriptionType":"conversation.newMessage"}',
};

describe('contracts: the raw event decoder', () => {
  it('given a raw record as the codec decodes it, when decoded, then every field is kept as it is', () => {
    assert.deepEqual(decodeRawWebhookEvent({ recordName: RAW_RECORD, record: rawFields }), rawFields);
  });

  it('given a receivedAt the Avro library gives as a Date, when decoded, then it is epoch milliseconds', () => {
    const decoded = decodeRawWebhookEvent({
      recordName: RAW_RECORD,
      record: { ...rawFields, receivedAt: new Date(rawFields.receivedAt), orgId: null },
    });
    assert.equal(decoded.receivedAt, rawFields.receivedAt);
    assert.equal(decoded.orgId, null);
  });

  it('given a record of another type, when decoded, then it is refused naming that type', () => {
    assert.throws(
      () => decodeRawWebhookEvent({ recordName: 'io.opencx.pipeline.Handoff', record: rawFields }),
      /a io\.opencx\.pipeline\.Handoff, not a io\.opencx\.pipeline\.RawWebhookEvent/,
    );
  });

  for (const [field, value] of [
    ['receivedAt', 'yesterday'],
    ['route', 'WEBHOOK'],
    ['orgId', 7],
    ['portalId', undefined],
    ['subscriptionType', null],
    ['event', Buffer.from('{}')],
  ] as const) {
    it(`given a raw record whose ${field} does not fit the schema, when decoded, then it is refused naming ${field}`, () => {
      assert.throws(
        () => decodeRawWebhookEvent({ recordName: RAW_RECORD, record: { ...rawFields, [field]: value } }),
        new RegExp(`: ${field} is `),
      );
    });
  }
});

/** The processor's decision for a HubSpot event, and the ids the console expects of the same event. */
const idsBothWays = (
  event: object,
  decide: (parsed: WebhookEvent) => Decision,
): { emitted: readonly string[]; expected: readonly string[] } => {
  const parsed = parseWebhookEvent(JSON.stringify(event));
  if (!parsed.ok) throw new Error(parsed.detail);
  const decision = decide(parsed.event);
  const raw: RawRecord = {
    ...(decodeRawWebhookEvent({
      recordName: RAW_RECORD,
      record: { ...rawFields, subscriptionType: parsed.event.subscriptionType, event: JSON.stringify(event) },
    }) satisfies RawWebhookEvent),
    position: { topic: 'raw', partition: 0, offset: '0', timestamp: 0, key: null, value: null, headers: {} },
    eventJson: JSON.stringify(event),
    event: JSON.parse(JSON.stringify(event)) as Record<string, unknown>,
  };
  return {
    emitted: decision.kind === 'emit' ? decision.events.map((domainEvent) => domainEvent.eventId) : [],
    expected: expectedEventIds(raw, ORG),
  };
};

describe('contracts: the event-id recipes the rules mint and the console expects', () => {
  for (const [name, kind, recipe] of [
    ['a customer message', 'customer-chat', eventIdOf.customerMessage],
    ["an agent's reply", 'agent-reply', eventIdOf.repReply],
  ] as const) {
    it(`given ${name}, when the rules route it, then its id is among those the console expects`, () => {
      const sent = fixtures.message({ kind });
      const message = HubSpotMessage.parse(sent);
      const { emitted, expected } = idsBothWays(fixtures.webhookEventFor(sent), (event) =>
        routeNewMessage(event as NewMessageEvent, message, {
          orgId: ORG,
          aiActorId: 'A-111',
          receivedAt: rawFields.receivedAt,
          emailDelayMs: 0,
        }),
      );
      assert.deepEqual(emitted, [recipe(ORG, message.id)]);
      assert.ok(expected.includes(emitted[0]!), `${emitted[0]} in ${expected.join(', ')}`);
    });
  }

  it('given an assignment away from the AI, when the rules decide, then the handoff id is the one the console expects', () => {
    const { emitted, expected } = idsBothWays(fixtures.propertyChangeEvent(), (event) =>
      decideHandoff(event as ConversationPropertyChangeEvent, {
        orgId: ORG,
        aiActorId: 'A-111',
        assistMode: false,
        session: undefined,
        lastAppliedAt: undefined,
      }),
    );
    assert.equal(emitted.length, 1);
    assert.deepEqual(expected, emitted);
  });

  it('given a ticket property change, when the rules decide, then its id is the one the console expects', () => {
    const { emitted, expected } = idsBothWays(fixtures.ticketPropertyChangeEvent(), (event) =>
      decideTicketFieldChange(event as TicketPropertyChangeEvent, {
        orgId: ORG,
        ticketingEnabled: true,
        lastAppliedAt: undefined,
      }),
    );
    assert.equal(emitted.length, 1);
    assert.deepEqual(expected, emitted);
  });

  it('given a note on a ticket, when the rules mirror it, then its id is the one the console expects', () => {
    const creation = fixtures.noteCreationEvent();
    const note = HubSpotNote.parse(fixtures.note({ id: String(creation.objectId) }));
    const { emitted, expected } = idsBothWays(creation, (event) =>
      decideNoteMirror(event as ObjectCreationEvent, note, { orgId: ORG, ticketId: '1500000001' }),
    );
    assert.equal(emitted.length, 1);
    assert.deepEqual(expected, emitted);
  });

  it('given the recipes, when an id is derived, then it is the one events already applied carry (a new recipe would apply them again)', () => {
    assert.equal(eventIdOf.customerMessage('org-1', '1001'), '0a2387eeaf580e86b493215825e809a2');
    assert.equal(
      eventIdOf.ticketFieldChanged('org-1', '7', 'hs_pipeline_stage', 1),
      'b2c6ba73582f1f03f494659a9967431c',
    );
  });
});

describe('contracts: reasons are metric labels that dashboards and alerts name', () => {
  it('given the reason lists, then their values are exactly these', () => {
    assert.deepEqual(Object.values(IgnoreReason), [
      'unsupported_subscription_type',
      'unknown_portal',
      'org_deleted',
      'duplicate',
      'automated_sender',
      'own_ai_echo',
      'not_a_conversation_message',
      'empty_message',
      'property_not_assignment',
      'assist_mode',
      'assigned_to_ai',
      'already_handed_off',
      'ticketing_disabled',
      'empty_property_value',
      'object_not_a_note',
      'note_on_no_ticket',
      'malformed_event',
      'stale',
      'portal_mismatch',
    ]);
    assert.deepEqual(Object.values(SkipReason), [
      'unknown_org',
      'no_linked_session',
      'handed_off',
      'duplicate',
      'nothing_held',
      'still_held',
      'stale',
    ]);
    assert.deepEqual(Object.values(WaitReason), [
      'hubspot_budget',
      'hubspot_rate_limited',
      'hubspot_unavailable',
      'opencx_rate_limited',
      'opencx_unavailable',
      'tenant_waiting',
    ]);
    assert.deepEqual(Object.values(DeadLetterReason), [
      'undecodable',
      'malformed_event',
      'record_too_large',
      'org_unreadable',
      'hubspot_rejected',
      'hubspot_unauthorized',
      'opencx_rejected',
      'opencx_unauthorized',
      'retries_exhausted',
      'handler_crashed',
    ]);
    assert.deepEqual(Object.values(HeldOutcome), [
      'held',
      'released',
      'superseded',
      'dropped',
      'expired',
      'discarded',
      'refused',
    ]);
  });
});
