import assert from 'node:assert/strict';
import { pino } from 'pino';
import type { NoteMirrored, TicketFieldChanged } from '../../lib/domain-events.ts';
import {
  afterApplied,
  eventsToRelease,
  isStaleChange,
  HeldTicket,
  holdEvent,
  type HeldTicket as Held,
} from '../../lib/held-ticket-events.ts';
import {
  RECHECK_MS,
  REOWE_EVERY_MS,
  startHeldTicketChecks,
} from '../../services/outbound/src/held-ticket-checks.ts';

const change = (property: string, value: string, occurredAt: number): TicketFieldChanged => ({
  type: 'ticket-field-changed',
  eventId: `e-${property}-${occurredAt}`,
  orgId: 'org-1',
  portalId: 42,
  occurredAt,
  ticketId: 'K1',
  property,
  value,
});
const note = (noteId: string, text = 'Refund ok'): NoteMirrored => ({
  type: 'note-mirrored',
  eventId: `e-note-${noteId}`,
  orgId: 'org-1',
  portalId: 42,
  occurredAt: 5,
  ticketId: 'K1',
  noteId,
  text,
  authorOwnerId: null,
  createdAt: 5,
});
const holdAll = (events: readonly (TicketFieldChanged | NoteMirrored)[], now = 100): Held | undefined =>
  events.reduce<Held | undefined>((held, event) => holdEvent(held, event, now).ticket, undefined);
const held = (ticket: Held | undefined) => ticket?.events.map(({ event }) => event.eventId);

describe('held ticket events: what a ticket holds (pure)', () => {
  it('given a first event, when held, then the ticket holds it since now', () => {
    const result = holdEvent(undefined, change('stage', '1', 10), 100);
    assert.equal(result.changed, true);
    assert.equal(result.ticket.heldSince, 100);
    assert.deepEqual(held(result.ticket), ['e-stage-10']);
  });

  it('given a held change, when a newer change of the same property comes, then it replaces the held one (superseded), keeping the hold start', () => {
    const first = holdEvent(undefined, change('stage', '1', 10), 100).ticket;
    const result = holdEvent(first, change('stage', '2', 20), 200);
    assert.deepEqual(held(result.ticket), ['e-stage-20']);
    assert.deepEqual(
      result.superseded.map((event) => event.eventId),
      ['e-stage-10'],
    );
    assert.equal(result.ticket.heldSince, 100);
  });

  it('given a held change, when an older change of the same property comes late, then nothing changes and the late one is superseded', () => {
    const first = holdEvent(undefined, change('stage', '2', 20), 100).ticket;
    const result = holdEvent(first, change('stage', '1', 10), 200);
    assert.equal(result.changed, false);
    assert.deepEqual(held(result.ticket), ['e-stage-20']);
    assert.deepEqual(
      result.superseded.map((event) => event.eventId),
      ['e-stage-10'],
    );
  });

  it('given held events, when one is delivered again (a redelivery, a note twice), then nothing changes', () => {
    const ticket = holdAll([change('stage', '1', 10), note('N1')]);
    assert.equal(holdEvent(ticket, change('stage', '1', 10), 300).changed, false);
    assert.equal(holdEvent(ticket, note('N1'), 300).changed, false);
  });

  it('given changes of several properties and notes, then each is kept, in the order to apply them', () => {
    const ticket = holdAll([
      change('stage', '1', 10),
      note('N1'),
      change('priority', 'HIGH', 11),
      note('N2'),
    ]);
    assert.deepEqual(held(ticket), ['e-stage-10', 'e-note-N1', 'e-priority-11', 'e-note-N2']);
  });

  it('given notes over the size a record may carry, then the oldest note is let go first (dropped), changes kept', () => {
    const big = 'x'.repeat(600);
    let ticket = holdEvent(undefined, change('stage', '1', 10), 100).ticket;
    ticket = holdEvent(ticket, note('N1', big), 100, 1500).ticket;
    const result = holdEvent(ticket, note('N2', big), 100, 1500);
    assert.deepEqual(held(result.ticket), ['e-stage-10', 'e-note-N2']);
    assert.deepEqual(
      result.dropped.map((event) => event.eventId),
      ['e-note-N1'],
    );
    assert.ok(Buffer.byteLength(JSON.stringify(result.ticket)) <= 1500);
  });

  it('given a held record, then its JSON is what the table decodes (HeldTicket schema)', () => {
    const ticket = holdAll([change('stage', '1', 10), note('N1')]);
    assert.deepEqual(HeldTicket.parse(JSON.parse(JSON.stringify(ticket))), ticket);
  });

  it('given held events and an incoming one at release, then the incoming one joins in its place (replacing an older value of its property)', () => {
    const ticket = holdAll([change('stage', '1', 10), note('N1')]);
    assert.deepEqual(
      eventsToRelease(ticket, change('stage', '2', 20)).map((event) => event.eventId),
      ['e-note-N1', 'e-stage-20'],
    );
    assert.deepEqual(
      eventsToRelease(undefined, note('N9')).map((event) => event.eventId),
      ['e-note-N9'],
    );
    assert.deepEqual(
      eventsToRelease(ticket).map((event) => event.eventId),
      ['e-stage-10', 'e-note-N1'],
    );
  });
});

describe('held ticket events: the applied clocks (pure)', () => {
  it('given changes applied, then the record holds nothing and keeps the newest occurredAt per property', () => {
    const ticket = afterApplied(
      undefined,
      [change('stage', '2', 20), change('stage', '1', 10), note('N1'), change('priority', 'HIGH', 15)],
      500,
      change('stage', '2', 20),
    );
    assert.deepEqual(ticket.events, []);
    assert.deepEqual(ticket.applied, { stage: 20, priority: 15 });
    assert.equal(ticket.updatedAt, 500);
  });

  it('given an applied clock, then only an older change of that property is stale (an equal one is a repeat, a note never)', () => {
    const ticket = afterApplied(undefined, [change('stage', '2', 20)], 500, change('stage', '2', 20));
    assert.equal(isStaleChange(ticket, change('stage', '1', 19)), true);
    assert.equal(isStaleChange(ticket, change('stage', '2', 20)), false);
    assert.equal(isStaleChange(ticket, change('priority', 'LOW', 1)), false);
    assert.equal(isStaleChange(ticket, note('N1')), false);
    assert.equal(isStaleChange(undefined, change('stage', '1', 1)), false);
  });

  it('given a record with clocks only, when an event is held, then the hold starts now and the clocks stay', () => {
    const clocks = afterApplied(undefined, [change('stage', '2', 20)], 500, change('stage', '2', 20));
    const held = holdEvent(clocks, change('priority', 'HIGH', 30), 900).ticket;
    assert.equal(held.heldSince, 900);
    assert.deepEqual(held.applied, { stage: 20 });
    assert.deepEqual(
      held.events.map(({ event }) => event.eventId),
      ['e-priority-30'],
    );
  });
});

describe('held ticket checks: when a held ticket is sent back through its queue', () => {
  const ticket = (ticketId: string, heldSince: number): Held => ({
    orgId: 'org-1',
    ticketId,
    portalId: 42,
    heldSince,
    events: [{ event: { ...change('stage', '1', 10), ticketId }, heldAt: heldSince }],
    applied: {},
    updatedAt: heldSince,
  });
  const harness = (tickets: Held[], linked: Set<string>, now: { at: number }) => {
    const checked: string[] = [];
    const reowed: string[][] = [];
    const checks = startHeldTicketChecks({
      held: {
        get: (_orgId, ticketId) => tickets.find((entry) => entry.ticketId === ticketId),
        values: () => tickets,
        waitingOrgs: () => new Set(tickets.map((entry) => entry.orgId)),
      },
      isLinked: (_orgId, ticketId) => linked.has(ticketId),
      publishCheck: async (held) => void checked.push(held.ticketId),
      oweAgain: async (orgIds) => void reowed.push([...orgIds]),
      holdMs: 60_000,
      clockTtlMs: 120_000,
      now: () => now.at,
      logger: pino({ level: 'silent' }),
      sweepEveryMs: 10,
    });
    return { checks, checked, reowed };
  };
  const tick = () => new Promise((resolve) => setTimeout(resolve, 40));

  it('given held tickets, when the sweep runs, then only the linked one and the one whose hold ended are checked, each again after RECHECK_MS, then twice as long each time', async () => {
    const now = { at: 100_000 };
    const { checks, checked } = harness(
      [ticket('linked', 90_000), ticket('waiting', 90_000), ticket('expired', 30_000)],
      new Set(['linked']),
      now,
    );
    try {
      await tick();
      assert.deepEqual(checked.sort(), ['expired', 'linked']);
      await tick();
      assert.equal(checked.length, 2, 'not again within RECHECK_MS');
      now.at += RECHECK_MS;
      await tick();
      assert.equal(checked.length, 4, 'again after RECHECK_MS: a check may have been lost');
      now.at += RECHECK_MS;
      await tick();
      assert.equal(checked.length, 4, 'a ticket still held after two checks waits twice as long');
      now.at += RECHECK_MS;
      await tick();
      assert.equal(checked.length, 6);
    } finally {
      checks.stop();
    }
  });

  it('given records that hold nothing, then only one whose clocks are older than their TTL is checked (to be let go)', async () => {
    const now = { at: 500_000 };
    const clocksOnly = (ticketId: string, updatedAt: number): Held => ({
      ...ticket(ticketId, updatedAt),
      events: [],
      updatedAt,
    });
    const { checks, checked } = harness(
      [clocksOnly('old', 500_000 - 120_000), clocksOnly('fresh', 499_000)],
      new Set(),
      now,
    );
    try {
      await tick();
      assert.deepEqual(checked, ['old']);
    } finally {
      checks.stop();
    }
  });

  it("given a ticket's link written, when told, then its held events are checked at once; a ticket holding nothing is not", async () => {
    const now = { at: 100_000 };
    const { checks, checked } = harness([ticket('K1', 99_000)], new Set(), now);
    checks.stop();
    checks.linked('org-1', 'K1');
    checks.linked('org-1', 'K-none');
    await tick();
    assert.deepEqual(checked, ['K1']);
  });

  it('given an organisation with held events, then its look-ups are owed again at once and every REOWE_EVERY_MS, not on every sweep', async () => {
    const now = { at: 100_000 };
    const { checks, reowed } = harness([ticket('K1', 99_000)], new Set(), now);
    try {
      await tick();
      assert.deepEqual(reowed, [['org-1']]);
      checks.awaited('org-1');
      await tick();
      assert.equal(reowed.length, 1, 'not again within REOWE_EVERY_MS');
      now.at += REOWE_EVERY_MS;
      await tick();
      assert.equal(reowed.length, 2);
    } finally {
      checks.stop();
    }
  });
});
