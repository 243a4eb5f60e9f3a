import assert from 'node:assert/strict';
import * as fixtures from '../fakes/hubspot-fixtures.ts';
import {
  CLIENT_SECRET,
  startTestPipeline,
  waitFor,
  type TestOrg,
  type TestPipeline,
} from '../support/pipeline.ts';

describe('end to end: a signed HubSpot webhook reaches OpenCX (real Kafka, registry, Redis)', function () {
  this.timeout(90000);
  let pipeline: TestPipeline;
  let org: TestOrg;

  before(async () => {
    pipeline = await startTestPipeline();
    org = await pipeline.createOrg();
  });
  after(async () => {
    await pipeline?.stop();
  });

  it('given a customer chat message, when HubSpot posts its webhook, then OpenCX gets a session and the text', async () => {
    const message = fixtures.message({ kind: 'customer-chat', text: 'Where is my parcel?' });
    pipeline.hubspot.addMessage(message, { portalId: org.portalId });

    const response = await pipeline.postBatch([
      fixtures.webhookEventFor(message, { portalId: org.portalId }),
    ]);
    assert.equal(response.status, 200);

    const sent = await waitFor('OpenCX to receive the message', () =>
      pipeline.opencx.effects.find((effect) => effect.kind === 'message-sent'),
    );
    const session = pipeline.opencx.sessions.get(sent.sessionId);
    assert.equal(session?.channel.type, 'web');
    assert.equal(session?.customData.hubspot_thread_id, message.conversationsThreadId);
    assert.equal(session?.customData.hubspot_portal_id, String(org.portalId));
    assert.deepEqual(
      session?.messages.map((sentMessage) => sentMessage.text),
      ['Where is my parcel?'],
    );
    const request = pipeline.opencx.requests.find((recorded) => recorded.path.endsWith('/send'));
    assert.equal(request?.headers.authorization, `Bearer ${org.apiKey}`);
    assert.ok(request?.headers['idempotency-key'], 'the send carries an Idempotency-Key');
    assert.deepEqual(pipeline.opencx.violations, []);
    await waitFor('the AI reply posted to HubSpot', () => pipeline.hubspot.posted.length === 1);
  });

  it('given a bad signature or a stale timestamp, when posted, then 401 and nothing reaches HubSpot or OpenCX', async () => {
    const message = fixtures.message({ kind: 'customer-chat' });
    pipeline.hubspot.addMessage(message, { portalId: org.portalId });
    const effectsBefore = pipeline.opencx.effects.length;
    const event = fixtures.webhookEventFor(message, { portalId: org.portalId });

    const forged = await pipeline.postBatch([event], { secret: 'not-the-secret' });
    assert.equal(forged.status, 401);
    assert.deepEqual(await forged.json(), {
      error: 'signature_mismatch',
      detail: 'the request signature does not verify; check the app client secret and PUBLIC_BASE_URL',
    });
    const stale = await pipeline.postBatch([event], {
      secret: CLIENT_SECRET,
      timestamp: Date.now() - 6 * 60 * 1000,
    });
    assert.equal(stale.status, 401);
    assert.equal(((await stale.json()) as { error: string }).error, 'stale_timestamp');

    // A valid message on the same thread comes after the refused ones in per-conversation
    // order: once it is at OpenCX, a refused one that had slipped through would be there too.
    const marker = fixtures.message({
      kind: 'customer-chat',
      threadId: message.conversationsThreadId,
      text: 'Marker after the refused ones',
    });
    pipeline.hubspot.addMessage(marker, { portalId: org.portalId });
    assert.equal(
      (await pipeline.postBatch([fixtures.webhookEventFor(marker, { portalId: org.portalId })])).status,
      200,
    );
    await waitFor('the marker at OpenCX', () =>
      pipeline.opencx.effects.some(
        (effect) =>
          effect.kind === 'message-sent' &&
          (effect.body as { message: { text: string } }).message.text === 'Marker after the refused ones',
      ),
    );
    assert.ok(
      !pipeline.hubspot.requests.some((request) => request.path.includes(message.id)),
      'no re-fetch happened',
    );
    assert.ok(
      !pipeline.opencx.effects
        .slice(effectsBefore)
        .some((effect) => JSON.stringify(effect.body).includes(String(message.text))),
      'nothing of the refused message reached OpenCX',
    );
  });

  it('given malformed bodies, when posted, then 400 with a JSON error naming the problem', async () => {
    const notArray = await pipeline.postBatch([], { body: '{"portalId":1}' });
    assert.equal(notArray.status, 400);
    assert.match(((await notArray.json()) as { detail: string }).detail, /array/);
    const noPortal = await pipeline.postBatch([], {
      body: JSON.stringify([{ subscriptionType: 'conversation.newMessage' }]),
    });
    assert.equal(noPortal.status, 400);
    assert.match(((await noPortal.json()) as { detail: string }).detail, /portalId/);
    const notJson = await pipeline.postBatch([], { body: 'not json' });
    assert.equal(notJson.status, 400);
  });

  it('given a body over 1 MiB, when posted, then 413', async () => {
    const response = await pipeline.postBatch([], {
      body: JSON.stringify([{ portalId: 1, subscriptionType: 'x', pad: 'x'.repeat(1024 * 1024) }]),
    });
    assert.equal(response.status, 413);
  });
});
