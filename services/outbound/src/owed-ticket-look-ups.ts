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
 * Redis holds (owed, or settled for the next hour) is not owed again from here meanwhile. Without
 * it every customer message of a ticketless conversation cost a script call (issue 10: 9 of 10
 * messages in the outbound bench). Redis can lose its data only by restarting (or a flush): the
 * memo is forgotten whenever the connection to Redis closes, so the next message of such a
 * thread owes its look-up again (a soak run lost a ticket change to a memo that outlived a Redis
 * restart: the owe was gone, and no later message made it again).
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
  /** Counts a failure; true once the entry is to be given up. */
  readonly failed: (entry: OwedLookUp) => Promise<boolean>;
  readonly settle: (entry: OwedLookUp) => Promise<void>;
  /** Forgets which owes this replica knows Redis holds (after Redis lost its data). */
  readonly forgetMemo: () => void;
};

export const createRedisOwedTicketLookUps = (redis: Redis, prefix: string): OwedTicketLookUps => {
  const queue = `${prefix}ticket-lookups:owed`;
  const failures = `${prefix}ticket-lookups:failures`;
  const settledKey = ({ orgId, threadId }: OwedLookUp) =>
    `${prefix}ticket-lookups:settled:${orgId}:${threadId}`;
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
    failed: async (entry) => (await redis.hincrby(failures, member(entry), 1)) >= MAX_FAILURES,
    settle: async (entry) => {
      await redis
        .multi()
        .zrem(queue, member(entry))
        .hdel(failures, member(entry))
        .set(settledKey(entry), '1', 'PX', SETTLED_TTL_MS)
        .exec();
    },
    forgetMemo: () => owedMemo.clear(),
  };
};

/** How far back sessions whose ticket is unknown owe their look-up again after a Redis loss (as long as a settled look-up is remembered). */
export const REOWE_WINDOW_MS = SETTLED_TTL_MS;

/** How often each replica asks whether Redis lost its data without a reconnect (a flush). */
export const MEMORY_CHECK_MS = 30_000;

/**
 * Owed look-ups live only in Redis. When Redis has lost its data, every session of the last
 * hour whose ticket no link names owes its look-up again: a no-op for those Redis still holds or
 * settled. Without it, a thread whose owe was lost kept no ticket link unless another message of
 * it came, and its ticket's changes and notes were skipped (soak run 17 lost a note and a ticket
 * change this way).
 *
 * A loss shows as a new time from which Redis remembers (redis-memory.ts). It is read at start,
 * whenever the connection comes back (a restart), and every `checkEveryMs` (a FLUSHALL or an
 * eviction, with no reconnect). A reconnect to a Redis that kept its data owes nothing again; a
 * reconnect before the first read succeeded owes again, as the safe side. Returns a stop.
 */
export const oweAgainWhenRedisForgets = (deps: {
  readonly redis: Redis;
  readonly owed: Pick<OwedTicketLookUps, 'owe' | 'forgetMemo'>;
  readonly memorySince: () => Promise<number>;
  readonly ticketlessThreadsSince: (since: number) => readonly OwedLookUp[];
  readonly logger: Logger;
  readonly now: () => number;
  readonly checkEveryMs?: number;
}): (() => void) => {
  let known: number | undefined;
  let reconnecting = false;
  let running: Promise<void> | undefined;

  const oweAgain = async (why: string): Promise<void> => {
    deps.owed.forgetMemo();
    const threads = deps.ticketlessThreadsSince(deps.now() - REOWE_WINDOW_MS);
    for (let index = 0; index < threads.length; index += 100)
      await Promise.all(
        threads.slice(index, index + 100).map(({ orgId, threadId }) => deps.owed.owe(orgId, threadId)),
      );
    deps.logger.info(
      { threads: threads.length, why },
      'Redis lost its data: recent sessions without a known ticket owe their look-up again',
    );
  };

  const check = (afterReconnect: boolean): Promise<void> => {
    // One read at a time; a reconnect during a read is checked again after it.
    if (running) return running.then(() => check(afterReconnect));
    running = (async () => {
      const previous = known;
      const since = await deps.memorySince();
      if (previous !== undefined && since !== previous)
        await oweAgain(
          `Redis remembers from ${new Date(since).toISOString()}, no longer from ${new Date(previous).toISOString()}`,
        );
      else if (previous === undefined && afterReconnect)
        await oweAgain('Redis came back before this replica knew what it remembered');
      // Only once the owes are made: should they fail, the next check makes them again.
      known = since;
    })()
      .catch((error: unknown) =>
        deps.logger.warn(
          { err: describeError(error) },
          "could not tell whether Redis lost its data; asking again later (a thread's next customer message owes its look-up meanwhile)",
        ),
      )
      .finally(() => {
        running = undefined;
      });
    return running;
  };

  deps.redis.on('close', () => {
    reconnecting = true;
  });
  deps.redis.on('ready', () => {
    if (!reconnecting) return;
    reconnecting = false;
    void check(true);
  });
  void check(false);
  const timer = setInterval(() => void check(false), deps.checkEveryMs ?? MEMORY_CHECK_MS);
  timer.unref();
  return () => clearInterval(timer);
};

export const TicketLookUpOutcome = {
  found: 'found',
  none: 'none',
  deferred: 'deferred',
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
    // Written by another replica and not read here yet (or never: counted as a failure).
    if (await deps.owed.failed(entry)) await deps.owed.settle(entry);
    else await deps.owed.later(entry, 1000);
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
    const retriable = error instanceof PipelineError && error.retriable;
    if (!retriable || (await deps.owed.failed(entry))) {
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
