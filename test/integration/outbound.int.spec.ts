import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import * as fixtures from '../fakes/hubspot-fixtures.ts';
import { sleep, startTestPipeline, waitFor, type TestOrg, type TestPipeline } from '../support/pipeline.ts';
import { kill, spawnService } from '../support/processes.ts';

const effectsOf = (pipeline: TestPipeline, kind: string) =>
  pipeline.opencx.effects.filter((effect) => effect.kind === kind);
const sentTexts = (pipeline: TestPipeline): string[] =>
  effectsOf(pipeline, 'message-sent').map(
    (effect) => (effect.body as { message: { text: string } }).message.text,
  );

/** A thread in the fake HubSpot, with its ticket, and a helper to post its messages' webhooks. */
const conversation = (pipeline: TestPipeline, org: TestOrg, ticketId?: string) => {
  const threadId = fixtures.newThreadId();
  pipeline.hubspot.setThread(
    fixtures.thread({
      id: threadId,
      ...(ticketId ? { threadAssociations: { associatedTicketId: ticketId } } : {}),
    }),
    { portalId: org.portalId },
  );
  return {
    threadId,
    async say(spec: fixtures.MessageSpec): Promise<fixtures.NewMessageWebhookEvent> {
      const message = fixtures.message({ threadId, ...spec });
      pipeline.hubspot.addMessage(message, { portalId: org.portalId });
      const event = fixtures.webhookEventFor(message, { portalId: org.portalId });
      assert.equal((await pipeline.postBatch([event])).status, 200);
      return event;
    },
  };
};

describe('outbound on real Kafka: every domain event applied to OpenCX once, AI replies back to HubSpot', function () {
  this.timeout(120000);

  describe('each event type end to end', () => {
    let pipeline: TestPipeline;
    let org: TestOrg;
    const ticketId = '1500009001';
    let chat: ReturnType<typeof conversation>;
    let sessionId: string;

    before(async () => {
      pipeline = await startTestPipeline();
      org = await pipeline.createOrg();
      chat = conversation(pipeline, org, ticketId);
    });
    after(async () => pipeline?.stop());

    it('given a customer message, then a session is created, the message sent, and the AI reply posted to the thread as the AI actor', async () => {
      await chat.say({ kind: 'customer-chat', text: 'Is my order shipped?' });
      const posted = await waitFor('the AI reply in HubSpot', () =>
        pipeline.hubspot.posted.find((entry) => entry.threadId === chat.threadId),
      );
      sessionId = effectsOf(pipeline, 'session-created')[0]?.sessionId ?? '';
      assert.ok(sessionId);
      const body = posted.body as {
        type: string;
        text: string;
        senderActorId: string;
        channelId: string;
        recipients: { actorId?: string }[];
      };
      assert.equal(body.type, 'MESSAGE');
      assert.equal(body.senderActorId, org.aiActorId);
      assert.equal(body.channelId, fixtures.LIVE_CHAT_CHANNEL_ID);
      assert.match(
        body.text,
        /^AI: Is my order shipped\?\n\n<!-- OpenCX-AI-Response --><!-- opencx-reply:[0-9a-f]{32} -->$/,
      );
      assert.equal(body.recipients[0]?.actorId, 'V-48710712');
    });

    it('given the echo webhook of our own AI reply, when HubSpot sends it, then nothing new reaches OpenCX', async () => {
      const echo = pipeline.hubspot.posted.find((entry) => entry.threadId === chat.threadId);
      assert.ok(echo);
      const effectsBefore = pipeline.opencx.effects.length;
      const event = fixtures.webhookEventFor(echo.message, { portalId: org.portalId });
      assert.equal((await pipeline.postBatch([event])).status, 200);
      await waitFor(
        'the echo to be ignored',
        async () =>
          (await pipeline.counter('processor', 'processor_ignored_total', { reason: 'automated_sender' })) +
            (await pipeline.counter('processor', 'processor_ignored_total', { reason: 'own_ai_echo' })) >=
          1,
      );
      // A customer message on the thread after the echo: both services take a thread's events in
      // order, so once its AI answer is in HubSpot the echo has had its turn in both.
      await chat.say({ kind: 'customer-chat', text: 'After the echo' });
      await waitFor('the AI answer to the message after the echo in HubSpot', () =>
        pipeline.hubspot.posted.some((entry) =>
          (entry.body as { text: string }).text.startsWith('AI: After the echo'),
        ),
      );
      assert.deepEqual(
        pipeline.opencx.effects.slice(effectsBefore).map((effect) => effect.kind),
        ['message-sent'],
        'only the message after the echo reached OpenCX',
      );
      assert.equal(pipeline.hubspot.posted.length, 2, 'no reply to our own reply');
    });

    it("given an agent's reply and an internal comment, then both are stored on the session, the comment as internal", async () => {
      await chat.say({ kind: 'agent-reply', text: 'Let me check that for you.' });
      await chat.say({ kind: 'comment', text: 'Customer is VIP' });
      await waitFor('two agent messages', () => effectsOf(pipeline, 'agent-message').length === 2);
      const bodies = effectsOf(pipeline, 'agent-message').map(
        (effect) => effect.body as { text: string; internal: boolean; actor_id: string },
      );
      assert.deepEqual(
        bodies.map((body) => [body.text, body.internal, body.actor_id]),
        [
          ['Let me check that for you.', false, 'A-2620022'],
          ['Customer is VIP', true, 'A-2620022'],
        ],
      );
      assert.ok(effectsOf(pipeline, 'agent-message').every((effect) => effect.sessionId === sessionId));
    });

    it('given a property change on the linked ticket, then it is set on the session custom data; an empty value is not', async () => {
      const change = fixtures.ticketPropertyChangeEvent({
        portalId: org.portalId,
        objectId: Number(ticketId),
        propertyName: 'hs_ticket_priority',
        propertyValue: 'HIGH',
      });
      const empty = fixtures.ticketPropertyChangeEvent({
        portalId: org.portalId,
        objectId: Number(ticketId),
        propertyName: 'subject',
        propertyValue: '',
      });
      // After the empty value in the ticket's order, in the processor and in outbound: once the
      // marker is on the session, the empty value has had its turn in both.
      const marker = fixtures.ticketPropertyChangeEvent({
        portalId: org.portalId,
        objectId: Number(ticketId),
        propertyName: 'hs_pipeline_stage',
        propertyValue: 'marker-after-empty',
      });
      assert.equal((await pipeline.postBatch([change, empty, marker])).status, 200);
      await waitFor(
        'the marker after the empty value on the session',
        () => pipeline.opencx.sessions.get(sessionId)?.customData.hs_pipeline_stage === 'marker-after-empty',
      );
      assert.equal(pipeline.opencx.sessions.get(sessionId)?.customData.hs_ticket_priority, 'HIGH');
      assert.equal(pipeline.opencx.sessions.get(sessionId)?.customData.subject, undefined);
      assert.equal(
        effectsOf(pipeline, 'custom-data').length,
        2,
        'the change and the marker, not the empty value',
      );
      assert.equal(
        await pipeline.counter('processor', 'processor_ignored_total', { reason: 'empty_property_value' }),
        1,
        'the empty value was skipped as empty',
      );
    });

    it('given a note created on the linked ticket, then it is mirrored as an internal agent comment', async () => {
      const note = fixtures.note({ ticketId, properties: { hs_note_body: '<p>Refund <b>approved</b></p>' } });
      pipeline.hubspot.addNote(note, { portalId: org.portalId });
      assert.equal(
        (
          await pipeline.postBatch([
            fixtures.noteCreationEvent({ portalId: org.portalId, objectId: Number(note.id) }),
          ])
        ).status,
        200,
      );
      const comment = await waitFor('the agent comment', () => effectsOf(pipeline, 'agent-comment')[0]);
      assert.equal(comment.sessionId, sessionId);
      assert.deepEqual((comment.body as { text: string; hubspot_note_id: string }).text, 'Refund approved');
      assert.equal((comment.body as { hubspot_note_id: string }).hubspot_note_id, note.id);
    });

    it('given the thread assigned away from the AI, then the session is handed off once, and later AI answers are not posted', async () => {
      const postedBefore = pipeline.hubspot.posted.length;
      const assign = (value: string) =>
        fixtures.propertyChangeEvent({
          portalId: org.portalId,
          objectId: Number(chat.threadId),
          propertyValue: value,
        });
      assert.equal((await pipeline.postBatch([assign('A-2620022')])).status, 200);
      const handoff = await waitFor('the handoff', () => effectsOf(pipeline, 'handoff')[0]);
      assert.deepEqual(handoff.body, { reason: 'assigned_away', assignee_actor_id: 'A-2620022' });
      await waitFor(
        'the link to record the handoff',
        async () =>
          (await pipeline.counter('outbound', 'outbound_events_applied_total', { type: 'handoff' })) === 1,
      );
      await sleep(300);

      assert.equal((await pipeline.postBatch([assign('A-3000001')])).status, 200);
      await chat.say({ kind: 'customer-chat', text: 'Hello? Anyone?' });
      await waitFor('the message after handoff at OpenCX', () =>
        sentTexts(pipeline).includes('Hello? Anyone?'),
      );
      await waitFor(
        'the AI reply to be skipped',
        async () =>
          (await pipeline.counter('outbound', 'outbound_events_skipped_total', {
            type: 'ai-reply',
            reason: 'handed_off',
          })) === 1,
      );
      assert.equal(effectsOf(pipeline, 'handoff').length, 1, 'handed off once');
      assert.equal(pipeline.hubspot.posted.length, postedBefore, 'no AI reply after the handoff');
      assert.deepEqual(pipeline.opencx.violations, []);
    });
  });

  describe('Assist Mode', () => {
    let pipeline: TestPipeline;
    before(async () => {
      pipeline = await startTestPipeline();
    });
    after(async () => pipeline?.stop());

    it('given Assist Mode, when the AI answers, then the answer is an internal COMMENT draft', async () => {
      const org = await pipeline.createOrg({ settings: { assistMode: true } });
      await conversation(pipeline, org).say({ kind: 'customer-chat', text: 'Refund please' });
      const posted = await waitFor('the draft in HubSpot', () => pipeline.hubspot.posted[0]);
      const body = posted.body as { type: string; text: string };
      assert.equal(body.type, 'COMMENT');
      assert.match(body.text, /AI: Refund please/);
      assert.match(body.text, /<!-- OpenCX-AI-Response -->/);
    });
  });

  describe('failures: OpenCX down for a while, outbound killed mid-stream', () => {
    let pipeline: TestPipeline;
    const children: ChildProcess[] = [];
    before(async () => {
      pipeline = await startTestPipeline({
        outbound: false,
        env: { OPENCX_RETRY_ATTEMPTS: '12', OPENCX_RETRY_INITIAL_MS: '50', OPENCX_RETRY_MAX_MS: '400' },
      });
    });
    after(async () => {
      await Promise.all(children.map(kill));
      await pipeline?.stop();
    });
    afterEach(async () => {
      await Promise.all(children.map(kill));
      await pipeline.stopOutbound();
      pipeline.opencx.reset();
    });

    it('given OpenCX answering 503 for a while, when it recovers, then every message is applied once and in order per thread', async () => {
      await pipeline.startOutbound();
      const org = await pipeline.createOrg();
      const threads = [conversation(pipeline, org), conversation(pipeline, org)];
      pipeline.opencx.failNext({ pathPattern: /\/send$/, status: 503, times: 8 });
      for (let index = 0; index < 4; index++)
        for (const [which, thread] of threads.entries()) await thread.say({ text: `t${which}-m${index}` });

      await waitFor('all 8 messages at OpenCX', () => sentTexts(pipeline).length >= 8, 60000);
      // A marker on each thread comes after any second copy of its messages in both services'
      // per-conversation order: once the markers are at OpenCX, the lists below are final.
      for (const [which, thread] of threads.entries()) await thread.say({ text: `t${which}-marker` });
      await waitFor('both markers at OpenCX', () =>
        threads.every((_thread, which) => sentTexts(pipeline).includes(`t${which}-marker`)),
      );
      for (const [which] of threads.entries()) {
        assert.deepEqual(
          sentTexts(pipeline).filter((text) => text.startsWith(`t${which}-`)),
          [...[0, 1, 2, 3].map((index) => `t${which}-m${index}`), `t${which}-marker`],
          'each once, in order',
        );
      }
      assert.ok((await pipeline.counter('outbound', 'outbound_retries_total', { target: 'opencx' })) >= 8);
    });

    it('given one thread stuck on OpenCX, when another thread sends, then the other is not held back', async () => {
      await pipeline.startOutbound();
      const org = await pipeline.createOrg();
      const stuck = conversation(pipeline, org);
      const free = conversation(pipeline, org);
      await stuck.say({ text: 'first on the stuck thread' });
      await waitFor('the stuck thread session', () =>
        sentTexts(pipeline).includes('first on the stuck thread'),
      );
      const sessionId = effectsOf(pipeline, 'message-sent')[0]?.sessionId ?? '';
      const held = pipeline.opencx.hold(new RegExp(`/chat/sessions/${sessionId}/send$`));
      await stuck.say({ text: 'second on the stuck thread' });
      await held.arrived;
      await free.say({ text: 'free thread goes on' });
      await waitFor(
        'the free thread at OpenCX while the other is held',
        () => sentTexts(pipeline).includes('free thread goes on'),
        10000,
      );
      held.release();
      await waitFor('the stuck thread to finish', () =>
        sentTexts(pipeline).includes('second on the stuck thread'),
      );
    });

    it('given outbound SIGKILLed mid-stream, when restarted, then nothing is lost and no effect happens twice', async () => {
      const org = await pipeline.createOrg();
      pipeline.opencx.setLatency(30);
      const first = await spawnService('outbound', pipeline.env);
      children.push(first);
      const threads = Array.from({ length: 5 }, () => conversation(pipeline, org));
      const expected: string[] = [];
      for (let index = 0; index < 6; index++) {
        for (const [which, thread] of threads.entries()) {
          expected.push(`k${which}-${index}`);
          await thread.say({ text: `k${which}-${index}` });
        }
      }
      await waitFor('some messages applied before the kill', () => sentTexts(pipeline).length >= 5, 30000);
      await kill(first);
      const appliedBeforeKill = sentTexts(pipeline).length;
      children.push(await spawnService('outbound', pipeline.env));
      await waitFor('all 30 messages at OpenCX', () => sentTexts(pipeline).length >= 30, 60000);
      // A marker on each thread, after the restart: it comes after any redelivered copy of the
      // thread's messages (and of their AI replies) in both services' per-conversation order, so
      // once every marker's AI reply is in HubSpot the lists below are final.
      const markers = threads.map((_thread, which) => `k${which}-marker`);
      for (const [which, thread] of threads.entries()) await thread.say({ text: markers[which]! });
      const threadIds = new Set(threads.map((thread) => thread.threadId));
      const postedTexts = (): string[] =>
        pipeline.hubspot.posted
          .filter((entry) => threadIds.has(entry.threadId))
          .map((entry) => (entry.body as { text: string }).text);
      await waitFor(
        "every marker's AI reply in HubSpot",
        () => markers.every((marker) => postedTexts().some((text) => text.startsWith(`AI: ${marker}\n`))),
        60000,
      );
      const texts = sentTexts(pipeline);
      assert.ok(appliedBeforeKill < 30, 'the kill happened mid-stream');
      assert.deepEqual([...texts].sort(), [...expected, ...markers].sort(), 'every message exactly once');
      assert.equal(effectsOf(pipeline, 'session-created').length, 5, 'one session per thread');
      for (const [which] of threads.entries()) {
        assert.deepEqual(
          texts.filter((text) => text.startsWith(`k${which}-`)),
          [...[0, 1, 2, 3, 4, 5].map((index) => `k${which}-${index}`), `k${which}-marker`],
          'in order per thread',
        );
      }
      assert.equal(postedTexts().length, 35, 'one AI reply per message');
      assert.equal(new Set(postedTexts()).size, 35, 'no AI reply posted twice');
    });
  });
});
