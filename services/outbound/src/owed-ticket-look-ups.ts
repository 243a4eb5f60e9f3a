import { ErrorCode, PipelineError, describeError } from '../../../lib/errors.ts';
import type { HubSpotApi } from '../../../lib/hubspot/index.ts';
import type { Logger } from '../../../lib/log.ts';
import type { Org } from '../../../lib/orgs/index.ts';
import { defineScript, type Redis } from '../../../lib/redis.ts';
import { ticketLinkKey, type SessionLink } from '../../../lib/session-links.ts';

/**
 * Ticket look-ups owed to new sessions, kept in Redis so that every replica can make them and a
 * crash forgets none. A new conversation's first message goes to OpenCX after ONE HubSpot call
 * (its re-fetch); the look-up `GET …/threads/{id}?association=TICKET` that tells which ticket
 * the thread has is owed instead, and made when the portal's budget has room (bookkeeping class:
 * never the customers' reserve, never while a customer call waits).
 *
 * A sorted set: member = [orgId, threadId], score = when it is due (Redis clock). Taking an entry
 * moves it `LEASE_MS` ahead, so a replica that dies mid look-up leaves it to be taken again. A
 * settled thread is remembered for `SETTLED_TTL_MS`, so owing it again (every customer message
 * of a ticketless thread does, in case the first owe was lost) is a no-op for that long.
 *
 * A replica also remembers, for `OWED_MEMO_MS`, the threads it owed with success: a look-up that
 * Redis holds (owed, or settled for the next hour) is not owed again from here meanwhile, so a
 * ticketless conversation does not cost a script call per customer message. The memo is
 * forgotten whenever the connection to Redis closes (a restart that lost the owes).
 *
 * Redis may lose the owes at any moment (a restart without persistence, a FLUSHALL, an
 * eviction). What depends on them does not rely on Redis: ticket and note events wait in the log
 * (held-ticket-events), and while they wait, the look-ups of their organisation's recent
 * ticketless sessions (from the session-links table, also the log) are owed again past the memo
 * (held-ticket-checks.ts). A lost owe that nothing waits on changes no outcome.
 */
const OWE = `
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return redis.call('ZADD', KEYS[1], 'NX', now + tonumber(ARGV[2]), ARGV[1])
`;
const TAKE_DUE = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
for _, member in ipairs(due) do
  redis.call('ZADD', KEYS[1], 'XX', now + tonumber(ARGV[2]), member)
end
return due
`;
const LATER = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return redis.call('ZADD', KEYS[1], 'XX', now + tonumber(ARGV[2]), ARGV[1])
`;

const LEASE_MS = 30_000;
const OWED_MEMO_MS = 5 * 60 * 1000;
/** Threads remembered at most (the oldest forgotten first): bounded memory on a busy replica. */
const OWED_MEMO_MAX = 100_000;
const SETTLED_TTL_MS = 60 * 60 * 1000;
/** HubSpot failures (not budget deferrals) before a look-up is given up; later rep replies look again. */
const MAX_FAILURES = 6;
/**
 * Tries while this replica has not read the thread's session link yet. The link was written to
 * the session-links topic before the look-up was owed, so it arrives: a replica's copy of the
 * table lags seconds behind at a broker loss or a restart. Backing off to LINK_WAIT_MAX_MS, these
 * tries span about four minutes before the look-up is given up (logged and counted).
 */
const MAX_LINK_WAITS = 12;
const LINK_WAIT_MAX_MS = 30_000;
/** Delay before the next try of a look-up whose link was not read yet, after `waits` tries. */
export const linkWaitDelayMs = (waits: number): number =>
  Math.min(LINK_WAIT_MAX_MS, 1000 * 2 ** Math.max(0, waits - 1));

export type OwedLookUp = { readonly orgId: string; readonly threadId: string };

export type OwedTicketLookUps = {
  /**
   * Owes a look-up for the thread, due now, unless one is owed or it was settled lately (`force`:
   * even then). `checkRedis`: asks Redis even when this replica owed it lately (Redis may have
   * lost it since).
   */
  readonly owe: (
    orgId: string,
    threadId: string,
    options?: { force?: boolean; checkRedis?: boolean },
  ) => Promise<void>;
  /** Takes up to `limit` due look-ups for this replica (leased). */
  readonly takeDue: (limit: number) => Promise<OwedLookUp[]>;
  readonly later: (entry: OwedLookUp, afterMs: number) => Promise<void>;
  /**
   * Counts a try of the entry that failed (`hubspot`: the look-up failed; `link`: the thread's
   * session link was not read yet), each kind on its own; resolves with that kind's count.
   */
  readonly failed: (entry: OwedLookUp, kind: 'hubspot' | 'link') => Promise<number>;
  readonly settle: (entry: OwedLookUp) => Promise<void>;
};

/**
 * The queue, its failure counts and the settled marks: OWE reads a settled mark and writes the
 * queue, `settle` writes all three in one MULTI, so on a Cluster they share one hash tag. The
 * queue is one key anyway (every replica takes from it), so its family lives on one node; the
 * load is bookkeeping (a few commands per new ticketless conversation), not per event.
 */
export const owedTicketLookUpKeys = (prefix: string) => ({
  queue: `${prefix}{ticket-lookups}:owed`,
  failures: `${prefix}{ticket-lookups}:failures`,
  settled: (orgId: string, threadId: string) => `${prefix}{ticket-lookups}:settled:${orgId}:${threadId}`,
});

export const createRedisOwedTicketLookUps = (redis: Redis, prefix: string): OwedTicketLookUps => {
  const keys = owedTicketLookUpKeys(prefix);
  const { queue, failures } = keys;
  const settledKey = ({ orgId, threadId }: OwedLookUp) => keys.settled(orgId, threadId);
  const member = ({ orgId, threadId }: OwedLookUp) => JSON.stringify([orgId, threadId]);
  const oweScript = defineScript(redis, OWE, 2);
  const takeDueScript = defineScript(redis, TAKE_DUE, 1);
  const laterScript = defineScript(redis, LATER, 1);
  /** Thread → until when an owe of it is known to be held by Redis (insertion order: oldest first). */
  const owedMemo = new Map<string, number>();
  redis.on('close', () => owedMemo.clear());
  return {
    owe: async (orgId, threadId, { force = false, checkRedis = false } = {}) => {
      const entry = { orgId, threadId };
      const memoKey = `${orgId}\u0000${threadId}`;
      if (!force && !checkRedis && (owedMemo.get(memoKey) ?? 0) > Date.now()) return;
      owedMemo.delete(memoKey);
      if (force) await redis.del(settledKey(entry));
      await oweScript([queue, settledKey(entry)], [member(entry), 0]);
      owedMemo.set(memoKey, Date.now() + OWED_MEMO_MS);
      if (owedMemo.size > OWED_MEMO_MAX) owedMemo.delete(owedMemo.keys().next().value ?? '');
    },
    takeDue: async (limit) => {
      const due = (await takeDueScript([queue], [limit, LEASE_MS])) as string[];
      return due.map((raw) => {
        const [orgId = '', threadId = ''] = JSON.parse(raw) as string[];
        return { orgId, threadId };
      });
    },
    later: async (entry, afterMs) => {
      await laterScript([queue], [member(entry), Math.max(1, Math.round(afterMs))]);
    },
    failed: async (entry, kind) =>
      redis.hincrby(failures, kind === 'hubspot' ? member(entry) : `${member(entry)}:link`, 1),
    settle: async (entry) => {
      await redis
        .multi()
        .zrem(queue, member(entry))
        .hdel(failures, member(entry), `${member(entry)}:link`)
        .set(settledKey(entry), '1', 'PX', SETTLED_TTL_MS)
        .exec();
    },
  };
};

/**
 * How far back sessions whose ticket is unknown owe their look-up again while ticket events wait
 * (held-ticket-checks.ts): as long as a settled look-up is remembered.
 */
export const REOWE_WINDOW_MS = SETTLED_TTL_MS;

export const TicketLookUpOutcome = {
  found: 'found',
  none: 'none',
  deferred: 'deferred',
  /** This replica has not read the thread's session link yet: tried again later. */
  waitingForLink: 'waiting_for_link',
  failed: 'failed',
  givenUp: 'given_up',
} as const;
export type TicketLookUpOutcome = (typeof TicketLookUpOutcome)[keyof typeof TicketLookUpOutcome];

export type SettleDeps = {
  readonly owed: OwedTicketLookUps;
  readonly orgs: { byId: (orgId: string) => Org | undefined };
  readonly links: {
    forThread: (orgId: string, threadId: string) => SessionLink | undefined;
    write: (links: readonly { key: string; link: SessionLink }[]) => Promise<void>;
  };
  readonly hubspotFor: (org: Org) => HubSpotApi;
  /** Whether ticket or note events of the organisation wait for a link: its look-ups are then awaited. */
  readonly awaited?: (orgId: string) => boolean;
  readonly logger: Logger;
  readonly now: () => number;
  readonly counted?: (outcome: TicketLookUpOutcome) => void;
};

/**
 * Makes one owed look-up. A ticket found is written under the TICKET key only: this runs outside
 * the conversation's queue (on any replica, from its possibly older copy of the link), so
 * writing the thread key could undo a handoff written meanwhile. Ticket events and notes read
 * the ticket key; the thread key learns the ticket at the next handoff or rep reply (their own
 * look-up, in the queue).
 */
const settleOne = async (deps: SettleDeps, entry: OwedLookUp): Promise<void> => {
  const count = deps.counted ?? (() => undefined);
  const org = deps.orgs.byId(entry.orgId);
  const link = deps.links.forThread(entry.orgId, entry.threadId);
  if (!org || link?.ticketId) {
    await deps.owed.settle(entry);
    return;
  }
  if (!link) {
    // Written by another replica and not read here yet.
    const waits = await deps.owed.failed(entry, 'link');
    if (waits < MAX_LINK_WAITS) {
      count(TicketLookUpOutcome.waitingForLink);
      await deps.owed.later(entry, linkWaitDelayMs(waits));
      return;
    }
    count(TicketLookUpOutcome.givenUp);
    deps.logger.warn(
      { orgId: entry.orgId, threadId: entry.threadId, tries: waits },
      "ticket association not looked up: the thread's session link was never read here; ticket events wait for the next handoff or rep reply",
    );
    await deps.owed.settle(entry);
    return;
  }
  try {
    const thread = await deps
      .hubspotFor(org)
      .getThread(entry.threadId, { awaited: deps.awaited?.(entry.orgId) ?? false });
    const ticketId = thread.threadAssociations?.associatedTicketId ?? null;
    if (ticketId !== null) {
      const ticketLink = { ...link, ticketId, updatedAt: deps.now() };
      await deps.links.write([{ key: ticketLinkKey(entry.orgId, ticketId), link: ticketLink }]);
      deps.logger.info(
        { orgId: entry.orgId, threadId: entry.threadId, sessionId: link.sessionId, ticketId },
        'ticket linked to session',
      );
    }
    count(ticketId === null ? TicketLookUpOutcome.none : TicketLookUpOutcome.found);
    await deps.owed.settle(entry);
  } catch (error) {
    if (
      error instanceof PipelineError &&
      (error.code === ErrorCode.upstreamRateLimited || error.code === ErrorCode.tenantWaiting)
    ) {
      // The portal has no room for bookkeeping now (HubSpot said 429, or the organisation is
      // waited for): later, not lost.
      count(TicketLookUpOutcome.deferred);
      await deps.owed.later(entry, error.retryAfterMs ?? 1000);
      return;
    }
    // What is not ours to classify is tried again too (counted, so a bug still ends): the call's
    // slot is taken in Redis, and a Redis restart or failover fails it with ioredis's own errors.
    // Given up on one of those, the look-up would be settled for good, and its ticket's held
    // events never released.
    const retriable = !(error instanceof PipelineError) || error.retriable;
    if (!retriable || (await deps.owed.failed(entry, 'hubspot')) >= MAX_FAILURES) {
      count(TicketLookUpOutcome.givenUp);
      deps.logger.warn(
        { orgId: entry.orgId, threadId: entry.threadId, err: describeError(error) },
        'ticket association not looked up; ticket events wait for the next handoff or rep reply',
      );
      await deps.owed.settle(entry);
      return;
    }
    count(TicketLookUpOutcome.failed);
    await deps.owed.later(entry, 2000 + Math.random() * 3000);
  }
};

/** One round: takes what is due and looks each up (concurrently: they are independent). */
export const settleOwedTicketLookUps = async (deps: SettleDeps, limit = 20): Promise<number> => {
  const due = await deps.owed.takeDue(limit);
  await Promise.all(due.map((entry) => settleOne(deps, entry)));
  return due.length;
};

/**
 * Rounds every `everyMs` until stopped. Redis trouble is logged once per change (the dependency
 * watch says the rest) and the next round tries again.
 */
export const startOwedTicketLookUps = (deps: SettleDeps, everyMs = 250): { stop: () => Promise<void> } => {
  let stopped = false;
  let failing = false;
  let wake: (() => void) | undefined;
  const loop = (async () => {
    while (!stopped) {
      try {
        const taken = await settleOwedTicketLookUps(deps);
        if (failing) deps.logger.info('owed ticket look-ups taken again');
        failing = false;
        if (taken > 0) continue;
      } catch (error) {
        if (!failing)
          deps.logger.warn({ err: describeError(error) }, 'owed ticket look-ups not taken; trying again');
        failing = true;
      }
      await new Promise<void>((resolve) => {
        wake = resolve;
        setTimeout(resolve, everyMs).unref();
      });
    }
  })();
  return {
    stop: async () => {
      stopped = true;
      wake?.();
      await loop;
    },
  };
};
