import assert from 'node:assert/strict';
import { createTestRedis } from '../support/redis.ts';
import type { ChildProcess } from 'node:child_process';
import * as fixtures from '../fakes/hubspot-fixtures.ts';
import { createRedisRateLimiter } from '../../lib/rate-limiter.ts';

import type { HubSpotRecordedRequest } from '../fakes/hubspot.ts';
import { startTestPipeline, waitFor, type TestOrg, type TestPipeline } from '../support/pipeline.ts';
import { kill, spawnService } from '../support/processes.ts';

/** HubSpot's default for an OAuth app, and the pipeline's default limit (HUBSPOT_RATE_LIMIT_*). */
const DEFAULT_LIMIT = { max: 100, intervalMs: 10_000 };
const THREADS = '/conversations/v3/conversations/threads/';

const isTicketLookUp = (request: HubSpotRecordedRequest, threadId: string): boolean =>
  request.method === 'GET' &&
  request.path === `${THREADS}${threadId}` &&
  request.query.association === 'TICKET';
/** The HubSpot calls about one thread (its messages and the thread itself). */
const callsAbout = (pipeline: TestPipeline, threadId: string): HubSpotRecordedRequest[] =>
  pipeline.hubspot.requests.filter(
    (request) =>
      request.path === `${THREADS}${threadId}` || request.path.startsWith(`${THREADS}${threadId}/`),
  );
const describeCall = (request: HubSpotRecordedRequest): string =>
  isTicketLookUp(request, request.path.slice(THREADS.length))
    ? 'ticket_lookup'
    : `${request.method} ${request.path}`;

/** When each thread's first customer message reached OpenCX (message-sent effects, by session). */
const firstSendOfThread = (pipeline: TestPipeline): Map<string, number> => {
  const threadOfSession = new Map<string, string>();
  for (const effect of pipeline.opencx.effects)
    if (effect.kind === 'session-created') {
      const body = effect.body as { custom_data: { hubspot_thread_id: string } };
      threadOfSession.set(effect.sessionId, body.custom_data.hubspot_thread_id);
    }
  const sent = new Map<string, number>();
  for (const effect of pipeline.opencx.effects) {
    const threadId = threadOfSession.get(effect.sessionId);
    if (effect.kind === 'message-sent' && threadId !== undefined && !sent.has(threadId))
      sent.set(threadId, effect.at);
  }
  return sent;
};

const newConversation = (pipeline: TestPipeline, org: TestOrg, ticketId?: string) => {
  const threadId = fixtures.newThreadId();
  pipeline.hubspot.setThread(
    fixtures.thread({
      id: threadId,
      ...(ticketId ? { threadAssociations: { associatedTicketId: ticketId } } : {}),
    }),
    { portalId: org.portalId },
  );
  const message = fixtures.message({ threadId, kind: 'customer-chat', text: `Hello from ${threadId}` });
  pipeline.hubspot.addMessage(message, { portalId: org.portalId });
  return { threadId, event: fixtures.webhookEventFor(message, { portalId: org.portalId }) };
};

describe('HubSpot calls are a budget: a new conversation reaches OpenCX after one HubSpot call', function () {
  this.timeout(120000);
  let pipeline: TestPipeline;
  let org: TestOrg;

  beforeEach(async () => {
    pipeline = await startTestPipeline();
    org = await pipeline.createOrg();
    pipeline.hubspot.setRateLimit(org.portalId, DEFAULT_LIMIT);
  });
  afterEach(async () => pipeline?.stop());

  it('given one batch of 100 new conversations on one portal at the default limit (100 per 10 s), then all reach OpenCX, each after only its re-fetch (no ticket look-up on the way)', async () => {
    const conversations = Array.from({ length: 100 }, () => newConversation(pipeline, org));
    const started = Date.now();
    assert.equal((await pipeline.postBatch(conversations.map(({ event }) => event))).status, 200);
    const sent = await waitFor(
      'the 100 first messages at OpenCX',
      () => {
        const firsts = firstSendOfThread(pipeline);
        return firsts.size >= 100 && firsts;
      },
      60000,
      100,
    );
    const lastAt = Math.max(...sent.values());
    // The figure (issue 8): 100 new conversations in one batch, default limit. Measured in the
    // bench too (bench/hubspot-budget.bench.ts); asserted here by order, not by a stopwatch.
    console.log(
      `      100 new conversations in one batch reached OpenCX in ${lastAt - started} ms; HubSpot calls before the last: ${
        pipeline.hubspot.requests.filter((request) => request.at <= lastAt).length
      }`,
    );
    for (const { threadId } of conversations) {
      const sentAt = sent.get(threadId);
      assert.ok(sentAt !== undefined, `thread ${threadId} reached OpenCX`);
      const before = callsAbout(pipeline, threadId)
        .filter((request) => request.at < sentAt)
        .map(describeCall);
      assert.equal(
        before.length,
        1,
        `thread ${threadId}: HubSpot calls before OpenCX had it: ${before.join(', ')}`,
      );
      assert.match(before[0] ?? '', /^GET .*\/messages\/[^/]+$/);
    }
  });

  /** A thread with a ticket: its first message, then ticket changes until one is applied. */
  const ticketFoundAfterTheMessage = async (ticketId: string): Promise<void> => {
    const { threadId, event } = newConversation(pipeline, org, ticketId);
    assert.equal((await pipeline.postBatch([event])).status, 200);
    const sentAt = await waitFor('the message at OpenCX', () => firstSendOfThread(pipeline).get(threadId));
    const lookUps = callsAbout(pipeline, threadId).filter((request) => isTicketLookUp(request, threadId));
    assert.ok(
      lookUps.every((request) => request.at >= sentAt),
      'no ticket look-up before the message was at OpenCX',
    );
    const sessionId = pipeline.opencx.effects.find((effect) => effect.kind === 'message-sent')?.sessionId;
    // Ticket events before the link is made are skipped (no_linked_session): HubSpot's next change
    // of the ticket is then the one applied. Send changes until one lands, with no rep reply or
    // handoff that would look the ticket up on their own.
    let round = 0;
    await waitFor(
      'a ticket property change applied to the session',
      async () => {
        const applied = pipeline.opencx.effects.find(
          (effect) => effect.kind === 'custom-data' && effect.sessionId === sessionId,
        );
        if (applied) return applied;
        round += 1;
        const change = fixtures.ticketPropertyChangeEvent({
          portalId: org.portalId,
          objectId: Number(ticketId),
          propertyName: 'hs_ticket_priority',
          propertyValue: `P${round}`,
          occurredAt: Date.now(),
        });
        assert.equal((await pipeline.postBatch([change])).status, 200);
        return undefined;
      },
      20000,
      1000,
    );
    assert.ok(
      callsAbout(pipeline, threadId).some((request) => isTicketLookUp(request, threadId)),
      'the ticket was found by its look-up',
    );
  };

  it('given a thread whose ticket exists when its session is created, then the ticket is looked up after the message is at OpenCX, and a later ticket.propertyChange is applied to the session', async () => {
    await ticketFoundAfterTheMessage('1500004242');
  });

  it('given a portal with no room for bookkeeping (90 of its 100 slots taken by another replica), then the look-up is owed and made once the window rolls, and a later ticket.propertyChange is applied', async () => {
    const redis = createTestRedis();
    try {
      const otherReplica = createRedisRateLimiter(redis, {
        prefix: pipeline.env.REDIS_KEY_PREFIX ?? '',
        max: DEFAULT_LIMIT.max,
        windowMs: DEFAULT_LIMIT.intervalMs,
      });
      for (let i = 0; i < 90; i++) await otherReplica.acquire(`hubspot:${org.portalId}`);
      await ticketFoundAfterTheMessage('1500004343');
      assert.ok(
        (await pipeline.counter('outbound', 'outbound_owed_ticket_lookups_total', { outcome: 'found' })) >= 1,
        'found by an owed look-up',
      );
    } finally {
      redis.disconnect();
    }
  });
});

describe('HubSpot calls are a budget: outbound dies between the send and the ticket look-up', function () {
  this.timeout(180000);
  let pipeline: TestPipeline;
  const children: ChildProcess[] = [];
  afterEach(async () => {
    await Promise.all(children.map((child) => kill(child)));
    await pipeline?.stop();
  });

  it('given outbound SIGKILLed while its look-up (after the send) is in flight, when restarted, then the message is at OpenCX once and the ticket is still linked (a later change applied)', async () => {
    pipeline = await startTestPipeline({ outbound: false });
    const org = await pipeline.createOrg();
    const ticketId = '1500004444';
    const first = await spawnService('outbound', pipeline.env);
    children.push(first);
    const { threadId, event } = newConversation(pipeline, org, ticketId);
    const held = pipeline.hubspot.hold(new RegExp(`${THREADS}${threadId}$`));
    assert.equal((await pipeline.postBatch([event])).status, 200);
    await held.arrived;
    assert.ok(firstSendOfThread(pipeline).has(threadId), 'the message was at OpenCX before the look-up');
    await kill(first);
    held.release();
    children.push(await spawnService('outbound', pipeline.env));
    const sessionId = pipeline.opencx.effects.find((effect) => effect.kind === 'message-sent')?.sessionId;
    let round = 0;
    await waitFor(
      'a ticket property change applied to the session',
      async () => {
        if (
          pipeline.opencx.effects.some(
            (effect) => effect.kind === 'custom-data' && effect.sessionId === sessionId,
          )
        )
          return true;
        round += 1;
        const change = fixtures.ticketPropertyChangeEvent({
          portalId: org.portalId,
          objectId: Number(ticketId),
          propertyName: 'hs_ticket_priority',
          propertyValue: `P${round}`,
          occurredAt: Date.now(),
        });
        assert.equal((await pipeline.postBatch([change])).status, 200);
        return undefined;
      },
      40000,
      1000,
    );
    assert.equal(
      pipeline.opencx.effects.filter((effect) => effect.kind === 'message-sent').length,
      1,
      'the redelivered message was not sent twice',
    );
  });
});
