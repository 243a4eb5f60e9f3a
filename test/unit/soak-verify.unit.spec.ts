import assert from 'node:assert/strict';
import type { FakeHubSpot } from '../fakes/hubspot.ts';
import { startFakeOpenCx, type FakeOpenCx, type OpenCxEffect } from '../fakes/opencx.ts';
import type { TestOrg } from '../support/pipeline.ts';
import type { OfferedEvent } from '../support/soak/load.ts';
import { LoadGenerator, seededRandom } from '../support/soak/load.ts';
import { failed, verify } from '../support/soak/verify.ts';
import { lag } from '../support/soak/run-soak.ts';

// The soak's verdict must be able to say "lost", "twice" and "out of order": checked here on
// hand-made records, so a soak that passes is not a verifier that cannot fail.
const thread = '6065360001';
const session = 'session-1';

const customerMessage = (seq: number, text: string): OfferedEvent => ({
  seq,
  label: 'customer-chat',
  orgId: 'org-1',
  body: { messageId: `m${seq}` },
  expect: {
    kind: 'message-sent',
    key: text,
    conversation: `thread:${thread}`,
    threadId: thread,
    orgId: 'org-1',
  },
  customerText: text,
  acceptedIndex: seq,
  acceptedAt: 1000 + seq,
});

const effect = (kind: OpenCxEffect['kind'], body: unknown, at: number): OpenCxEffect => ({
  kind,
  sessionId: session,
  body,
  idempotencyKey: `key-${at}`,
  at,
});
const sessionCreated = effect('session-created', { custom_data: { hubspot_thread_id: thread } }, 1);
const sent = (text: string, at: number) => effect('message-sent', { message: { text } }, at);

const verdictOf = (
  offered: OfferedEvent[],
  effects: OpenCxEffect[],
  posted: Array<{ body: { text: string }; at: number }> = [],
) =>
  verify({
    load: { offered, handoffIndexOf: () => undefined } as unknown as LoadGenerator,
    opencx: { effects, violations: [], sessions: new Map() } as unknown as FakeOpenCx,
    hubspot: { posted } as unknown as FakeHubSpot,
    replayStartedAt: undefined,
    deadLetteredEventIds: new Set(),
  });

const ticket = '1700000001';
/** A change of the ticket's priority to `value`, occurred at `occurredAt`, accepted `seq`-th. */
const ticketChange = (seq: number, value: string, occurredAt: number): OfferedEvent => ({
  seq,
  label: 'ticket-change',
  orgId: 'org-1',
  body: { objectId: Number(ticket), propertyName: 'hs_ticket_priority', propertyValue: value, occurredAt },
  expect: {
    kind: 'custom-data',
    key: value,
    conversation: `ticket:${ticket}:hs_ticket_priority`,
    threadId: thread,
    orgId: 'org-1',
    ticketField: { ticketId: ticket, property: 'hs_ticket_priority', occurredAt },
  },
  acceptedIndex: seq,
  acceptedAt: 1000 + seq,
});
const customData = (value: string, at: number) => effect('custom-data', { hs_ticket_priority: value }, at);

const aiReply = (text: string, at: number) => ({
  body: { text: `AI: ${text}\n\n<!-- OpenCX-AI-Response --><!-- opencx-reply:${'a'.repeat(32)} -->` },
  at,
});

describe('soak verdict', () => {
  it('given each accepted message applied once, in order, with one AI reply each, then it passes', () => {
    const verdict = verdictOf(
      [customerMessage(1, 'one'), customerMessage(2, 'two')],
      [sessionCreated, sent('one', 2), sent('two', 3)],
      [aiReply('one', 2), aiReply('two', 3)],
    );
    assert.equal(verdict.applied, 2);
    assert.equal(failed(verdict), false);
  });

  it('given a message with no effect, then it is lost', () => {
    const verdict = verdictOf(
      [customerMessage(1, 'one'), customerMessage(2, 'two')],
      [sessionCreated, sent('one', 2)],
      [aiReply('one', 2)],
    );
    assert.equal(verdict.lost, 1);
    assert.equal(failed(verdict), true);
  });

  it('given a message applied twice, then it is duplicated', () => {
    const verdict = verdictOf(
      [customerMessage(1, 'one')],
      [sessionCreated, sent('one', 2), sent('one', 3)],
      [aiReply('one', 2)],
    );
    assert.equal(verdict.duplicated, 1);
    assert.equal(failed(verdict), true);
  });

  it('given two messages of one thread applied in the opposite order, then it is out of order', () => {
    const verdict = verdictOf(
      [customerMessage(1, 'one'), customerMessage(2, 'two')],
      [sessionCreated, sent('two', 2), sent('one', 3)],
      [aiReply('one', 3), aiReply('two', 2)],
    );
    assert.equal(verdict.outOfOrder, 1);
    assert.equal(failed(verdict), true);
  });

  it('given an AI reply posted twice, or an effect nobody asked for, then it fails', () => {
    const twice = verdictOf(
      [customerMessage(1, 'one')],
      [sessionCreated, sent('one', 2)],
      [aiReply('one', 2), aiReply('one', 5)],
    );
    assert.equal(twice.aiRepliesTwice, 1);
    const unexpected = verdictOf([], [sessionCreated, sent('from an ignored event', 2)]);
    assert.equal(unexpected.unexpected, 1);
    assert.equal(failed(twice) && failed(unexpected), true);
  });

  it('given ticket changes held until the link was known, when only the newest value was applied, then the older ones are superseded, not lost', () => {
    const verdict = verdictOf(
      [ticketChange(1, 'LOW', 5000), ticketChange(2, 'MEDIUM', 6000), ticketChange(3, 'HIGH', 7000)],
      [sessionCreated, customData('HIGH', 9)],
    );
    assert.equal(verdict.lost, 0);
    assert.equal(verdict.superseded, 2);
    assert.equal(verdict.applied, 1);
    assert.equal(verdict.outOfOrder, 0);
    assert.equal(failed(verdict), false);
  });

  it('given a ticket change with no newer value of its property applied, then it is lost', () => {
    // MEDIUM was never applied, and the only value applied (LOW) is older: nothing replaced it.
    const verdict = verdictOf(
      [ticketChange(1, 'LOW', 5000), ticketChange(2, 'MEDIUM', 6000)],
      [sessionCreated, customData('LOW', 9)],
    );
    assert.equal(verdict.lost, 1);
    assert.equal(verdict.superseded, 0);
    assert.deepEqual(
      verdict.findings.map((finding) => finding.what),
      ['lost'],
    );
    assert.match(verdict.findings[0]?.detail ?? '', /MEDIUM/);
    assert.equal(failed(verdict), true);
  });

  it('given an older ticket value applied after a newer one of the same property, then it is out of order', () => {
    const verdict = verdictOf(
      [ticketChange(1, 'LOW', 5000), ticketChange(2, 'HIGH', 6000)],
      [sessionCreated, customData('HIGH', 9), customData('LOW', 10)],
    );
    assert.equal(verdict.lost, 0);
    assert.equal(verdict.outOfOrder, 1);
    assert.match(
      verdict.findings[0]?.detail ?? '',
      /"custom-data\|LOW" .* applied after the newer "custom-data\|HIGH"/,
    );
    assert.equal(failed(verdict), true);
  });

  it('given ticket changes accepted out of occurredAt order, when applied in occurredAt order, then it passes', () => {
    // The order that counts for a ticket property is when each change occurred, not acceptance.
    const verdict = verdictOf(
      [ticketChange(1, 'HIGH', 7000), ticketChange(2, 'LOW', 5000)],
      [sessionCreated, customData('LOW', 9), customData('HIGH', 10)],
    );
    assert.equal(verdict.outOfOrder, 0);
    assert.equal(failed(verdict), false);
  });

  it('given the same seed, then the same sequence; another seed, another one', () => {
    const draw = (seed: number) => Array.from({ length: 5 }, seededRandom(seed));
    assert.deepEqual(draw(7), draw(7));
    assert.notDeepEqual(draw(7), draw(8));
  });
});

describe('soak load: a ticket change and a note right after a first message', () => {
  const org: TestOrg = {
    orgId: 'org-1',
    portalId: 31_000_001,
    accessToken: 'token',
    apiKey: 'key',
    aiActorId: 'A-1',
    legacyWebhookUrl: '',
  };
  const loadWith = () => {
    const threads: Array<{ id: string; threadAssociations?: { associatedTicketId?: string } }> = [];
    const notes: Array<{ id: string; associations: { tickets: { results: Array<{ id: string }> } } }> = [];
    const hubspot = {
      setThread: (thread: (typeof threads)[number]) => threads.push(thread),
      addMessage: () => undefined,
      addNote: (added: (typeof notes)[number]) => notes.push(added),
      posted: [],
    };
    const load = new LoadGenerator({
      runId: 'unit',
      orgs: [org],
      hubspot: hubspot as unknown as FakeHubSpot,
      opencx: { effects: [], sessions: new Map() } as unknown as FakeOpenCx,
      random: seededRandom(1),
      settleMs: 3000,
    });
    return { load, threads, notes };
  };

  it('given a first message accepted a second ago, then the next events are a ticket change and a note on its ticket, each expecting its effect', () => {
    const { load, threads, notes } = loadWith();
    const first = load.newConversation(org);
    load.markAccepted(first, 1, Date.now() - 1000);
    const ticketId = threads[0]?.threadAssociations?.associatedTicketId;
    assert.ok(ticketId !== undefined);
    const followUps = [load.next(), load.next()].sort((a, b) => a.label.localeCompare(b.label));
    assert.deepEqual(
      followUps.map((event) => event.label),
      ['first-note', 'first-ticket-change'],
    );
    const [note, change] = followUps;
    assert.equal(change?.body.subscriptionType, 'ticket.propertyChange');
    assert.equal(String(change?.body.objectId), ticketId);
    assert.notEqual(change?.body.propertyValue, '');
    assert.equal(change?.expect?.kind, 'custom-data');
    assert.equal(change?.expect?.ticketField?.ticketId, ticketId);
    assert.equal(change?.expect?.ticketField?.occurredAt, change?.body.occurredAt);
    assert.equal(note?.body.subscriptionType, 'object.creation');
    assert.equal(note?.expect?.kind, 'agent-comment');
    assert.deepEqual(
      notes
        .find((each) => each.id === String(note?.body.objectId))
        ?.associations.tickets.results.map((each) => each.id),
      [ticketId],
    );
  });

  it('given a first message accepted just now, then its follow-ups are not due yet (200 ms at the earliest)', () => {
    const { load } = loadWith();
    const first = load.newConversation(org);
    load.markAccepted(first, 1, Date.now());
    const labels = Array.from({ length: 20 }, () => load.next().label);
    assert.ok(!labels.includes('first-ticket-change') && !labels.includes('first-note'), labels.join(', '));
  });
});

describe('fake OpenCX: one API key down for a window', () => {
  let opencx: FakeOpenCx;
  before(async () => {
    opencx = await startFakeOpenCx();
  });
  after(async () => opencx.close());

  const createSession = (apiKey: string) =>
    fetch(`${opencx.url}/chat/sessions`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${apiKey}`,
        'content-type': 'application/json',
        'idempotency-key': `k-${apiKey}-${Date.now()}-${Math.random()}`,
      },
      body: JSON.stringify({
        channel: { type: 'web' },
        custom_data: { hubspot_thread_id: '1', hubspot_portal_id: '2' },
      }),
    });

  it('given failApiKeyUntil, when that key calls before the end, then 503 and no effect; other keys and later calls are served', async () => {
    opencx.failApiKeyUntil('down-key', Date.now() + 300);
    assert.equal((await createSession('down-key')).status, 503);
    assert.equal((await createSession('up-key')).status, 201);
    assert.equal(opencx.effects.length, 1);
    await new Promise((resolve) => setTimeout(resolve, 350));
    assert.equal((await createSession('down-key')).status, 201);
  });
});

describe('soak drain: what a consumer group has still to do', () => {
  const admin = (commits: { partition: number; offset: string; metadata: string | null }[]) => ({
    fetchTopicOffsets: async () => [
      { partition: 0, high: '10', low: '0', offset: '10' },
      { partition: 1, high: '5', low: '0', offset: '5' },
    ],
    fetchOffsets: async () => [{ topic: 't', partitions: commits }],
  });

  it('given every partition committed at its end with no cursor, then nothing is left', async () => {
    const left = await lag(
      admin([
        { partition: 0, offset: '10', metadata: null },
        { partition: 1, offset: '5', metadata: '' },
      ]),
      'g',
      't',
    );
    assert.deepEqual(left, { records: 0, parkedTenants: 0 });
  });

  it('given a tenant parked behind a commit at the end (waiting out its HubSpot budget), then it is not drained', async () => {
    const cursors = JSON.stringify({ v: 1, p: [['org-3', '7', 1000]] });
    const left = await lag(
      admin([
        { partition: 0, offset: '10', metadata: cursors },
        { partition: 1, offset: '3', metadata: null },
      ]),
      'g',
      't',
    );
    assert.deepEqual(left, { records: 2, parkedTenants: 1 });
  });
});
