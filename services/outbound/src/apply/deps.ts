import type { SkipReason, HeldOutcome } from '../../../../lib/contracts/index.ts';
import type { AiReply } from '../../../../lib/domain-events.ts';
import type { HeldEvent, HeldTicket, HoldableEvent } from '../../../../lib/held-ticket-events.ts';
import type { HubSpotApi } from '../../../../lib/hubspot/index.ts';
import type { Logger } from '../../../../lib/log.ts';
import type { Org } from '../../../../lib/orgs/index.ts';
import type { SessionLink } from '../../../../lib/session-links.ts';
import type { OpenCxApi } from '../opencx/client.ts';

/** What applying one event did; handle-domain-event.ts turns it into the consumer's outcome. */
export type ApplyOutcome =
  | { readonly kind: 'applied' }
  /** A ticket or note event whose ticket has no session link yet: held (held-ticket-events.ts). */
  | { readonly kind: 'held' }
  | { readonly kind: 'skipped'; readonly reason: SkipReason }
  /** The event itself is wrong (no retry fixes it): dead-lettered as malformed_event. */
  | { readonly kind: 'malformed'; readonly detail: string };
export const applied: ApplyOutcome = { kind: 'applied' };
export const held: ApplyOutcome = { kind: 'held' };
export const skipped = (reason: SkipReason): ApplyOutcome => ({ kind: 'skipped', reason });
export const malformed = (detail: string): ApplyOutcome => ({ kind: 'malformed', detail });

export type ApplyDeps = {
  readonly orgs: { byId: (orgId: string) => Org | undefined };
  readonly links: {
    forThread: (orgId: string, threadId: string) => SessionLink | undefined;
    forTicket: (orgId: string, ticketId: string) => SessionLink | undefined;
    write: (links: readonly { key: string; link: SessionLink }[]) => Promise<void>;
    /** Waits until the links hold everything on their topic now; true when caught up. */
    catchUp?: () => Promise<boolean>;
  };
  readonly openCxFor: (org: Org) => OpenCxApi;
  readonly hubspotFor: (org: Org) => HubSpotApi;
  /**
   * Ticket look-ups made off the customer's path, when the portal's budget has room
   * (owed-ticket-look-ups.ts). `force` owes again a thread settled lately.
   */
  readonly owedTicketLookUps: {
    readonly owe: (orgId: string, threadId: string, options?: { force?: boolean }) => Promise<void>;
    /** The thread was looked up: owing it again is a no-op for a while. */
    readonly settle: (entry: { orgId: string; threadId: string }) => Promise<void>;
  };
  /** Ticket and note events waiting for their ticket's link (lib/held-ticket-events.ts). */
  readonly held: HeldTicketDeps;
  readonly emitAiReply: (reply: AiReply) => Promise<void>;
  /** Counts the sessions this replica created at OpenCX (outbound_sessions_created_total). */
  readonly sessionsCreated: { readonly inc: () => void };
  /** Retries retriable failures of one call with backoff; throws once the budget is spent. */
  readonly retry: <T>(target: 'opencx' | 'hubspot', work: () => Promise<T>) => Promise<T>;
  readonly logger: Logger;
  readonly now: () => number;
};

export type HeldTicketDeps = {
  /** The ticket's held record, from a view caught up since this replica got its partitions. */
  readonly current: (orgId: string, ticketId: string) => Promise<HeldTicket | undefined>;
  /** Durable before it returns. */
  readonly write: (ticket: HeldTicket) => Promise<void>;
  readonly clear: (orgId: string, ticketId: string) => Promise<void>;
  /** Writes a held event back to the domain topic on its own (durable before it returns). */
  readonly requeue: (event: HoldableEvent) => Promise<void>;
  /** How long a ticket's events are held for a link that does not come (TICKET_HOLD_MS). */
  readonly holdMs: number;
  /** How long a ticket's applied clocks are kept after its last change (DEDUP_TTL_MS). */
  readonly clockTtlMs: number;
  /** An event of the organisation now waits for a ticket link: its look-ups are owed (best effort). */
  readonly linkAwaited: (orgId: string) => void;
  readonly counted: (outcome: HeldOutcome, events: readonly HeldEvent[] | readonly HoldableEvent[]) => void;
};
