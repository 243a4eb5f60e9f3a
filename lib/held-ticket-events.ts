import { z } from 'zod';
import type { NoteMirrored, TicketFieldChanged } from './domain-events.ts';
import { JsonTable, type JsonTableOptions } from './kafka/json-table.ts';
import { catchUpOrRetryLater } from './kafka/table.ts';
import type { RecordWriter } from './kafka/record-writer.ts';
import { ticketLinkKey } from './session-links.ts';

/**
 * Ticket and note events whose ticket has no known session link yet, held until it has one
 * (contract.md: "held, durably and per ticket"). One record per ticket on a compacted topic, so a
 * crash, a rebalance or a Redis that lost its data changes nothing: every outbound replica reads
 * the topic whole, and the ticket's queue (the domain topic's `<org>:ticket:<id>` key) is the
 * only writer of its record. Released (applied in order) in that queue once the link is known;
 * dropped once the hold has lasted `TICKET_HOLD_MS`.
 *
 * What is held and no more: the newest change per property (by occurredAt) and each note once.
 *
 * The record also keeps, per property, when the newest change applied to the session occurred
 * (`applied`), for as long as a late delivery may come (DEDUP_TTL_MS). A change that was never
 * applied (superseded while held, or skipped as stale by the processor) and comes again later
 * (HubSpot's retries, a redelivery) would otherwise be applied over the newer value whenever the
 * processor's Redis clock has lost its data; an applied one coming again is a no-op at OpenCX
 * anyway (its Idempotency-Key).
 */
const TicketFieldChangedRecord = z.object({
  type: z.literal('ticket-field-changed'),
  eventId: z.string(),
  orgId: z.string(),
  portalId: z.number(),
  occurredAt: z.number(),
  ticketId: z.string(),
  property: z.string(),
  value: z.string(),
});
const NoteMirroredRecord = z.object({
  type: z.literal('note-mirrored'),
  eventId: z.string(),
  orgId: z.string(),
  portalId: z.number(),
  occurredAt: z.number(),
  ticketId: z.string(),
  noteId: z.string(),
  text: z.string(),
  authorOwnerId: z.string().nullable(),
  createdAt: z.number(),
});

export type HoldableEvent = TicketFieldChanged | NoteMirrored;

export const HeldEvent = z.object({
  event: z.discriminatedUnion('type', [TicketFieldChangedRecord, NoteMirroredRecord]),
  /** When outbound held it (its clock): how long it waited is counted at release. */
  heldAt: z.number(),
});
export type HeldEvent = { readonly event: HoldableEvent; readonly heldAt: number };

export const HeldTicket = z.object({
  orgId: z.string(),
  ticketId: z.string(),
  portalId: z.number(),
  /** When the first of the events held now was held: the hold ends `TICKET_HOLD_MS` after it. */
  heldSince: z.number(),
  /** In the order they are to be applied; empty once released. */
  events: z.array(HeldEvent),
  /** Per property, occurredAt of the newest change applied to the session. */
  applied: z.record(z.string(), z.number()).default({}),
  /** When the record was last written (its clocks are let go DEDUP_TTL_MS after). */
  updatedAt: z.number().default(0),
});
export type HeldTicket = {
  readonly orgId: string;
  readonly ticketId: string;
  readonly portalId: number;
  readonly heldSince: number;
  readonly events: readonly HeldEvent[];
  readonly applied: Readonly<Record<string, number>>;
  readonly updatedAt: number;
};

/** Whether the ticket holds events (a record with none keeps only its applied clocks). */
export const isHolding = (ticket: HeldTicket | undefined): boolean =>
  ticket !== undefined && ticket.events.length > 0;

/** A change older than the newest change of its property already applied to the session. */
export const isStaleChange = (ticket: HeldTicket | undefined, event: HoldableEvent): boolean =>
  event.type === 'ticket-field-changed' && (ticket?.applied[event.property] ?? -Infinity) > event.occurredAt;

/** The record once `events` are applied: nothing held, their changes' clocks raised (pure). */
export const afterApplied = (
  ticket: HeldTicket | undefined,
  events: readonly HoldableEvent[],
  now: number,
  of: { readonly orgId: string; readonly ticketId: string; readonly portalId: number },
): HeldTicket => {
  const applied: Record<string, number> = { ...ticket?.applied };
  for (const event of events)
    if (event.type === 'ticket-field-changed')
      applied[event.property] = Math.max(applied[event.property] ?? -Infinity, event.occurredAt);
  return {
    orgId: of.orgId,
    ticketId: of.ticketId,
    portalId: of.portalId,
    heldSince: now,
    events: [],
    applied,
    updatedAt: now,
  };
};

/**
 * A held record stays well under the broker's 1 MiB record limit: notes are the only part that
 * can grow (each may be long), and the oldest is let go first when a new one would not fit.
 */
export const MAX_HELD_TICKET_BYTES = 512 * 1024;

export type HoldResult = {
  readonly ticket: HeldTicket;
  /** False when the event changes nothing held (already held, or older than the held value). */
  readonly changed: boolean;
  /** Held events a newer change of the same property replaced, and an event older than the held value. */
  readonly superseded: readonly HoldableEvent[];
  /** Notes let go because the record would be over MAX_HELD_TICKET_BYTES. */
  readonly dropped: readonly HoldableEvent[];
};

const sameSlot = (a: HoldableEvent, b: HoldableEvent): boolean =>
  a.type === 'ticket-field-changed'
    ? b.type === 'ticket-field-changed' && a.property === b.property
    : b.type === 'note-mirrored' && a.noteId === b.noteId;

/**
 * Adds one event to a ticket's held record (pure). A change replaces the held change of the same
 * property unless that one is newer; a note is held once; an event already held is a no-op, so a
 * redelivered event holds nothing twice.
 */
export const holdEvent = (
  held: HeldTicket | undefined,
  event: HoldableEvent,
  now: number,
  maxBytes = MAX_HELD_TICKET_BYTES,
): HoldResult => {
  const ticket: HeldTicket =
    held && isHolding(held)
      ? { ...held, updatedAt: now }
      : {
          orgId: event.orgId,
          ticketId: event.ticketId,
          portalId: event.portalId,
          heldSince: now,
          events: [],
          applied: held?.applied ?? {},
          updatedAt: now,
        };
  const existing = ticket.events.find((entry) => sameSlot(entry.event, event));
  if (existing && (existing.event.eventId === event.eventId || existing.event.type === 'note-mirrored'))
    return { ticket, changed: false, superseded: [], dropped: [] };
  if (existing && existing.event.occurredAt > event.occurredAt)
    return { ticket, changed: false, superseded: [event], dropped: [] };
  const events = [...ticket.events.filter((entry) => entry !== existing), { event, heldAt: now }];
  const dropped: HoldableEvent[] = [];
  while (events.length > 1 && Buffer.byteLength(JSON.stringify({ ...ticket, events })) > maxBytes) {
    const oldestNote = events.findIndex((entry) => entry.event.type === 'note-mirrored');
    const [letGo] = events.splice(oldestNote === -1 ? 0 : oldestNote, 1);
    if (letGo) dropped.push(letGo.event);
  }
  return {
    ticket: { ...ticket, events },
    changed: true,
    superseded: existing ? [existing.event] : [],
    dropped,
  };
};

/**
 * What a release applies, in order: the held events, with `incoming` (an event that arrived once
 * the link was known) in its place among them, replacing an older held change of its property.
 */
export const eventsToRelease = (
  held: HeldTicket | undefined,
  incoming?: HoldableEvent,
): readonly HoldableEvent[] => {
  const events = held?.events.map(({ event }) => event) ?? [];
  if (!incoming) return events;
  if (!held) return [incoming];
  return holdEvent(held, incoming, held.heldSince, Number.POSITIVE_INFINITY).ticket.events.map(
    ({ event }) => event,
  );
};

export class HeldTicketEvents extends JsonTable<HeldTicket> {
  /** Tickets holding events, per organisation: whose owed ticket look-ups are awaited. */
  readonly #perOrg = new Map<string, number>();
  /** When the last catch-up that completed had started. */
  #caughtUpFrom = 0;

  constructor(options: JsonTableOptions) {
    super(HeldTicket, options);
    this.table.onChange(({ key, value }) => {
      const orgId = value?.orgId ?? key.slice(0, key.lastIndexOf(':ticket:'));
      const had = this.#keys.has(key);
      const holding = isHolding(value);
      if (holding && !had) {
        this.#keys.add(key);
        this.#perOrg.set(orgId, (this.#perOrg.get(orgId) ?? 0) + 1);
      } else if (!holding && had) {
        this.#keys.delete(key);
        const left = (this.#perOrg.get(orgId) ?? 1) - 1;
        if (left > 0) this.#perOrg.set(orgId, left);
        else this.#perOrg.delete(orgId);
      }
    });
  }

  readonly #keys = new Set<string>();

  override async start(): Promise<void> {
    const startedAt = Date.now();
    await super.start();
    this.#caughtUpFrom = startedAt;
  }

  get(orgId: string, ticketId: string): HeldTicket | undefined {
    return this.table.get(ticketLinkKey(orgId, ticketId));
  }

  values(): IterableIterator<HeldTicket> {
    return this.table.values();
  }

  /** Tickets holding events now. */
  get size(): number {
    return this.#keys.size;
  }

  /** Whether any event of the organisation waits for a ticket link. */
  isWaiting(orgId: string): boolean {
    return this.#perOrg.has(orgId);
  }

  /** Organisations with held events. */
  waitingOrgs(): IterableIterator<string> {
    return this.#perOrg.keys();
  }

  /**
   * The ticket's held record, from a view that holds every record written before `since` (the
   * last time this replica was given partitions): another replica's held record for a ticket
   * this one just took over is not missed, and a newer change applied directly is not undone by
   * an older one released later. Not caught up in time: tried again later.
   */
  async current(orgId: string, ticketId: string, since: number): Promise<HeldTicket | undefined> {
    if (this.#caughtUpFrom < since) {
      const startedAt = Date.now();
      await catchUpOrRetryLater(() => this.table.catchUp(), 'held ticket events');
      this.#caughtUpFrom = Math.max(this.#caughtUpFrom, startedAt);
    }
    return this.get(orgId, ticketId);
  }

  /** Durable (acks=all) before it returns, and visible here at once. */
  async write(writer: Pick<RecordWriter, 'write'>, ticket: HeldTicket): Promise<void> {
    const key = ticketLinkKey(ticket.orgId, ticket.ticketId);
    await this.writeThrough(writer, [{ key, value: ticket }], `held events of ${key}`);
  }

  /** Nothing of the ticket is kept any more (its hold dropped, or its clocks old): a tombstone. */
  async clear(writer: Pick<RecordWriter, 'write'>, orgId: string, ticketId: string): Promise<void> {
    const key = ticketLinkKey(orgId, ticketId);
    await this.writeThrough(writer, [{ key, value: undefined }], `held events of ${key} (cleared)`);
  }
}
