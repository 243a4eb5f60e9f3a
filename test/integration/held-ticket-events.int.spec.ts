import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createKafka, topicsFor } from '../../lib/kafka/index.ts';
import { createLogger } from '../../lib/log.ts';
import { createRedis } from '../../lib/redis.ts';
import * as fixtures from '../fakes/hubspot-fixtures.ts';
import {
  BUSY_PORTAL_CONVERSATIONS as CONVERSATIONS,
  busyPortal,
  sendBusyPortal,
  ticketEffectsAt,
  type BusyConversation,
} from '../support/busy-portal.ts';
import { SoakRedis } from '../support/soak/cluster.ts';
import { startTestPipeline, waitFor, type TestPipeline } from '../support/pipeline.ts';
import { kill, spawnService } from '../support/processes.ts';
import { readTopicToEnd } from '../support/topic-reader.ts';

/** Every change and note at its own thread's session, none twice (OpenCX's effects exclude replays). */
const assertAllReachedOnce = async (
  pipeline: TestPipeline,
  conversations: readonly BusyConversation[],
  timeoutMs: number,
): Promise<void> => {
  const reached = () =>
    ticketEffectsAt(pipeline, conversations).filter(({ changeAt, noteAt }) => changeAt && noteAt).length;
  await waitFor(
    `all ${CONVERSATIONS} ticket changes and notes at their sessions`,
    () => reached() === conversations.length,
    timeoutMs,
    250,
  ).catch((error: unknown) => {
    throw new Error(`${String(error)} (${reached()} of ${conversations.length} reached)`);
  });
  const sessions = new Set(
    pipeline.opencx.effects.filter((effect) => effect.kind === 'session-created').map((e) => e.sessionId),
  );
  assert.equal(sessions.size, CONVERSATIONS, 'one session per thread');
  for (const kind of ['custom-data', 'agent-comment'] as const) {
    const effects = pipeline.opencx.effects.filter((effect) => effect.kind === kind);
    assert.equal(effects.length, CONVERSATIONS, `${kind}: each applied once`);
    assert.equal(new Set(effects.map((effect) => effect.idempotencyKey)).size, CONVERSATIONS);
  }
};

describe('ticket and note events whose ticket link is learned late (real Kafka, registry, Redis)', function () {
  this.timeout(300000);
  let pipeline: TestPipeline | undefined;
  let ownRedis: SoakRedis | undefined;
  const children: ChildProcess[] = [];
  afterEach(async () => {
    await Promise.all(children.splice(0).map((child) => kill(child)));
    await pipeline?.stop();
    await ownRedis?.stop();
    pipeline = undefined;
    ownRedis = undefined;
  });

  it('given a portal that just took 100 new conversations, when a change and a note of each ticket arrive within a second of its first message, then all 100 changes and 100 notes reach their sessions, none twice', async () => {
    pipeline = await startTestPipeline();
    const org = await pipeline.createOrg();
    const conversations = busyPortal(pipeline, org);
    await sendBusyPortal(pipeline, conversations);
    await assertAllReachedOnce(pipeline, conversations, 120000);
    assert.ok(
      (await pipeline.counter('outbound', 'outbound_held_ticket_events_total', { outcome: 'held' })) > 0,
      'events were held (their links came later)',
    );
    assert.equal(
      await pipeline.counter('outbound', 'outbound_events_skipped_total', { reason: 'no_linked_session' }),
      0,
    );
  });

  it('given the same busy portal, when outbound and the processor are killed (SIGKILL) in the middle, then all 100 changes and 100 notes still reach their sessions, none twice', async () => {
    pipeline = await startTestPipeline({ processor: false, outbound: false });
    const env = pipeline.env;
    const org = await pipeline.createOrg();
    children.push(await spawnService('processor', env), await spawnService('outbound', env));
    const conversations = busyPortal(pipeline, org);
    await sendBusyPortal(pipeline, conversations);
    const p = pipeline;
    await waitFor(
      'some changes held or applied, but not all',
      () => p.opencx.effects.filter((effect) => effect.kind === 'message-sent').length >= 10,
      60000,
    );
    await Promise.all(children.splice(0).map((child) => kill(child)));
    children.push(await spawnService('processor', env), await spawnService('outbound', env));
    await assertAllReachedOnce(pipeline, conversations, 180000);
  });

  it('given the same busy portal, when Redis loses every key (FLUSHALL) in the middle, then all 100 changes and 100 notes still reach their sessions, none twice', async () => {
    // FLUSHALL on a redis-server of the test's own only: the shared one is never flushed.
    ownRedis = new SoakRedis(mkdtempSync(join(tmpdir(), 'redis-held-')));
    await ownRedis.start();
    pipeline = await startTestPipeline({ env: { REDIS_URL: ownRedis.url } });
    const org = await pipeline.createOrg();
    const conversations = busyPortal(pipeline, org);
    await sendBusyPortal(pipeline, conversations);
    const p = pipeline;
    await waitFor(
      'events held and look-ups owed',
      async () =>
        (await p.counter('outbound', 'outbound_held_ticket_events_total', { outcome: 'held' })) >= 20,
      60000,
    );
    const client = createRedis(ownRedis.url, createLogger('test', 'silent'));
    try {
      assert.equal(await client.flushall(), 'OK');
    } finally {
      client.disconnect();
    }
    await assertAllReachedOnce(pipeline, conversations, 180000);
  });

  it('given a ticket on no conversation at all, when its changes and a note arrive, then they are held only until TICKET_HOLD_MS, then skipped as no_linked_session, and nothing of them stays in memory or on the topic', async () => {
    pipeline = await startTestPipeline({ env: { TICKET_HOLD_MS: '3000' } });
    const org = await pipeline.createOrg();
    const ticketId = '1699999999';
    const note = fixtures.note({ ticketId });
    pipeline.hubspot.addNote(note, { portalId: org.portalId });
    const events = [
      ...['hs_ticket_priority', 'subject', 'hs_ticket_priority'].map((propertyName, index) =>
        fixtures.ticketPropertyChangeEvent({
          portalId: org.portalId,
          objectId: Number(ticketId),
          propertyName,
          propertyValue: `v${index}`,
          occurredAt: Date.now() + index,
        }),
      ),
      fixtures.noteCreationEvent({ portalId: org.portalId, objectId: Number(note.id) }),
    ];
    assert.equal((await pipeline.postBatch(events)).status, 200);
    const p = pipeline;
    const count = (outcome: string) =>
      p.counter('outbound', 'outbound_held_ticket_events_total', { outcome });
    await waitFor('the ticket held', async () => (await count('held')) === 4, 30000);
    assert.equal(await count('superseded'), 1, 'the older priority is not held next to the newer');
    await waitFor(
      'the hold to end',
      async () =>
        (await p.counter('outbound', 'outbound_events_skipped_total', { reason: 'no_linked_session' })) === 1,
      30000,
    );
    assert.equal(await count('expired'), 3, 'the newest priority, the subject and the note');
    assert.equal(await count('released'), 0);
    assert.equal(await p.counter('outbound', 'outbound_held_tickets'), 0, 'nothing held in memory');
    assert.equal(
      pipeline.opencx.effects.filter((effect) => effect.kind !== 'session-created').length,
      0,
      'nothing applied to any session',
    );
    // The topic ends in a tombstone for the ticket: compaction removes the rest.
    const kafka = createKafka({
      clientId: 'test',
      brokers: (pipeline.env.KAFKA_BROKERS ?? '').split(','),
      logger: createLogger('test', 'silent'),
    });
    const records = await readTopicToEnd(
      kafka,
      topicsFor(pipeline.env.KAFKA_TOPIC_PREFIX ?? '').heldTicketEvents.name,
    );
    const last = records
      .filter((record) => record.key?.toString() === `${org.orgId}:ticket:${ticketId}`)
      .at(-1);
    assert.ok(last, 'the ticket was held on the topic');
    assert.equal(last.value, null, 'its last record is a tombstone');
  });

  it('regression (soak): given a change superseded while held, when Redis loses every key and HubSpot delivers the older change again, then it is not applied over the newer value', async () => {
    ownRedis = new SoakRedis(mkdtempSync(join(tmpdir(), 'redis-stale-')));
    await ownRedis.start();
    pipeline = await startTestPipeline({ env: { REDIS_URL: ownRedis.url } });
    const org = await pipeline.createOrg();
    const ticketId = '1698888888';
    const change = (value: string, occurredAt: number) =>
      fixtures.ticketPropertyChangeEvent({
        portalId: org.portalId,
        objectId: Number(ticketId),
        propertyName: 'hs_ticket_priority',
        propertyValue: value,
        occurredAt,
      });
    const now = Date.now();
    const older = change('LOW', now - 2000);
    // Held (no conversation has the ticket yet): the newer replaces the older.
    assert.equal((await pipeline.postBatch([older, change('HIGH', now - 1000)])).status, 200);
    const p = pipeline;
    await waitFor(
      'the older change superseded while held',
      async () =>
        (await p.counter('outbound', 'outbound_held_ticket_events_total', { outcome: 'superseded' })) === 1,
      30000,
    );
    // The conversation comes: its look-up links the ticket and the held value is applied.
    const threadId = fixtures.newThreadId();
    pipeline.hubspot.setThread(
      fixtures.thread({ id: threadId, threadAssociations: { associatedTicketId: ticketId } }),
      {
        portalId: org.portalId,
      },
    );
    const message = fixtures.message({ threadId, kind: 'customer-chat', text: 'Hi' });
    pipeline.hubspot.addMessage(message, { portalId: org.portalId });
    assert.equal(
      (await pipeline.postBatch([fixtures.webhookEventFor(message, { portalId: org.portalId })])).status,
      200,
    );
    const values = () =>
      p.opencx.effects
        .filter((effect) => effect.kind === 'custom-data')
        .map((effect) => (effect.body as Record<string, string>).hs_ticket_priority)
        .filter((value) => value !== undefined);
    await waitFor('the newer value at the session', () => values().includes('HIGH'), 60000);

    const client = createRedis(ownRedis.url, createLogger('test', 'silent'));
    try {
      assert.equal(await client.flushall(), 'OK');
    } finally {
      client.disconnect();
    }
    // HubSpot's retry of the older change, then a newer change of another property as a marker.
    const marker = fixtures.ticketPropertyChangeEvent({
      portalId: org.portalId,
      objectId: Number(ticketId),
      propertyName: 'subject',
      propertyValue: 'marker',
      occurredAt: Date.now(),
    });
    assert.equal((await pipeline.postBatch([{ ...older, attemptNumber: 1 }])).status, 200);
    assert.equal((await pipeline.postBatch([marker])).status, 200);
    await waitFor('the marker at the session', () =>
      p.opencx.effects.some((effect) => (effect.body as Record<string, string>).subject === 'marker'),
    );
    assert.deepEqual(values(), ['HIGH'], 'the older value was never applied');
    assert.equal(await p.counter('outbound', 'outbound_events_skipped_total', { reason: 'stale' }), 1);
  });
});
