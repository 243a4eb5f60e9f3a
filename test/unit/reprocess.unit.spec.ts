import assert from 'node:assert/strict';
import type { DomainEvent } from '../../lib/domain-events.ts';
import {
  Change,
  ReprocessError,
  compareOutcome,
  parseWindow,
  sourceKeyOfDomainEvent,
  sourceKeyOfWebhookEvent,
} from '../../tools/reprocess/index.ts';
import {
  decideHandoff,
  decideTicketFieldChange,
  parseWebhookEvent,
  type ConversationPropertyChangeEvent,
  type TicketPropertyChangeEvent,
} from '../../services/processor/src/rules/index.ts';

const common = { eventId: 'e-1', orgId: 'acme', portalId: 123, occurredAt: 1_700_000_000_000 };
const ticketChange: DomainEvent = {
  ...common,
  type: 'ticket-field-changed',
  ticketId: '77',
  property: 'hs_pipeline_stage',
  value: '2',
};

const webhook = (event: object) => {
  const parsed = parseWebhookEvent(
    JSON.stringify({ portalId: 123, occurredAt: common.occurredAt, ...event }),
  );
  assert.ok(parsed.ok);
  return parsed.event;
};

describe('reprocess: a decision against what the domain topic holds (tools/reprocess/compare.ts)', () => {
  it('given each HubSpot event type, when keyed, then it meets the key of the domain event it produces', () => {
    assert.equal(
      sourceKeyOfWebhookEvent(
        webhook({ subscriptionType: 'conversation.newMessage', objectId: 9, messageId: 'm-1' }),
      ),
      sourceKeyOfDomainEvent({
        ...common,
        type: 'rep-reply',
        threadId: '9',
        messageId: 'm-1',
        text: 'hi',
        actorId: 'A-1',
        internal: false,
        channelId: null,
      }),
    );
    assert.equal(
      sourceKeyOfWebhookEvent(
        webhook({
          subscriptionType: 'ticket.propertyChange',
          objectId: 77,
          propertyName: 'hs_pipeline_stage',
          propertyValue: '2',
        }),
      ),
      sourceKeyOfDomainEvent(ticketChange),
    );
    assert.equal(
      sourceKeyOfWebhookEvent(
        webhook({ subscriptionType: 'conversation.propertyChange', objectId: 9, propertyName: 'assignedTo' }),
      ),
      sourceKeyOfDomainEvent({ ...common, type: 'handoff', threadId: '9', assigneeActorId: null }),
    );
    assert.equal(
      sourceKeyOfWebhookEvent(
        webhook({ subscriptionType: 'object.creation', objectId: 5, objectTypeId: '0-46' }),
      ),
      sourceKeyOfDomainEvent({
        ...common,
        type: 'note-mirrored',
        ticketId: '77',
        noteId: '5',
        text: 'n',
        authorOwnerId: null,
        createdAt: 1,
      }),
    );
    assert.equal(
      sourceKeyOfWebhookEvent(webhook({ subscriptionType: 'contact.creation', objectId: 1 })),
      undefined,
    );
  });

  it('given the rules, when they emit for a property change, then the event carries the key of its raw event', () => {
    const ticket = webhook({
      subscriptionType: 'ticket.propertyChange',
      objectId: 77,
      propertyName: 'subject',
      propertyValue: 'Broken',
    }) as TicketPropertyChangeEvent;
    const decided = decideTicketFieldChange(ticket, {
      orgId: 'acme',
      ticketingEnabled: true,
      lastAppliedAt: undefined,
    });
    assert.equal(decided.kind, 'emit');
    assert.equal(sourceKeyOfDomainEvent(decided.events[0]!), sourceKeyOfWebhookEvent(ticket));

    const assignment = webhook({
      subscriptionType: 'conversation.propertyChange',
      objectId: 9,
      propertyName: 'assignedTo',
      propertyValue: 'A-222',
    }) as ConversationPropertyChangeEvent;
    const handoff = decideHandoff(assignment, {
      orgId: 'acme',
      aiActorId: 'A-111',
      assistMode: false,
      session: { handedOff: false },
      lastAppliedAt: undefined,
    });
    assert.equal(handoff.kind, 'emit');
    assert.equal(sourceKeyOfDomainEvent(handoff.events[0]!), sourceKeyOfWebhookEvent(assignment));
  });

  it('given an emitted event the topic lacks, then it is a new effect with that event; one it holds is unchanged', () => {
    const emitted = { kind: 'emitted', events: [ticketChange] } as const;
    assert.deepEqual(compareOutcome(emitted, [], new Set()), {
      change: Change.newEffect,
      newEvents: [ticketChange],
    });
    assert.deepEqual(compareOutcome(emitted, ['e-1'], new Set(['e-1'])), {
      change: Change.unchanged,
      newEvents: [],
    });
  });

  it('given a skip, then it is newly skipped when the topic holds events of its source, else still skipped; a duplicate is a repeat delivery', () => {
    const stale = { kind: 'skipped', reason: 'stale' } as const;
    assert.equal(compareOutcome(stale, ['e-1'], new Set(['e-1'])).change, Change.newlySkipped);
    assert.equal(compareOutcome(stale, [], new Set()).change, Change.stillSkipped);
    assert.equal(compareOutcome(stale, [], new Set()).detail, 'stale');
    assert.equal(
      compareOutcome({ kind: 'skipped', reason: 'duplicate' }, ['e-1'], new Set()).change,
      Change.repeatDelivery,
    );
    assert.equal(
      compareOutcome({ kind: 'dead-letter', reason: 'hubspot_rejected', error: '404' }, [], new Set()).change,
      Change.wouldDeadLetter,
    );
    assert.equal(
      compareOutcome({ kind: 'failed', error: 'Redis down' }, [], new Set()).change,
      Change.failed,
    );
  });
});

describe('reprocess: the window (--since, --until)', () => {
  const now = Date.parse('2026-11-30T12:00:00Z');

  it('given durations and dates, when parsed, then the window is [since, until)', () => {
    assert.deepEqual(parseWindow('2h', undefined, now), { since: now - 7_200_000, until: undefined });
    assert.deepEqual(parseWindow('2026-11-30T08:00:00Z', '1h', now), {
      since: Date.parse('2026-11-30T08:00:00Z'),
      until: now - 3_600_000,
    });
  });

  it('given a bad or empty window, when parsed, then the error names the option', () => {
    assert.throws(() => parseWindow('yesterday', undefined, now), ReprocessError);
    assert.throws(() => parseWindow('2h', 'soon', now), /--until "soon" is not an ISO date/);
    assert.throws(() => parseWindow('1h', '2h', now), /--until .* is not after --since/);
    assert.throws(() => parseWindow('2027-01-01T00:00:00Z', undefined, now), /is in the future/);
  });
});
