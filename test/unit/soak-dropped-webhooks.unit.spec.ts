import assert from 'node:assert/strict';
import type { FakeHubSpot } from '../fakes/hubspot.ts';
import type { FakeOpenCx, OpenCxEffect } from '../fakes/opencx.ts';
import type { TestOrg } from '../support/pipeline.ts';
import {
  DROP_SHARE,
  SOAK_RECONCILE,
  dropsWebhook,
  furthestWatermarks,
  reconcileDrainAllowanceMs,
  reconcileRunsFromMetrics,
  uncoveredDrops,
  watermarksFromMetrics,
} from '../support/soak/dropped-webhooks.ts';
import { LoadGenerator, seededRandom, type OfferedEvent } from '../support/soak/load.ts';
import { parseSoakArgs } from '../support/soak/options.ts';
import { failed, verify } from '../support/soak/verify.ts';

// The soak's fault kind `drop` (webhooks HubSpot never delivers, messages the reconciler must
// bring): which messages, what the drain waits for, and that the verdict counts them.

const dropped = (seed: number, label: string, count: number): number[] =>
  Array.from({ length: count }, (_, index) => index + 1).filter((seq) => dropsWebhook(seed, { seq, label }));

describe('soak fault drop: which webhooks', () => {
  it('given a seed, then the same customer messages are dropped each time, about 5 % of them', () => {
    const first = dropped(41, 'customer-chat', 20_000);
    assert.deepEqual(dropped(41, 'customer-chat', 20_000), first);
    assert.ok(first.length > 0.04 * 20_000 && first.length < 0.06 * 20_000, `${first.length} of 20000`);
    assert.equal(DROP_SHARE, 0.05);
  });

  it('given another seed, then other messages are dropped (about as few in common as chance gives)', () => {
    const a = new Set(dropped(41, 'customer-chat', 20_000));
    const b = dropped(42, 'customer-chat', 20_000);
    const common = b.filter((seq) => a.has(seq)).length;
    assert.ok(common < 0.2 * b.length, `${common} of ${b.length} in common`);
  });

  it('given events that are not a customer message on a running conversation, then none is dropped', () => {
    for (const label of [
      'new-conversation',
      'agent-reply',
      'internal-comment',
      'duplicate',
      'handoff',
      'note',
    ])
      assert.deepEqual(dropped(41, label, 2000), [], label);
    assert.ok(dropped(41, 'email', 2000).length > 0, 'an email customer message can be');
  });

  it('given a share of 0 or 1, then none or every droppable one', () => {
    assert.deepEqual(
      Array.from({ length: 100 }, (_, seq) => dropsWebhook(7, { seq, label: 'customer-chat' }, 0)).filter(
        Boolean,
      ),
      [],
    );
    assert.equal(
      Array.from({ length: 100 }, (_, seq) => dropsWebhook(7, { seq, label: 'customer-chat' }, 1)).filter(
        Boolean,
      ).length,
      100,
    );
  });

  it('given --skip-faults drop, then it is a known kind', () => {
    const command = parseSoakArgs(['--skip-faults', 'drop']);
    assert.equal(command.kind, 'run');
    assert.deepEqual(command.kind === 'run' ? [...command.args.skipFaults] : [], ['drop']);
  });
});

describe('soak fault drop: what the drain waits for', () => {
  it('given organisations with drops, then it waits for each whose watermark is not at its last drop yet (or that never completed a run)', () => {
    const lastDropAt = new Map([
      ['org-a', 10_000],
      ['org-b', 20_000],
      ['org-c', 30_000],
    ]);
    const watermarks = new Map([
      ['org-a', 10_000],
      ['org-b', 19_999],
      ['org-d', 0],
    ]);
    assert.deepEqual(uncoveredDrops(lastDropAt, watermarks), ['org-b', 'org-c']);
    assert.deepEqual(uncoveredDrops(new Map(), watermarks), []);
  });

  it("given processors' /metrics, then each organisation's watermark is the scrape time minus its age, the furthest replica's counting", () => {
    const metrics = [
      '# HELP processor_reconcile_watermark_age_seconds How far behind now each organisation’s reconcile watermark is',
      '# TYPE processor_reconcile_watermark_age_seconds gauge',
      'processor_reconcile_watermark_age_seconds{org_id="soak-1-org1"} 12.5',
      'processor_reconcile_watermark_age_seconds{org_id="soak-1-org2"} 0',
      'processor_reconcile_runs_total{outcome="completed"} 4',
    ].join('\n');
    const one = watermarksFromMetrics(metrics, 100_000);
    assert.deepEqual(
      [...one],
      [
        ['soak-1-org1', 87_500],
        ['soak-1-org2', 100_000],
      ],
    );
    assert.deepEqual(watermarksFromMetrics('', 100_000).size, 0);
    const other = new Map([
      ['soak-1-org1', 90_000],
      ['soak-1-org3', 5],
    ]);
    assert.deepEqual([...furthestWatermarks([one, other])].sort(), [
      ['soak-1-org1', 90_000],
      ['soak-1-org2', 100_000],
      ['soak-1-org3', 5],
    ]);
  });

  it("given a processor's /metrics with the registry's own labels, then its reconcile runs are counted by outcome", () => {
    const metrics = [
      '# TYPE processor_reconcile_runs_total counter',
      'processor_reconcile_runs_total{outcome="completed",service="processor"} 29',
      'processor_reconcile_runs_total{outcome="deferred",service="processor"} 7',
      'processor_reconcile_runs_total{service="processor",outcome="failed"} 2',
      'processor_hubspot_calls_total{portal_id="1",purpose="reconcile_threads",service="processor"} 14',
    ].join('\n');
    assert.deepEqual(reconcileRunsFromMetrics(metrics), { completed: 29, deferred: 7, failed: 2 });
    assert.deepEqual(reconcileRunsFromMetrics(''), { completed: 0, deferred: 0, failed: 0 });
  });

  it('given the soak’s reconcile settings, then the drain allows a settle, an interval, a tick and two deferred runs', () => {
    const allowance = reconcileDrainAllowanceMs(SOAK_RECONCILE);
    assert.ok(allowance >= SOAK_RECONCILE.settleMs + SOAK_RECONCILE.intervalMs + 10_000 + 2 * 30_000);
    assert.ok(allowance <= 5 * 60_000, 'bounded: a few minutes at most');
    assert.ok(SOAK_RECONCILE.settleMs < SOAK_RECONCILE.intervalMs);
  });
});

describe('soak fault drop: the load', () => {
  const org: TestOrg = {
    orgId: 'org-1',
    portalId: 31_000_001,
    accessToken: 'token',
    apiKey: 'key',
    aiActorId: 'A-1',
    legacyWebhookUrl: '',
  };

  it('given every droppable webhook dropped, then only customer messages on running conversations are, and a HubSpot retry never repeats one', () => {
    const load = new LoadGenerator({
      runId: 'unit',
      orgs: [org],
      hubspot: {
        setThread: () => undefined,
        addMessage: () => undefined,
        addNote: () => undefined,
        posted: [],
      } as unknown as FakeHubSpot,
      opencx: { effects: [], sessions: new Map() } as unknown as FakeOpenCx,
      random: seededRandom(3),
      settleMs: 3000,
      dropsWebhook: (event) => dropsWebhook(3, event, 1),
    });
    let index = 0;
    const events: OfferedEvent[] = [];
    for (let each = 0; each < 600; each++) {
      const event = each === 0 ? load.newConversation(org) : load.next();
      events.push(event);
      if (event.webhookDropped === true) load.markDropped(event, (index += 1), Date.now());
      else load.markAccepted(event, (index += 1), Date.now());
    }
    const droppedEvents = events.filter((event) => event.webhookDropped === true);
    assert.ok(droppedEvents.length > 50, `${droppedEvents.length} dropped`);
    assert.deepEqual([...new Set(droppedEvents.map((event) => event.label))].sort(), [
      'customer-chat',
      'email',
    ]);
    assert.ok(events.some((event) => event.label === 'new-conversation' && event.webhookDropped !== true));
    assert.equal(load.droppedCount, droppedEvents.length);
    assert.ok(
      droppedEvents.every((event) => event.acceptedIndex === undefined && event.droppedIndex !== undefined),
    );
    const droppedIds = new Set(droppedEvents.map((event) => event.body.messageId));
    const retries = events.filter((event) => event.label === 'duplicate');
    assert.ok(retries.length > 20, `${retries.length} retries`);
    assert.deepEqual(
      retries.filter((event) => droppedIds.has(event.body.messageId)),
      [],
    );
  });
});

describe('soak verdict: dropped webhooks', () => {
  const thread = '6065360001';
  const session = 'session-1';
  const message = (seq: number, text: string, how: 'delivered' | 'dropped'): OfferedEvent => ({
    seq,
    label: 'customer-chat',
    orgId: 'org-1',
    // Written in seq order.
    body: { messageId: `m${seq}`, occurredAt: 500 + seq },
    expect: {
      kind: 'message-sent',
      key: text,
      conversation: `thread:${thread}`,
      threadId: thread,
      orgId: 'org-1',
    },
    customerText: text,
    ...(how === 'delivered'
      ? { acceptedIndex: seq, acceptedAt: 1000 + seq }
      : { webhookDropped: true as const, droppedIndex: seq, droppedAt: 1000 + seq }),
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
  const aiReply = (text: string, at: number) => ({
    body: { text: `AI: ${text}\n\n<!-- OpenCX-AI-Response --><!-- opencx-reply:${'a'.repeat(32)} -->` },
    at,
  });
  /** `replied`: the customer texts whose AI reply was posted, at 0, 1, 2… or at a given time. */
  const verdictOf = (
    offered: OfferedEvent[],
    effects: OpenCxEffect[],
    replied: ReadonlyArray<string | readonly [string, number]>,
  ) =>
    verify({
      load: { offered, handoffIndexOf: () => undefined } as unknown as LoadGenerator,
      opencx: { effects, violations: [], sessions: new Map() } as unknown as FakeOpenCx,
      hubspot: {
        posted: replied.map((each, at) => (typeof each === 'string' ? aiReply(each, at) : aiReply(...each))),
      } as unknown as FakeHubSpot,
      replayStartedAt: undefined,
      deadLetteredEventIds: new Set(),
    });

  it('given a dropped message the reconciler brought after later ones of its thread, then it passes, counted as at OpenCX', () => {
    const verdict = verdictOf(
      [message(1, 'one', 'delivered'), message(2, 'two', 'dropped'), message(3, 'three', 'delivered')],
      [sessionCreated, sent('one', 2), sent('three', 3), sent('two', 4)],
      ['one', 'three', 'two'],
    );
    assert.deepEqual(verdict.dropped, {
      webhooks: 1,
      atOpenCx: 1,
      lost: 0,
      duplicated: 0,
      outOfOrder: 0,
      aiRepliesPosted: 1,
      aiRepliesNotPostedNewerFirst: 0,
      onHandedOffThreads: 0,
    });
    assert.equal(verdict.applied, 3);
    assert.equal(verdict.unexpected, 0);
    assert.equal(failed(verdict), false, JSON.stringify(verdict.findings));
  });

  it('given a dropped message never at OpenCX, then it is lost (and its AI reply too)', () => {
    const verdict = verdictOf(
      [message(1, 'one', 'delivered'), message(2, 'two', 'dropped')],
      [sessionCreated, sent('one', 2)],
      ['one'],
    );
    assert.equal(verdict.lost, 1);
    assert.equal(verdict.dropped.lost, 1);
    assert.equal(verdict.aiRepliesLost, 1);
    assert.match(verdict.findings.map((finding) => finding.detail).join('\n'), /webhook dropped/);
    assert.equal(failed(verdict), true);
  });

  it("given a recovered message whose thread had a later message answered before it reached OpenCX, when its reply is not posted, then that is counted apart (outbound's last-reply-per-thread rule), not lost", () => {
    const verdict = verdictOf(
      [message(1, 'one', 'delivered'), message(2, 'two', 'dropped'), message(3, 'three', 'delivered')],
      [sessionCreated, sent('one', 2), sent('three', 3), sent('two', 10)],
      [
        ['one', 2],
        ['three', 4],
      ],
    );
    assert.equal(verdict.dropped.aiRepliesNotPostedNewerFirst, 1);
    assert.equal(verdict.dropped.aiRepliesPosted, 0);
    assert.equal(verdict.aiRepliesLost, 0);
    assert.equal(failed(verdict), false, JSON.stringify(verdict.findings));
  });

  it("given a recovered message that reached OpenCX after a later one of its thread, when that later one's reply is posted after it reached OpenCX and its own is not, then that is counted apart (the replies go out in OpenCX's order), not lost", () => {
    const verdict = verdictOf(
      [message(1, 'one', 'delivered'), message(2, 'two', 'dropped'), message(3, 'three', 'delivered')],
      [sessionCreated, sent('one', 2), sent('three', 3), sent('two', 4)],
      [
        ['one', 2],
        ['three', 6],
      ],
    );
    assert.equal(verdict.dropped.aiRepliesNotPostedNewerFirst, 1);
    assert.equal(verdict.aiRepliesLost, 0);
    assert.equal(failed(verdict), false, JSON.stringify(verdict.findings));
  });

  it('given a recovered message with no reply, and no later message of its thread answered before it reached OpenCX, then its AI reply is lost', () => {
    const verdict = verdictOf(
      [message(1, 'one', 'delivered'), message(2, 'two', 'dropped'), message(3, 'three', 'delivered')],
      [sessionCreated, sent('one', 2), sent('two', 3), sent('three', 10)],
      [
        ['one', 2],
        ['three', 11],
      ],
    );
    assert.equal(verdict.dropped.aiRepliesNotPostedNewerFirst, 0);
    assert.equal(verdict.aiRepliesLost, 1);
    assert.match(verdict.findings.map((finding) => finding.detail).join('\n'), /recovered/);
    assert.equal(failed(verdict), true);
  });

  it('given a dropped message applied twice, then it is duplicated', () => {
    const verdict = verdictOf(
      [message(1, 'one', 'delivered'), message(2, 'two', 'dropped')],
      [sessionCreated, sent('one', 2), sent('two', 3), sent('two', 4)],
      ['one', 'two'],
    );
    assert.equal(verdict.dropped.duplicated, 1);
    assert.equal(verdict.duplicated, 1);
    assert.equal(failed(verdict), true);
  });

  it('given two dropped messages of one thread brought newest first, then it is out of order', () => {
    const verdict = verdictOf(
      [message(1, 'one', 'delivered'), message(2, 'two', 'dropped'), message(3, 'three', 'dropped')],
      [sessionCreated, sent('one', 2), sent('three', 3), sent('two', 4)],
      ['one', 'three', 'two'],
    );
    assert.equal(verdict.dropped.outOfOrder, 1);
    assert.equal(verdict.outOfOrder, 1);
    assert.equal(failed(verdict), true);
  });
});
