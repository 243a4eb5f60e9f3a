import assert from 'node:assert/strict';
import * as fixtures from '../fakes/hubspot-fixtures.ts';
import { startTestPipeline, waitFor, type TestOrg, type TestPipeline } from '../support/pipeline.ts';

const effectsOf = (pipeline: TestPipeline, kind: string) =>
  pipeline.opencx.effects.filter((effect) => effect.kind === kind);
const sentTexts = (pipeline: TestPipeline): string[] =>
  effectsOf(pipeline, 'message-sent').map(
    (effect) => (effect.body as { message: { text: string } }).message.text,
  );

/**
 * HubSpot as it really delivers: late and unordered (retries for 24 h), long emails truncated,
 * and private-app URLs that can receive another portal's events.
 */
describe('processor on real Kafka and Redis: HubSpot deliveries as they really come', function () {
  this.timeout(120000);

  let pipeline: TestPipeline;
  let org: TestOrg;
  const privateSecret = 'private-app-secret-of-this-org';
  before(async () => {
    pipeline = await startTestPipeline({ env: { EMAIL_DELAY_MS: '0' } });
    org = await pipeline.createOrg({ privateAppClientSecret: privateSecret });
  });
  after(async () => pipeline?.stop());

  describe('late, older property changes', () => {
    const ticketId = '1500007001';
    const threadId = fixtures.newThreadId();
    const newer = Date.now();
    const older = newer - 60_000;
    let sessionId: string;
    const priority = (): unknown => pipeline.opencx.sessions.get(sessionId)?.customData.hs_ticket_priority;
    const ticketChange = (occurredAt: number, value: string) =>
      fixtures.ticketPropertyChangeEvent({
        portalId: org.portalId,
        objectId: Number(ticketId),
        propertyName: 'hs_ticket_priority',
        propertyValue: value,
        occurredAt,
      });
    const customDataCalls = (): number =>
      effectsOf(pipeline, 'custom-data').filter((effect) => effect.sessionId === sessionId).length;
    const staleCount = (type: string): Promise<number> =>
      pipeline.counter('processor', 'processor_ignored_total', { reason: 'stale', subscription_type: type });

    before(async () => {
      pipeline.hubspot.setThread(
        fixtures.thread({ id: threadId, threadAssociations: { associatedTicketId: ticketId } }),
        { portalId: org.portalId },
      );
      const message = fixtures.message({ threadId, text: 'Where is my parcel?' });
      pipeline.hubspot.addMessage(message, { portalId: org.portalId });
      assert.equal(
        (await pipeline.postBatch([fixtures.webhookEventFor(message, { portalId: org.portalId })])).status,
        200,
      );
      // The AI reply is posted after the session and its ticket link exist.
      await waitFor('the AI reply in HubSpot', () =>
        pipeline.hubspot.posted.find((entry) => entry.threadId === threadId),
      );
      sessionId =
        [...pipeline.opencx.sessions.entries()].find(
          ([, session]) => session.customData.hubspot_thread_id === threadId,
        )?.[0] ?? '';
      assert.ok(sessionId);
    });

    it('given a ticket priority change, when an older change of it arrives late, then it is skipped as stale and the session keeps the newer value', async () => {
      assert.equal((await pipeline.postBatch([ticketChange(newer, 'HIGH')])).status, 200);
      await waitFor('the newer priority on the session', () => priority() === 'HIGH');

      assert.equal((await pipeline.postBatch([ticketChange(older, 'LOW')])).status, 200);
      await waitFor('the late change to be skipped as stale', async () =>
        (await staleCount('ticket.propertyChange')) === 1 ? true : undefined,
      );
      assert.equal(priority(), 'HIGH');
      assert.equal(customDataCalls(), 1, 'only the newer change reached OpenCX');
    });

    it('given a processor restart, when another older change arrives, then it is still skipped as stale (the clock is durable)', async () => {
      await pipeline.stopProcessor();
      await pipeline.startProcessor();
      assert.equal((await pipeline.postBatch([ticketChange(older + 1, 'MEDIUM')])).status, 200);
      await waitFor('the late change to be skipped as stale by the new processor', async () =>
        (await staleCount('ticket.propertyChange')) === 1 ? true : undefined,
      );
      assert.equal(priority(), 'HIGH');
      assert.equal(customDataCalls(), 1);
    });

    it('given the thread assigned back to the AI, when the older assignment to an agent arrives late, then it is stale and there is no handoff', async () => {
      const assign = (occurredAt: number, value: string) =>
        fixtures.propertyChangeEvent({
          portalId: org.portalId,
          objectId: Number(threadId),
          propertyValue: value,
          occurredAt,
        });
      assert.equal((await pipeline.postBatch([assign(newer, org.aiActorId)])).status, 200);
      await waitFor('the assignment to the AI to be handled', async () =>
        (await pipeline.counter('processor', 'processor_ignored_total', { reason: 'assigned_to_ai' })) === 1
          ? true
          : undefined,
      );

      assert.equal((await pipeline.postBatch([assign(older, 'A-2620022')])).status, 200);
      await waitFor('the late assignment to be skipped as stale', async () =>
        (await staleCount('conversation.propertyChange')) === 1 ? true : undefined,
      );
      assert.equal(
        await pipeline.counter('processor', 'processor_domain_events_total', { type: 'handoff' }),
        0,
      );
      assert.equal(
        effectsOf(pipeline, 'handoff').filter((effect) => effect.sessionId === sessionId).length,
        0,
      );
    });
  });

  it('given a long email HubSpot serves truncated, when it is processed, then OpenCX gets the whole text', async () => {
    const whole = `Dear support, ${'my parcel 1043 never arrived and the tracking page is blank. '.repeat(100)}Regards, Jane`;
    const { message, originalContent } = fixtures.truncatedEmail(whole);
    pipeline.hubspot.addMessage(message, { portalId: org.portalId });
    pipeline.hubspot.setOriginalContent(message.conversationsThreadId, message.id, originalContent);
    assert.equal(
      (await pipeline.postBatch([fixtures.webhookEventFor(message, { portalId: org.portalId })])).status,
      200,
    );

    const expected = whole.replace(/\s+/g, ' ').trim();
    await waitFor(
      'the whole email at OpenCX',
      () => sentTexts(pipeline).find((text) => text.startsWith('Dear support')),
      30000,
    );
    assert.equal(
      sentTexts(pipeline).find((text) => text.startsWith('Dear support')),
      expected,
      'the email reached OpenCX complete',
    );
    assert.ok(pipeline.hubspot.requests.some((request) => request.path.endsWith('/original-content')));
  });

  it("given a delivery on the org's private-app URL naming another portal, when processed, then it is skipped as portal_mismatch and counted", async () => {
    const path = new URL(org.legacyWebhookUrl).pathname;
    const foreign = fixtures.message({ text: 'Sent from a portal that is not this org' });
    // Readable with the org's token, so nothing but the portal check stops it.
    pipeline.hubspot.addMessage(foreign);
    const foreignEvent = fixtures.webhookEventFor(foreign, { portalId: org.portalId + 1 });
    assert.equal((await pipeline.postBatch([foreignEvent], { path, secret: privateSecret })).status, 200);
    await waitFor('the mismatch to be counted', async () =>
      (await pipeline.counter('processor', 'processor_ignored_total', { reason: 'portal_mismatch' })) === 1
        ? true
        : undefined,
    );

    const own = fixtures.message({ text: 'Sent from this org portal' });
    pipeline.hubspot.addMessage(own, { portalId: org.portalId });
    const ownEvent = fixtures.webhookEventFor(own, { portalId: org.portalId });
    assert.equal((await pipeline.postBatch([ownEvent], { path, secret: privateSecret })).status, 200);
    await waitFor('the marker message at OpenCX', () =>
      sentTexts(pipeline).includes('Sent from this org portal'),
    );
    assert.ok(!sentTexts(pipeline).includes('Sent from a portal that is not this org'));
  });
});
