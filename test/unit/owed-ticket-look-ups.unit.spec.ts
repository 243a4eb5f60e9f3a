import assert from 'node:assert/strict';
import { PipelineError, ErrorCode } from '../../lib/errors.ts';
import type { HubSpotApi } from '../../lib/hubspot/index.ts';
import { createLogger } from '../../lib/log.ts';
import type { Org } from '../../lib/orgs/index.ts';
import { ticketLinkKey, type SessionLink } from '../../lib/session-links.ts';
import {
  linkWaitDelayMs,
  settleOwedTicketLookUps,
  type OwedLookUp,
  type OwedTicketLookUps,
  type SettleDeps,
  type TicketLookUpOutcome,
} from '../../services/outbound/src/owed-ticket-look-ups.ts';

/**
 * What one replica does with an owed ticket look-up (services/outbound/src/owed-ticket-look-ups.ts),
 * against a queue in memory (the Redis queue itself is tested in redis-adapters.int.spec.ts):
 * a replica whose copy of the session links lags waits for the link instead of giving the
 * look-up up after a few seconds, and the two kinds of failed tries are counted apart.
 */
const ENTRY: OwedLookUp = { orgId: 'org-1', threadId: 'thread-1' };
const LINK = { sessionId: 'session-1', ticketId: null, updatedAt: 1 } as unknown as SessionLink;

const memoryQueue = () => {
  const failures = new Map<string, number>();
  let owed = true;
  const state = { settled: 0, delays: [] as number[] };
  const queue: OwedTicketLookUps = {
    owe: async () => {
      owed = true;
    },
    takeDue: async () => (owed ? [ENTRY] : []),
    later: async (_entry, afterMs) => {
      state.delays.push(afterMs);
    },
    failed: async (_entry, kind) => {
      failures.set(kind, (failures.get(kind) ?? 0) + 1);
      return failures.get(kind) ?? 0;
    },
    settle: async () => {
      owed = false;
      failures.clear();
      state.settled += 1;
    },
  };
  return { queue, state, isOwed: () => owed };
};

const harness = (options: {
  /** The try (1-based) from which this replica has read the thread's link; never when undefined. */
  linkReadFrom?: number;
  /** How many times getThread fails (retriable) before it answers. */
  hubspotFailures?: number;
  /** What getThread throws when it fails (a retriable HubSpot 503 unless given). */
  failure?: () => Error;
}) => {
  const { queue, state, isOwed } = memoryQueue();
  const outcomes: TicketLookUpOutcome[] = [];
  const warnings: string[] = [];
  const written: string[] = [];
  let tries = 0;
  let hubspotCalls = 0;
  const logger = createLogger('test', 'silent');
  const deps: SettleDeps = {
    owed: queue,
    orgs: { byId: () => ({ id: 'org-1' }) as unknown as Org },
    links: {
      forThread: () =>
        options.linkReadFrom !== undefined && tries >= options.linkReadFrom ? LINK : undefined,
      write: async (links) => {
        written.push(...links.map(({ key }) => key));
      },
    },
    hubspotFor: () =>
      ({
        getThread: async () => {
          hubspotCalls += 1;
          if (hubspotCalls <= (options.hubspotFailures ?? 0))
            throw (
              options.failure?.() ??
              new PipelineError(ErrorCode.upstreamUnavailable, 'HubSpot answered 503', {
                retriable: true,
                upstream: 'hubspot',
              })
            );
          return { threadAssociations: { associatedTicketId: 'ticket-9' } };
        },
      }) as unknown as HubSpotApi,
    logger: Object.assign(Object.create(logger) as typeof logger, {
      warn: (_fields: unknown, message: string) => warnings.push(message),
    }),
    now: () => 1000,
    counted: (outcome) => outcomes.push(outcome),
  };
  const run = async (rounds: number): Promise<void> => {
    for (let round = 0; round < rounds && isOwed(); round++) {
      tries += 1;
      await settleOwedTicketLookUps(deps);
    }
  };
  return { run, state, outcomes, warnings, written, hubspotCalls: () => hubspotCalls };
};

describe('owed ticket look-ups: one replica settling them (services/outbound/src/owed-ticket-look-ups.ts)', () => {
  it('given a replica that reads the thread’s session link only at its 9th try, then it waits for it (backing off) and then looks the ticket up', async () => {
    const replica = harness({ linkReadFrom: 9 });
    await replica.run(20);
    assert.deepEqual(replica.state.delays, [1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
    assert.deepEqual(replica.written, [ticketLinkKey('org-1', 'ticket-9')]);
    assert.equal(replica.hubspotCalls(), 1);
    assert.deepEqual(replica.outcomes.slice(-1), ['found']);
    assert.ok(!replica.outcomes.includes('given_up'));
  });

  it('given a link this replica never reads, then the look-up is given up after about four minutes of tries, logged and counted', async () => {
    const replica = harness({});
    await replica.run(50);
    const waited = replica.state.delays.reduce((sum, delay) => sum + delay, 0);
    assert.equal(replica.state.delays.length, 11);
    assert.ok(waited >= 3 * 60_000 && waited <= 5 * 60_000, `waited ${waited} ms`);
    assert.equal(replica.state.settled, 1);
    assert.deepEqual(replica.outcomes.slice(-1), ['given_up']);
    assert.equal(replica.warnings.length, 1);
    assert.match(replica.warnings[0] ?? '', /session link was never read here/);
    assert.equal(replica.hubspotCalls(), 0);
  });

  it('given tries spent waiting for the link, when HubSpot then fails, then the look-up still gets its own six HubSpot tries', async () => {
    const replica = harness({ linkReadFrom: 5, hubspotFailures: 5 });
    await replica.run(30);
    assert.equal(replica.hubspotCalls(), 6, 'five failures, then the answer');
    assert.deepEqual(replica.outcomes.slice(-1), ['found']);
    assert.equal(replica.written.length, 1);
  });

  it("given Redis failing under the look-up's rate limiter (a restart: ioredis's own error), then the look-up is tried again later, not settled for good", async () => {
    const redisDown = (): Error =>
      Object.assign(new Error('Reached the max retries per request limit (which is 3).'), {
        name: 'MaxRetriesPerRequestError',
      });
    const replica = harness({ linkReadFrom: 1, hubspotFailures: 2, failure: redisDown });
    await replica.run(10);
    assert.equal(replica.hubspotCalls(), 3, 'two failures, then the answer');
    assert.deepEqual(replica.outcomes, ['failed', 'failed', 'found']);
    assert.deepEqual(replica.written, [ticketLinkKey('org-1', 'ticket-9')]);
  });

  it('given an error nobody classified on every try, then it is still given up after six tries (counted, logged)', async () => {
    const replica = harness({ linkReadFrom: 1, hubspotFailures: 100, failure: () => new TypeError('a bug') });
    await replica.run(20);
    assert.equal(replica.hubspotCalls(), 6);
    assert.deepEqual(replica.outcomes.slice(-1), ['given_up']);
    assert.equal(replica.written.length, 0);
  });

  it('given the tries counted, then the delay doubles from 1 s and stays at 30 s', () => {
    assert.deepEqual([1, 2, 3, 5, 6, 12].map(linkWaitDelayMs), [1000, 2000, 4000, 16000, 30000, 30000]);
  });
});
