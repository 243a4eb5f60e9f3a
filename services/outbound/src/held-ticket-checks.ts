import { describeError } from '../../../lib/errors.ts';
import { isHolding, type HeldTicket } from '../../../lib/held-ticket-events.ts';
import type { Logger } from '../../../lib/log.ts';
import { ticketLinkKey } from '../../../lib/session-links.ts';

/** How often every held ticket is looked at: linked since, or its hold over. */
export const HELD_SWEEP_MS = 1000;
/**
 * A ticket is not checked again sooner than this while its check is on its way; each further
 * check of a ticket that still holds events waits twice as long (its queue may be parked behind
 * an OpenCX outage), up to RECHECK_MAX_MS.
 */
export const RECHECK_MS = 5000;
export const RECHECK_MAX_MS = 5 * 60 * 1000;
/** How often the look-ups that held events wait on are owed again (they live in Redis only). */
export const REOWE_EVERY_MS = 15_000;

export type HeldTicketChecksDeps = {
  readonly held: {
    readonly get: (orgId: string, ticketId: string) => HeldTicket | undefined;
    readonly values: () => Iterable<HeldTicket>;
    readonly waitingOrgs: () => Iterable<string>;
  };
  readonly isLinked: (orgId: string, ticketId: string) => boolean;
  /** Writes a ticket-hold-check to the domain topic under the ticket's key (its own queue). */
  readonly publishCheck: (ticket: HeldTicket) => Promise<void>;
  /**
   * Owes again the ticket look-ups of these organisations' recent sessions whose ticket is not
   * known (a no-op where Redis still holds or settled them).
   */
  readonly oweAgain: (orgIds: ReadonlySet<string>) => Promise<void>;
  readonly holdMs: number;
  /** A record that holds nothing keeps its applied clocks this long after its last change. */
  readonly clockTtlMs: number;
  readonly now: () => number;
  readonly logger: Logger;
  readonly sweepEveryMs?: number;
};

/**
 * Sends a held ticket back through its own queue when something changed for it: its link is
 * known now (whoever learned it: an owed look-up, a handoff, a rep reply, another replica), or
 * its hold has ended; and a record that holds nothing once its clocks are old enough to go. The check itself decides in the queue, in order with the ticket's other
 * events; this only says when to look. Every replica sweeps every held ticket (the table is read
 * whole), so a crash or a rebalance leaves no held ticket unlooked-at; a check that finds
 * nothing to do is a no-op.
 *
 * It also keeps owed the look-ups that held events wait on. They live only in Redis, which can
 * lose them; the sessions whose ticket is not known and the organisations that wait are both in
 * the log (the session-links and held-ticket-events tables), so they are owed again from there.
 */
export const startHeldTicketChecks = (
  deps: HeldTicketChecksDeps,
): {
  readonly linked: (orgId: string, ticketId: string) => void;
  readonly awaited: (orgId: string) => void;
  readonly stop: () => void;
} => {
  /** Per held ticket: when it was last checked, and how long until it may be again. */
  const checkedAt = new Map<string, { at: number; everyMs: number }>();
  const reowedAt = new Map<string, number>();
  let failing = false;

  const check = (ticket: HeldTicket): void => {
    const key = ticketLinkKey(ticket.orgId, ticket.ticketId);
    const now = deps.now();
    const last = checkedAt.get(key);
    if (last && last.at + last.everyMs > now) return;
    checkedAt.set(key, {
      at: now,
      everyMs: last ? Math.min(RECHECK_MAX_MS, last.everyMs * 2) : RECHECK_MS,
    });
    deps.publishCheck(ticket).then(
      () => {
        if (failing) deps.logger.info('held ticket checks written again');
        failing = false;
      },
      (error: unknown) => {
        // Looked at again at the next sweep after RECHECK_MS.
        if (!failing)
          deps.logger.warn({ err: describeError(error) }, 'held ticket check not written; trying again');
        failing = true;
      },
    );
  };

  const oweAgain = (orgIds: Set<string>): void => {
    if (orgIds.size === 0) return;
    deps.oweAgain(orgIds).catch((error: unknown) => {
      for (const orgId of orgIds) reowedAt.delete(orgId);
      deps.logger.warn(
        { err: describeError(error), orgs: [...orgIds] },
        'ticket look-ups that held events wait on not owed again; trying again at the next sweep',
      );
    });
  };

  const sweep = (): void => {
    const now = deps.now();
    const held = new Set<string>();
    for (const ticket of deps.held.values()) {
      held.add(ticketLinkKey(ticket.orgId, ticket.ticketId));
      const due = isHolding(ticket)
        ? deps.isLinked(ticket.orgId, ticket.ticketId) || now - ticket.heldSince >= deps.holdMs
        : now - ticket.updatedAt >= deps.clockTtlMs;
      if (due) check(ticket);
    }
    for (const key of checkedAt.keys()) if (!held.has(key)) checkedAt.delete(key);
    const due = new Set<string>();
    for (const orgId of deps.held.waitingOrgs())
      if ((reowedAt.get(orgId) ?? -Infinity) + REOWE_EVERY_MS <= now) {
        reowedAt.set(orgId, now);
        due.add(orgId);
      }
    for (const orgId of reowedAt.keys())
      if (now - (reowedAt.get(orgId) ?? 0) > REOWE_EVERY_MS * 4) reowedAt.delete(orgId);
    oweAgain(due);
  };

  const timer = setInterval(sweep, deps.sweepEveryMs ?? HELD_SWEEP_MS);
  timer.unref();
  return {
    /** A ticket's link was just written or read here: check its held events now, if it has any. */
    linked: (orgId, ticketId) => {
      const ticket = deps.held.get(orgId, ticketId);
      if (ticket && isHolding(ticket)) check(ticket);
    },
    /** An event of the organisation was just held: its look-ups are owed again now, unless lately. */
    awaited: (orgId) => {
      const now = deps.now();
      if ((reowedAt.get(orgId) ?? -Infinity) + REOWE_EVERY_MS > now) return;
      reowedAt.set(orgId, now);
      oweAgain(new Set([orgId]));
    },
    stop: () => clearInterval(timer),
  };
};
