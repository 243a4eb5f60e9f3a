/**
 * The reconciler's pure parts (services/processor/src/reconcile/): the window a run checks,
 * which messages are gaps, the raw record a gap becomes, one run over HubSpot's pages, and when
 * the watermark moves (only after the gaps are written; never on a run that did not finish).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { RAW_WEBHOOK_EVENT_RECORD, WebhookRoute, decodeRawWebhookEvent } from '../../lib/contracts/index.ts';
import { ErrorCode, PipelineError } from '../../lib/errors.ts';
import { createPortalClients, type HubSpotMessage, type Page } from '../../lib/hubspot/index.ts';
import type { RateLimiter } from '../../lib/rate-limiter.ts';
import type { Org } from '../../lib/orgs/index.ts';
import { createLogger } from '../../lib/log.ts';
import type { ReconcileWatermark } from '../../lib/reconcile-watermarks.ts';
import {
  RECONCILE_OVERLAP_MS,
  candidatesOf,
  createReconciler,
  gapsOf,
  reconcileCallMaxWaitMs,
  reconcileOrganisation,
  reconcileTargets,
  reconcileWindow,
  reconciledRawEvent,
  type ReconcileRunDeps,
} from '../../services/processor/src/reconcile/index.ts';
import { parseWebhookEvent } from '../../services/processor/src/rules/index.ts';
import { startFakeHubSpot } from '../fakes/hubspot.ts';
import * as fixtures from '../fakes/hubspot-fixtures.ts';

const T0 = Date.parse('2026-12-07T12:00:00Z');
const iso = (ms: number) => new Date(ms).toISOString();
const ORG = { orgId: 'org-r', portalId: 4242, aiActorId: 'A-111' };
const SETTINGS = { settleMs: 60_000, lookbackMs: 3_600_000 };
/** The listed message as the HubSpot client parses it (the fake's fixture shape). */
const listed = (spec: fixtures.MessageSpec) => fixtures.message(spec) as unknown as HubSpotMessage;

describe('reconcile: the window a run checks', () => {
  it('given no watermark, when a run starts, then it looks back the lookback and stops settle before now', () => {
    assert.deepEqual(reconcileWindow(undefined, T0, SETTINGS), { from: T0 - 3_600_000, to: T0 - 60_000 });
  });

  it('given a watermark, when a run starts, then it starts an overlap before it', () => {
    const checkedThrough = T0 - 300_000;
    assert.deepEqual(reconcileWindow(checkedThrough, T0, SETTINGS), {
      from: checkedThrough - RECONCILE_OVERLAP_MS,
      to: T0 - 60_000,
    });
  });
});

describe('reconcile: which messages are gaps', () => {
  const window = { from: T0 - 600_000, to: T0 - 60_000 };
  const inside = T0 - 120_000;

  it('given messages in and out of the window, of every kind, then only those the rules act on inside it are candidates', () => {
    const customer = listed({ kind: 'customer-chat', createdAt: iso(inside) });
    const agent = listed({ kind: 'agent-reply', createdAt: iso(inside) });
    const comment = listed({ kind: 'comment', createdAt: iso(inside) });
    const tooOld = listed({ kind: 'customer-chat', createdAt: iso(window.from) });
    const tooYoung = listed({ kind: 'customer-chat', createdAt: iso(window.to + 1) });
    const atTheEnd = listed({ kind: 'customer-chat', createdAt: iso(window.to) });
    const integration = listed({ kind: 'integration', createdAt: iso(inside) });
    const welcome = listed({ kind: 'welcome', createdAt: iso(inside) });
    const ownEcho = listed({
      kind: 'agent-reply',
      createdAt: iso(inside),
      senders: [{ actorId: ORG.aiActorId }],
      createdBy: ORG.aiActorId,
    });

    const candidates = candidatesOf(
      [customer, agent, comment, tooOld, tooYoung, atTheEnd, integration, welcome, ownEcho],
      window,
      ORG,
    );

    assert.deepEqual(
      candidates.map((message) => message.id),
      [customer.id, agent.id, comment.id, atTheEnd.id],
    );
  });

  it('given candidates the processor handled, then the others are the gaps', () => {
    const handled = listed({ kind: 'customer-chat', createdAt: iso(inside) });
    const lost = listed({ kind: 'customer-chat', createdAt: iso(inside) });
    assert.deepEqual(
      gapsOf([handled, lost], new Set([handled.id])).map((message) => message.id),
      [lost.id],
    );
  });
});

describe('reconcile: the raw record a gap becomes', () => {
  it("given a gap, when made a raw record, then it passes the processor's decoder, the Avro schema and the rules' parser as the webhook would", async () => {
    const gap = listed({ kind: 'customer-chat', threadId: '6065362089', createdAt: iso(T0) });

    const raw = reconciledRawEvent(
      gap,
      { orgId: ORG.orgId, portalId: ORG.portalId, privateApp: false },
      T0 + 5,
    );
    const { default: avro } = await import('avsc');
    const type = avro.Type.forSchema(
      JSON.parse(readFileSync('schemas/raw-webhook-event.avsc', 'utf8')) as never,
    );
    const decoded = decodeRawWebhookEvent({
      recordName: RAW_WEBHOOK_EVENT_RECORD,
      record: type.fromBuffer(type.toBuffer(raw)) as Record<string, unknown>,
    });
    const parsed = parseWebhookEvent(decoded.event);

    assert.deepEqual(
      { ...decoded, event: undefined },
      {
        receivedAt: T0 + 5,
        route: WebhookRoute.oauthApp,
        orgId: ORG.orgId,
        portalId: ORG.portalId,
        subscriptionType: 'conversation.newMessage',
        event: undefined,
      },
    );
    assert.deepEqual(JSON.parse(decoded.event), {
      portalId: ORG.portalId,
      occurredAt: T0,
      subscriptionType: 'conversation.newMessage',
      attemptNumber: 0,
      objectId: 6065362089,
      messageId: gap.id,
      messageType: 'MESSAGE',
      changeFlag: 'NEW_MESSAGE',
    });
    assert.equal(parsed.ok && parsed.event.subscriptionType, 'conversation.newMessage');
    assert.equal(
      reconciledRawEvent(gap, { orgId: ORG.orgId, portalId: ORG.portalId, privateApp: true }, T0).route,
      WebhookRoute.privateApp,
    );
  });
});

/** A HubSpot of threads (each a list of messages), paged as the client pages it, counting calls. */
const pagedHubSpot = (threads: Record<string, HubSpotMessage[]>, pageSize: number) => {
  const calls: string[] = [];
  const page = <T>(all: readonly T[], after: string | undefined): Page<T> => {
    const start = Number(after ?? '0');
    return {
      results: all.slice(start, start + pageSize),
      after: start + pageSize < all.length ? String(start + pageSize) : undefined,
    };
  };
  const newest = (messages: readonly HubSpotMessage[]) =>
    Math.max(...messages.map((message) => Date.parse(message.createdAt ?? '')));
  const hubspot: ReconcileRunDeps['hubspot'] = {
    listThreadsSince: async (since, after) => {
      calls.push(`threads since ${iso(since)} after ${after ?? '-'}`);
      const active = Object.entries(threads)
        .filter(([, messages]) => newest(messages) >= since)
        .sort(([, a], [, b]) => newest(a) - newest(b))
        .map(([id, messages]) => ({ id, latestMessageTimestamp: iso(newest(messages)) }));
      return page(active, after);
    },
    listThreadMessages: async (threadId, after) => {
      calls.push(`messages of ${threadId} after ${after ?? '-'}`);
      const messages = [...(threads[threadId] ?? [])].sort(
        (a, b) => Date.parse(b.createdAt ?? '') - Date.parse(a.createdAt ?? ''),
      );
      return page(messages, after);
    },
  };
  return { hubspot, calls };
};

describe('reconcile: one run over HubSpot pages', () => {
  it('given threads over several pages, when a run checks its window, then it reads messages only back to the window, and emits the unhandled candidates', async () => {
    const from = T0 - 600_000 - RECONCILE_OVERLAP_MS;
    const at = (offset: number, threadId: string, kind: fixtures.MessageKind = 'customer-chat') =>
      listed({ kind, threadId, createdAt: iso(from + offset) });
    const thread1 = [at(-50_000, '1'), at(-40_000, '1'), at(-30_000, '1'), at(5_000, '1'), at(10_000, '1')];
    const thread2 = [at(20_000, '2'), at(30_000, '2', 'agent-reply')];
    const thread3 = [at(40_000, '3')];
    const old = [at(-100_000, '4')];
    const { hubspot, calls } = pagedHubSpot({ '1': thread1, '2': thread2, '3': thread3, '4': old }, 2);
    const handled = new Set([thread2[0]?.id ?? '']);
    const emitted: string[][] = [];

    const result = await reconcileOrganisation(ORG, T0 - 600_000, T0, SETTINGS, {
      hubspot,
      handled: async (_orgId, ids) => new Set(ids.filter((id) => handled.has(id))),
      emit: async (gaps) => void emitted.push(gaps.map((gap) => gap.id)),
    });

    assert.deepEqual(calls, [
      `threads since ${iso(from)} after -`,
      'messages of 1 after -',
      'messages of 1 after 2',
      'messages of 2 after -',
      // The next page from the last thread's activity on (thread 2's, read already, comes again).
      `threads since ${iso(from + 30_000)} after -`,
      'messages of 3 after -',
    ]);
    // Thread 1's third page (older than the window) is never read; its gaps are emitted oldest
    // first, the order their webhooks would have come in, though its pages are newest first.
    assert.deepEqual(emitted, [[thread1[3]?.id, thread1[4]?.id, thread2[1]?.id], [thread3[0]?.id]]);
    assert.equal(result.hubspotCalls, calls.length);
    assert.equal(result.threads, 3);
    assert.equal(result.checkedThrough, T0 - 60_000);
  });
});

describe('reconcile: threads active again while the thread list is paged', () => {
  // Regression (the soak's fault kind drop, second 10-minute run: a dropped message created
  // inside a completed run's window was never written to the raw topic). HubSpot's thread list,
  // sorted by latest activity, pages by offset (its cursor is one: base64 of "525"), as the fake
  // does: a thread of a page read already that gets a message meanwhile moves to the end, every
  // later thread moves one place up, and the first of the next page was never read.
  const from = T0 - 600_000 - RECONCILE_OVERLAP_MS;
  const at = (offset: number, threadId: string) =>
    listed({ kind: 'customer-chat', threadId, createdAt: iso(from + offset) });

  it('given a thread of the first page active again before the second page is read, then every thread of the window is read and its gaps written', async () => {
    const threads: Record<string, HubSpotMessage[]> = {
      a: [at(10_000, 'a')],
      b: [at(20_000, 'b')],
      c: [at(30_000, 'c')],
      d: [at(40_000, 'd')],
    };
    const { hubspot } = pagedHubSpot(threads, 2);
    let pages = 0;
    const emitted: string[] = [];

    const result = await reconcileOrganisation(ORG, T0 - 600_000, T0, SETTINGS, {
      hubspot: {
        ...hubspot,
        listThreadsSince: async (since, after) => {
          const page = await hubspot.listThreadsSince(since, after);
          // Thread a's customer writes again (after the window's end) once the first page is out.
          if ((pages += 1) === 1) threads.a?.push(at(690_000, 'a'));
          return page;
        },
      },
      handled: async () => new Set(),
      emit: async (gaps) => void emitted.push(...gaps.map((gap) => gap.id)),
    });

    assert.deepEqual(
      [...emitted].sort(),
      [threads.a?.[0]?.id, threads.b?.[0]?.id, threads.c?.[0]?.id, threads.d?.[0]?.id].sort(),
    );
    assert.equal(result.threads, 4);
  });

  it('given more threads last active in the same millisecond than a page holds, then each is read once and the run ends', async () => {
    const threads: Record<string, HubSpotMessage[]> = Object.fromEntries(
      ['p', 'q', 'r', 's', 't'].map((id) => [id, [at(20_000, id)]]),
    );
    const { hubspot, calls } = pagedHubSpot(threads, 2);
    const emitted: string[] = [];

    const result = await reconcileOrganisation(ORG, T0 - 600_000, T0, SETTINGS, {
      hubspot,
      handled: async () => new Set(),
      emit: async (gaps) => void emitted.push(...gaps.map((gap) => gap.id)),
    });

    assert.equal(result.threads, 5);
    assert.equal(new Set(emitted).size, 5);
    assert.ok(calls.filter((call) => call.startsWith('threads')).length <= 4, calls.join('\n'));
  });
});

describe('reconcile: when the watermark moves', () => {
  const logger = createLogger('test', 'silent');
  const setup = (options: { leaseFree?: boolean; failWith?: Error; gapless?: () => boolean } = {}) => {
    const order: string[] = [];
    const stored = new Map<string, ReconcileWatermark>();
    const runs: string[] = [];
    const gapsFound: number[] = [];
    const renewals: number[] = [];
    let now = T0;
    const gap = listed({ kind: 'customer-chat', threadId: '1', createdAt: iso(T0 - 120_000) });
    const reconciler = createReconciler({
      targets: () => [ORG],
      watermarks: {
        get: (orgId) => stored.get(orgId),
        record: async (_writer, orgId, watermark) => {
          order.push('watermark');
          stored.set(orgId, watermark);
        },
        catchUp: async () => true,
      },
      writer: { write: async () => undefined },
      lease: {
        take: async () => options.leaseFree ?? true,
        renew: async () => (renewals.push(order.length), true),
        release: async () => void order.push('released'),
      },
      leaseRenewMs: 1,
      runDeps: () => ({
        hubspot: {
          listThreadsSince: async () => {
            if (options.failWith) throw options.failWith;
            return { results: [{ id: '1', latestMessageTimestamp: gap.createdAt }], after: undefined };
          },
          listThreadMessages: async () => ({ results: options.gapless?.() ? [] : [gap], after: undefined }),
        },
        handled: async () => new Set<string>(),
        emit: async () => {
          await new Promise((resolve) => setTimeout(resolve, 5));
          order.push('emitted');
        },
      }),
      metrics: {
        runs: { inc: ({ outcome }) => void runs.push(outcome) },
        gapsFound: { inc: (_labels, value) => void gapsFound.push(value) },
      },
      settings: { intervalMs: 300_000, ...SETTINGS },
      logger,
      now: () => now,
    });
    return {
      reconciler,
      order,
      stored,
      runs,
      gapsFound,
      renewals,
      gap,
      advance: (ms: number) => (now += ms),
    };
  };

  it('given a gap, when a run completes, then the watermark is written after the gap, with what the run found, and the lease let go', async () => {
    const { reconciler, order, stored, runs, gapsFound, renewals, gap } = setup();

    assert.equal(await reconciler.reconcileOne(ORG), 'completed');
    const renewedDuringTheRun = renewals.length;
    await new Promise((resolve) => setTimeout(resolve, 10));

    assert.deepEqual(order, ['emitted', 'watermark', 'released']);
    assert.deepEqual(stored.get(ORG.orgId), {
      checkedThrough: T0 - 60_000,
      lastRunAt: T0,
      gapsFound: 1,
      gapsTotal: 1,
      oldestGapAt: Date.parse(gap.createdAt ?? ''),
      runsWithGapsInARow: 1,
    });
    assert.deepEqual(runs, ['completed']);
    assert.deepEqual(gapsFound, [1]);
    assert.ok(renewedDuringTheRun > 0, 'the lease was renewed while the run lasted');
    assert.equal(renewals.length, renewedDuringTheRun, 'and no more after it');
  });

  it('given a run just completed, when asked again before an interval, then it does not run; after one it does', async () => {
    const { reconciler, runs, advance } = setup();
    await reconciler.reconcileOne(ORG);

    assert.equal(await reconciler.reconcileOne(ORG), 'not_due');
    advance(300_000);
    assert.equal(await reconciler.reconcileOne(ORG), 'completed');
    assert.deepEqual(runs, ['completed', 'completed']);
  });

  it('given no budget for bookkeeping, when a run starts, then it is deferred, the watermark stays, and it runs again later', async () => {
    const busy = new PipelineError(ErrorCode.upstreamRateLimited, 'no slot', { retriable: true });
    const { reconciler, stored, runs, order, advance } = setup({ failWith: busy });

    assert.equal(await reconciler.reconcileOne(ORG), 'deferred');
    assert.equal(stored.get(ORG.orgId), undefined);
    assert.deepEqual(order, ['released']);
    advance(30_000);
    assert.equal(await reconciler.reconcileOne(ORG), 'deferred', 'tried again, not given up');
    assert.deepEqual(runs, ['deferred', 'deferred']);
  });

  it('given gaps in two runs and none in the third, then the runs in a row with gaps count 1, 2, then 0 (the alert reads it)', async () => {
    let gapless = false;
    const { reconciler, stored, advance } = setup({ gapless: () => gapless });
    const inARow: number[] = [];
    for (const found of [true, true, false]) {
      gapless = !found;
      assert.equal(await reconciler.reconcileOne(ORG), 'completed');
      inARow.push(stored.get(ORG.orgId)?.runsWithGapsInARow ?? -1);
      advance(300_000);
    }
    assert.deepEqual(inARow, [1, 2, 0]);
    assert.equal(stored.get(ORG.orgId)?.gapsTotal, 2);
  });

  it("given an organisation's own interval, then it is due after that, not after the global one", async () => {
    const { reconciler, runs, advance } = setup();
    const often = { ...ORG, intervalMs: 60_000 };
    assert.equal(await reconciler.reconcileOne(often), 'completed');
    advance(59_000);
    assert.equal(await reconciler.reconcileOne(often), 'not_due');
    advance(1_000);
    assert.equal(await reconciler.reconcileOne(often), 'completed', 'a minute, not the global 5');
    advance(60_000);
    assert.equal(await reconciler.reconcileOne({ ...ORG, intervalMs: 600_000 }), 'not_due');
    assert.deepEqual(runs, ['completed', 'completed']);
  });

  it("given another replica's lease, when a run would start, then nothing is read or written", async () => {
    const { reconciler, order, runs } = setup({ leaseFree: false });
    assert.equal(await reconciler.reconcileOne(ORG), 'leased');
    assert.deepEqual(order, []);
    assert.deepEqual(runs, []);
  });
});

describe('reconcile: organisations side by side', () => {
  it("given one organisation's run waiting on its portal, when runs are due, then the others run meanwhile (RECONCILE_CONCURRENCY), and the tick ends once all are done", async () => {
    const orgs = ['slow', 'quick-1', 'quick-2'].map((orgId, index) => ({
      ...ORG,
      orgId,
      portalId: 100 + index,
    }));
    const stored = new Map<string, ReconcileWatermark>();
    let releaseSlow: () => void = () => undefined;
    const slowHeld = new Promise<void>((resolve) => (releaseSlow = resolve));
    const reconciler = createReconciler({
      targets: () => orgs,
      watermarks: {
        get: (orgId) => stored.get(orgId),
        record: async (_writer, orgId, watermark) => void stored.set(orgId, watermark),
        catchUp: async () => true,
      },
      writer: { write: async () => undefined },
      lease: { take: async () => true, renew: async () => true, release: async () => undefined },
      leaseRenewMs: 1_000,
      runDeps: (org) => ({
        hubspot: {
          listThreadsSince: async () => {
            if (org.orgId === 'slow') await slowHeld;
            return { results: [], after: undefined };
          },
          listThreadMessages: async () => ({ results: [], after: undefined }),
        },
        handled: async () => new Set<string>(),
        emit: async () => undefined,
      }),
      metrics: { runs: { inc: () => undefined }, gapsFound: { inc: () => undefined } },
      settings: { intervalMs: 300_000, ...SETTINGS, concurrency: 2 },
      logger: createLogger('test', 'silent'),
      now: () => T0,
    });

    let tickDone = false;
    const tick = reconciler.runDue().then(() => (tickDone = true));
    await new Promise((resolve) => setTimeout(resolve, 20));
    assert.deepEqual(
      [...stored.keys()].sort(),
      ['quick-1', 'quick-2'],
      'both quick ones ran while the slow one waited',
    );
    assert.equal(tickDone, false);
    releaseSlow();
    await tick;
    assert.deepEqual([...stored.keys()].sort(), ['quick-1', 'quick-2', 'slow']);
  });
});

describe('reconcile: which organisations', () => {
  it('given live, deleted, reconnect-required, tokenless and never-reconciled organisations, then only the live ones with a token are reconciled, each at its own interval', () => {
    const org = (orgId: string, hubspot: Partial<Org['hubspot']> = {}, reconcileIntervalMs?: number) =>
      ({
        orgId,
        hubspot: { portalId: 1, aiActorId: 'A-1', accessToken: 'pat', reconnectRequired: false, ...hubspot },
        settings: { assistMode: false, ticketingEnabled: true, reconcileIntervalMs },
      }) as unknown as Org;
    const all = [
      org('live'),
      org('deleted'),
      org('reconnect', { reconnectRequired: true }),
      org('tokenless', { accessToken: undefined }),
      org('never', {}, 0),
      org('hourly', {}, 3_600_000),
    ];
    const targets = reconcileTargets({
      all: () => all.values(),
      byId: (orgId) => (orgId === 'deleted' ? undefined : all.find((entry) => entry.orgId === orgId)),
    });

    assert.deepEqual(
      [...targets()],
      [
        { orgId: 'live', portalId: 1, aiActorId: 'A-1', intervalMs: undefined },
        { orgId: 'hourly', portalId: 1, aiActorId: 'A-1', intervalMs: 3_600_000 },
      ],
    );
  });
});

/**
 * A portal's budget as lib/rate-limiter.ts keeps it, in memory: `capacity` calls per rolling
 * `windowMs`; a call with no slot waits for the oldest to free plus the limiter's jitter (at
 * most half the wait, up to half a window: its worst case here), or fails (upstreamRateLimited)
 * at once when that is longer than what is left of its `maxWaitMs`.
 */
const rollingBudget = (capacity: number, windowMs: number): RateLimiter => {
  const taken: number[] = [];
  return {
    acquire: async (_bucket, { maxWaitMs } = {}) => {
      let waited = 0;
      for (;;) {
        const now = Date.now();
        while (taken.length > 0 && (taken[0] ?? now) <= now - windowMs) taken.shift();
        if (taken.length < capacity) {
          taken.push(now);
          return waited;
        }
        const free = (taken[0] ?? now) + windowMs - now + 1;
        const wait = free + Math.floor(Math.min(free, windowMs) * 0.5);
        if (maxWaitMs !== undefined && waited + wait > maxWaitMs)
          throw new PipelineError(ErrorCode.upstreamRateLimited, `no slot within ${maxWaitMs} ms`, {
            retriable: true,
            retryAfterMs: wait,
          });
        await new Promise((resolve) => setTimeout(resolve, wait));
        waited += wait;
      }
    },
  };
};

describe("reconcile: a run that needs more HubSpot calls than one window's spare share", () => {
  // Regression (the soak's fault kind drop, 10 minutes at 50 events/s over 10 portals): a run
  // makes one call per thread active in its window, all before its watermark moves. Its calls
  // took a free bookkeeping slot or none, so once a portal had more active threads than one
  // window's spare share (at most 80 of 100 per 10 s), every run failed at the same call and
  // was deferred, from the same watermark, for good: 284 of 316 lost messages never came.
  const WINDOW_MS = 100;
  const threads = 12;
  const PORTAL = ORG.portalId;

  const setUp = async () => {
    const fake = await startFakeHubSpot({ tokens: { 'tok-busy': PORTAL }, defaultRateLimit: null });
    const now = Date.now();
    for (let thread = 0; thread < threads; thread++)
      fake.addMessage(
        fixtures.message({
          kind: 'customer-chat',
          threadId: String(7_000_000 + thread),
          createdAt: iso(now - 100_000 + thread),
        }),
        { portalId: PORTAL },
      );
    const org = {
      orgId: ORG.orgId,
      hubspot: { portalId: PORTAL, accessToken: 'tok-busy' },
    } as unknown as Org;
    const emitted: string[] = [];
    const run = (bookkeepingMaxWaitMs: number | undefined) =>
      reconcileOrganisation(ORG, now - 300_000, now, SETTINGS, {
        // 5 slots per window, fewer than the run's 13 calls.
        hubspot: createPortalClients({
          baseUrl: fake.url,
          timeoutMs: 2000,
          limiter: rollingBudget(5, WINDOW_MS),
          ...(bookkeepingMaxWaitMs === undefined ? {} : { bookkeepingMaxWaitMs }),
        })(org),
        handled: async () => new Set(),
        emit: async (gaps) => void emitted.push(...gaps.map((gap) => gap.id)),
      });
    return { fake, run, emitted };
  };

  it("given the reconciler's calls waiting up to two windows for a slot, when a run needs more, then it completes at the budget's pace and writes every gap", async () => {
    const { fake, run, emitted } = await setUp();
    try {
      const result = await run(reconcileCallMaxWaitMs({ HUBSPOT_RATE_LIMIT_WINDOW_MS: WINDOW_MS }));
      assert.equal(result.hubspotCalls, threads + 1);
      assert.equal(result.gaps.length, threads);
      assert.equal(emitted.length, threads);
    } finally {
      await fake.close();
    }
  });

  it('given calls that take a free slot or none (as a ticket look-up does), when a run needs more, then it fails at the same call every time and writes nothing', async () => {
    const { fake, run, emitted } = await setUp();
    try {
      for (let attempt = 0; attempt < 2; attempt++)
        await assert.rejects(
          run(undefined),
          (error) => error instanceof PipelineError && error.code === ErrorCode.upstreamRateLimited,
        );
      assert.deepEqual(emitted, []);
    } finally {
      await fake.close();
    }
  });

  it("given a run that took a window's share in a burst, when its next call would wait a window plus the limiter's jitter, then it may: one window's wait was given up at once, unwaited", async () => {
    const { fake, run, emitted } = await setUp();
    try {
      await assert.rejects(
        run(WINDOW_MS),
        (error) => error instanceof PipelineError && error.code === ErrorCode.upstreamRateLimited,
      );
      assert.deepEqual(emitted, []);
      assert.ok(reconcileCallMaxWaitMs({ HUBSPOT_RATE_LIMIT_WINDOW_MS: WINDOW_MS }) >= 1.5 * WINDOW_MS);
    } finally {
      await fake.close();
    }
  });
});

describe('reconcile: a replica stopping during a run', () => {
  it('given a run waiting on its portal budget call by call, when the replica stops, then the run ends at its next call (deferred, watermark unmoved) and the stop does not wait for the rest', async () => {
    const threads = Array.from({ length: 50 }, (_, index) => ({
      id: String(8_000 + index),
      latestMessageTimestamp: iso(Date.now() - 100_000),
    }));
    let calls = 0;
    const runs: string[] = [];
    let recorded = false;
    const reconciler = createReconciler({
      targets: () => [ORG],
      watermarks: {
        get: () => undefined,
        record: async () => void (recorded = true),
        catchUp: async () => true,
      },
      writer: { write: async () => undefined },
      lease: { take: async () => true, renew: async () => true, release: async () => undefined },
      leaseRenewMs: 1000,
      runDeps: () => ({
        hubspot: {
          listThreadsSince: async () => ((calls += 1), { results: threads, after: undefined }),
          // Each call waits 20 ms for its slot.
          listThreadMessages: async () => {
            calls += 1;
            await new Promise((resolve) => setTimeout(resolve, 20));
            return { results: [], after: undefined };
          },
        },
        handled: async () => new Set<string>(),
        emit: async () => undefined,
      }),
      metrics: {
        runs: { inc: ({ outcome }) => void runs.push(outcome) },
        gapsFound: { inc: () => undefined },
      },
      settings: { intervalMs: 100, ...SETTINGS },
      logger: createLogger('test', 'silent'),
      now: Date.now,
    });
    reconciler.start();
    const deadline = Date.now() + 5000;
    while (calls < 3 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5));

    const stopping = Date.now();
    await reconciler.stop();

    assert.ok(Date.now() - stopping < 200, `stopped in ${Date.now() - stopping} ms`);
    assert.ok(calls < threads.length, `${calls} calls of ${threads.length + 1}`);
    assert.deepEqual(runs, ['deferred']);
    assert.equal(recorded, false);
  });
});
