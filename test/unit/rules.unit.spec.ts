import assert from 'node:assert/strict';
import { HubSpotMessage, HubSpotNote } from '../../lib/hubspot/index.ts';
import {
  IgnoreReason,
  checkDeliveryPortal,
  decideHandoff,
  decideNoteMirror,
  ticketOfNote,
  decideTicketFieldChange,
  isStaleChange,
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

const AI_ACTOR = 'A-111';
const ORG = 'org-1';

const parsed = <T extends WebhookEvent>(event: object): T => {
  const result = parseWebhookEvent(JSON.stringify(event));
  if (!result.ok) throw new Error(result.detail);
  return result.event as T;
};
const refetched = (spec: fixtures.MessageSpec): HubSpotMessage =>
  HubSpotMessage.parse(fixtures.message(spec));
const context = { orgId: ORG, aiActorId: AI_ACTOR, receivedAt: 1_000_000, emailDelayMs: 5000 };

const route = (spec: fixtures.MessageSpec): Decision => {
  const message = refetched(spec);
  return routeNewMessage(
    parsed<NewMessageEvent>(fixtures.webhookEventFor(fixtures.message({ ...spec, id: message.id }))),
    message,
    context,
  );
};
const ignoredBecause = (decision: Decision): string | undefined =>
  decision.kind === 'ignore' ? decision.reason : undefined;
const emittedTypes = (decision: Decision): string[] =>
  decision.kind === 'emit' ? decision.events.map((event) => event.type) : [];

describe('rules: conversation.newMessage (contract event rules, in row order)', () => {
  const rows: {
    name: string;
    spec: fixtures.MessageSpec;
    expect: { ignored: string } | { emitted: string; internal?: boolean };
  }[] = [
    {
      name: 'an INTEGRATION client is automated',
      spec: { kind: 'integration' },
      expect: { ignored: IgnoreReason.automatedSender },
    },
    {
      name: 'a SYSTEM client is automated',
      spec: { kind: 'customer-chat', client: { clientType: 'SYSTEM' } },
      expect: { ignored: IgnoreReason.automatedSender },
    },
    ...['I-123', 'S-hubspot', 'B-7', 'L-42'].map((actorId) => ({
      name: `an ${actorId.slice(0, 2)} actor is automated`,
      spec: { kind: 'customer-chat' as const, senders: [{ actorId }], createdBy: actorId },
      expect: { ignored: IgnoreReason.automatedSender },
    })),
    {
      name: 'text with the AI marker is our echo',
      spec: { kind: 'agent-reply', text: 'Sure! <!-- OpenCX-AI-Response -->' },
      expect: { ignored: IgnoreReason.ownEcho },
    },
    {
      name: 'text with the handoff marker is our echo',
      spec: { kind: 'customer-chat', text: '🔄 AI decided to handoff' },
      expect: { ignored: IgnoreReason.ownEcho },
    },
    {
      name: "the org's AI actor is our echo",
      spec: { kind: 'agent-reply', senders: [{ actorId: AI_ACTOR }], createdBy: AI_ACTOR },
      expect: { ignored: IgnoreReason.ownEcho },
    },
    {
      name: 'a COMMENT is an internal rep reply',
      spec: { kind: 'comment' },
      expect: { emitted: 'rep-reply', internal: true },
    },
    {
      name: 'a WELCOME_MESSAGE is ignored',
      spec: {
        kind: 'welcome',
        client: { clientType: 'HUBSPOT' },
        senders: [{ actorId: 'A-9' }],
        createdBy: 'A-9',
      },
      expect: { ignored: IgnoreReason.notAConversationMessage },
    },
    {
      name: 'an ASSIGNMENT is ignored',
      spec: { kind: 'customer-chat', type: 'ASSIGNMENT' },
      expect: { ignored: IgnoreReason.notAConversationMessage },
    },
    {
      name: "an agent's reply is a public rep reply",
      spec: { kind: 'agent-reply' },
      expect: { emitted: 'rep-reply', internal: false },
    },
    {
      name: 'an OUTGOING message from a non-agent is a rep reply',
      spec: { kind: 'customer-chat', direction: 'OUTGOING' },
      expect: { emitted: 'rep-reply', internal: false },
    },
    {
      name: "a visitor's chat message goes to the AI",
      spec: { kind: 'customer-chat' },
      expect: { emitted: 'customer-message' },
    },
    {
      name: "an email customer's message goes to the AI",
      spec: { kind: 'customer-email' },
      expect: { emitted: 'customer-message' },
    },
  ];

  for (const row of rows) {
    it(`given ${row.name}, when routed, then ${'ignored' in row.expect ? `ignored (${row.expect.ignored})` : row.expect.emitted}`, () => {
      const decision = route(row.spec);
      if ('ignored' in row.expect) {
        assert.equal(ignoredBecause(decision), row.expect.ignored);
      } else {
        assert.deepEqual(emittedTypes(decision), [row.expect.emitted]);
        const event = decision.kind === 'emit' ? decision.events[0] : undefined;
        if (row.expect.internal !== undefined)
          assert.equal(event?.type === 'rep-reply' && event.internal, row.expect.internal);
      }
    });
  }

  it('given a chat message, when routed, then it is emitted at once with the text, channel and a deterministic id', () => {
    const message = refetched({ kind: 'customer-chat' });
    const event = parsed<NewMessageEvent>(fixtures.webhookEventFor(fixtures.message({ id: message.id })));
    const first = routeNewMessage(event, message, context);
    const second = routeNewMessage(event, message, context);
    assert.equal(first.kind === 'emit' && first.notBefore, undefined);
    const emitted = first.kind === 'emit' ? first.events[0] : undefined;
    assert.equal(emitted?.type, 'customer-message');
    if (emitted?.type !== 'customer-message') return;
    assert.equal(emitted.text, 'Hi, my order has not arrived yet.');
    assert.equal(emitted.channelType, 'web');
    assert.equal(emitted.senderActorId, 'V-48710712');
    assert.equal(emitted.eventId, second.kind === 'emit' ? second.events[0]?.eventId : 'x');
  });

  it('given an email (channel 1002), when routed, then it is held until EMAIL_DELAY_MS after arrival', () => {
    const decision = route({ kind: 'customer-email' });
    assert.equal(decision.kind === 'emit' && decision.notBefore, context.receivedAt + context.emailDelayMs);
    const emitted = decision.kind === 'emit' ? decision.events[0] : undefined;
    assert.equal(emitted?.type === 'customer-message' && emitted.channelType, 'email');
  });

  it('given a customer message with no text, when routed, then it is ignored as empty', () => {
    assert.equal(
      ignoredBecause(route({ kind: 'customer-chat', text: '', richText: '' })),
      IgnoreReason.emptyMessage,
    );
  });

  it('given eventType instead of subscriptionType, when parsed, then it is read as that type', () => {
    const { subscriptionType, ...rest } = fixtures.webhookEvent();
    const result = parseWebhookEvent(JSON.stringify({ ...rest, eventType: subscriptionType }));
    assert.equal(result.ok && result.event.subscriptionType, 'conversation.newMessage');
  });

  it('given an unlisted type, when parsed, then it is unsupported (accepted, ignored, counted)', () => {
    const result = parseWebhookEvent(
      JSON.stringify({ ...fixtures.webhookEvent(), subscriptionType: 'contact.creation' }),
    );
    assert.deepEqual(result, {
      ok: true,
      event: { subscriptionType: 'unsupported', original: 'contact.creation' },
    });
  });

  it('regression: given a type that is an Object property name, when parsed, then it is unsupported (it threw)', () => {
    for (const type of ['toString', 'constructor', '__proto__', 'valueOf']) {
      const result = parseWebhookEvent(
        JSON.stringify({ ...fixtures.webhookEvent(), subscriptionType: type }),
      );
      assert.deepEqual(result, { ok: true, event: { subscriptionType: 'unsupported', original: type } });
    }
  });

  it('given a newMessage without messageId, when parsed, then it is malformed with the field named', () => {
    const { messageId: _, ...rest } = fixtures.webhookEvent();
    const result = parseWebhookEvent(JSON.stringify(rest));
    assert.equal(result.ok, false);
    assert.match(result.ok ? '' : result.detail, /messageId/);
  });
});

describe('rules: conversation.propertyChange (handoff)', () => {
  const base = {
    orgId: ORG,
    aiActorId: AI_ACTOR,
    assistMode: false,
    session: { handedOff: false },
    lastAppliedAt: undefined,
  };
  const change = (overrides: object = {}) =>
    parsed<ConversationPropertyChangeEvent>(fixtures.propertyChangeEvent(overrides));

  it('given assignment to another agent, when decided, then a handoff names the assignee', () => {
    const decision = decideHandoff(change({ propertyValue: 'A-2620022' }), base);
    const event = decision.kind === 'emit' ? decision.events[0] : undefined;
    assert.equal(event?.type === 'handoff' && event.assigneeActorId, 'A-2620022');
  });
  it('given the thread unassigned (empty value), when decided, then it is a handoff with no assignee', () => {
    const decision = decideHandoff(change({ propertyValue: '' }), base);
    const event = decision.kind === 'emit' ? decision.events[0] : undefined;
    assert.equal(event?.type === 'handoff' && event.assigneeActorId, null);
  });
  it('given Assist Mode, when decided, then it is ignored', () => {
    assert.equal(
      ignoredBecause(decideHandoff(change(), { ...base, assistMode: true })),
      IgnoreReason.assistMode,
    );
  });
  it('given assignment to the AI actor, when decided, then it is ignored', () => {
    assert.equal(
      ignoredBecause(decideHandoff(change({ propertyValue: AI_ACTOR }), base)),
      IgnoreReason.assignedToAi,
    );
  });
  it('given another property (status), when decided, then it is ignored', () => {
    assert.equal(
      ignoredBecause(decideHandoff(change({ propertyName: 'status', propertyValue: 'CLOSED' }), base)),
      IgnoreReason.notAssignment,
    );
  });
  it('given a session already handed off, when decided, then it is ignored (once per session)', () => {
    assert.equal(
      ignoredBecause(decideHandoff(change(), { ...base, session: { handedOff: true } })),
      IgnoreReason.alreadyHandedOff,
    );
  });
  it('regression (soak): given no session for the thread in the links yet (its first message still on its way), when decided, then the handoff is emitted for outbound to apply in order', () => {
    const decision = decideHandoff(change(), { ...base, session: undefined });
    assert.equal(decision.kind, 'emit');
    assert.equal(decision.kind === 'emit' && decision.events[0]?.type, 'handoff');
  });
  it('given an assignment older than one already handled, when decided, then it is stale', () => {
    assert.equal(
      ignoredBecause(decideHandoff(change({ occurredAt: 1_000 }), { ...base, lastAppliedAt: 1_001 })),
      IgnoreReason.stale,
    );
  });
  it('given an assignment as old as or newer than the last handled, when decided, then it hands off', () => {
    for (const lastAppliedAt of [1_000, 999]) {
      assert.deepEqual(
        emittedTypes(decideHandoff(change({ occurredAt: 1_000 }), { ...base, lastAppliedAt })),
        ['handoff'],
      );
    }
  });
});

describe('rules: ticket.propertyChange', () => {
  const base = { orgId: ORG, ticketingEnabled: true, ticketLinked: true, lastAppliedAt: undefined };
  const change = (overrides: object = {}) =>
    parsed<TicketPropertyChangeEvent>(fixtures.ticketPropertyChangeEvent(overrides));

  it('given a value on a linked ticket, when decided, then the property and value are synced', () => {
    const decision = decideTicketFieldChange(
      change({ propertyName: 'hs_pipeline_stage', propertyValue: '3' }),
      base,
    );
    const event = decision.kind === 'emit' ? decision.events[0] : undefined;
    assert.deepEqual(event?.type === 'ticket-field-changed' ? [event.property, event.value] : [], [
      'hs_pipeline_stage',
      '3',
    ]);
  });
  it('given ticketing disabled, when decided, then it is ignored', () => {
    assert.equal(
      ignoredBecause(decideTicketFieldChange(change(), { ...base, ticketingEnabled: false })),
      IgnoreReason.ticketingDisabled,
    );
  });
  it('given a null value, when decided, then it is ignored', () => {
    assert.equal(
      ignoredBecause(decideTicketFieldChange(change({ propertyValue: null }), base)),
      IgnoreReason.emptyValue,
    );
  });
  it('given an empty string, when decided, then it is ignored', () => {
    assert.equal(
      ignoredBecause(decideTicketFieldChange(change({ propertyValue: '' }), base)),
      IgnoreReason.emptyValue,
    );
  });
  it('given a ticket whose session link is not known, when decided, then it is emitted (outbound holds it until the link is)', () => {
    assert.deepEqual(emittedTypes(decideTicketFieldChange(change(), base)), ['ticket-field-changed']);
  });
  it('given a change older than the last handled change of that property, when decided, then it is stale', () => {
    assert.equal(
      ignoredBecause(
        decideTicketFieldChange(change({ occurredAt: 5_000 }), { ...base, lastAppliedAt: 6_000 }),
      ),
      IgnoreReason.stale,
    );
  });
  it('given a change with the same occurredAt as the last handled one, when decided, then it is not stale', () => {
    assert.deepEqual(
      emittedTypes(decideTicketFieldChange(change({ occurredAt: 5_000 }), { ...base, lastAppliedAt: 5_000 })),
      ['ticket-field-changed'],
    );
  });
});

describe('rules: property order and delivery portal', () => {
  it('given no change handled yet, when a change is checked, then it is not stale', () => {
    assert.equal(isStaleChange(1_000, undefined), false);
  });
  it('given a handled change, when an older, equal or newer one is checked, then only the older is stale', () => {
    assert.deepEqual(
      [999, 1_000, 1_001].map((occurredAt) => isStaleChange(occurredAt, 1_000)),
      [true, false, false],
    );
  });
  it("given a private-app delivery naming another portal than the org's, when checked, then it is portal_mismatch", () => {
    assert.equal(checkDeliveryPortal({ route: 'PRIVATE_APP', portalId: 2 }, 1), IgnoreReason.portalMismatch);
  });
  it("given a private-app delivery naming the org's portal, or an OAuth delivery, when checked, then it passes", () => {
    assert.equal(checkDeliveryPortal({ route: 'PRIVATE_APP', portalId: 1 }, 1), undefined);
    assert.equal(checkDeliveryPortal({ route: 'OAUTH_APP', portalId: 2 }, 1), undefined);
  });
});

describe('rules: object.creation (notes)', () => {
  const creation = (overrides: object = {}) =>
    parsed<ObjectCreationEvent>(fixtures.noteCreationEvent(overrides));
  const aNote = HubSpotNote.parse(fixtures.note({ ticketId: '1501' }));

  it('given a note on a synced ticket, when decided, then it is mirrored as text without markup', () => {
    const decision = decideNoteMirror(creation(), aNote, { orgId: ORG, ticketId: '1501' });
    const event = decision.kind === 'emit' ? decision.events[0] : undefined;
    assert.equal(event?.type === 'note-mirrored' && event.text, 'Called the customer; refund approved.');
    assert.equal(event?.type === 'note-mirrored' && event.ticketId, '1501');
  });
  it('given another object type, when decided, then it is ignored', () => {
    assert.equal(
      ignoredBecause(
        decideNoteMirror(creation({ objectTypeId: '0-5' }), aNote, { orgId: ORG, ticketId: '1501' }),
      ),
      IgnoreReason.notANote,
    );
  });
  it('given a note on no ticket, when decided, then it is ignored', () => {
    assert.equal(
      ignoredBecause(decideNoteMirror(creation(), aNote, { orgId: ORG, ticketId: undefined })),
      IgnoreReason.noteOnNoTicket,
    );
  });
  it("given a note's tickets, when its ticket is chosen, then a linked one comes first, else the first one", () => {
    assert.equal(
      ticketOfNote(['1', '2', '3'], (id) => id === '2'),
      '2',
    );
    assert.equal(
      ticketOfNote(['1', '2'], () => false),
      '1',
    );
    assert.equal(
      ticketOfNote([], () => true),
      undefined,
    );
  });
});
