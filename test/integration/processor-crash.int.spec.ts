import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import * as fixtures from '../fakes/hubspot-fixtures.ts';
import { sleep, startTestPipeline, waitFor, type TestOrg, type TestPipeline } from '../support/pipeline.ts';
import { kill, spawnService } from '../support/processes.ts';

describe('processor killed between its dedup claim and its emit', function () {
  this.timeout(120000);
  let pipeline: TestPipeline;
  let org: TestOrg;
  const children: ChildProcess[] = [];

  before(async () => {
    pipeline = await startTestPipeline({ processor: false });
    org = await pipeline.createOrg();
  });
  after(async () => {
    await Promise.all(children.map(kill));
    await pipeline?.stop();
  });

  it('given a processor SIGKILLed after claiming, when a new one starts, then OpenCX gets the message exactly once', async () => {
    const message = fixtures.message({ kind: 'customer-chat', text: 'Do not lose me' });
    pipeline.hubspot.addMessage(message, { portalId: org.portalId });
    // The re-fetch comes after the claim and before the emit: holding it holds the processor there.
    const held = pipeline.hubspot.hold(new RegExp(`/messages/${message.id}$`));

    const first = await spawnService('processor', pipeline.env);
    children.push(first);
    assert.equal(
      (await pipeline.postBatch([fixtures.webhookEventFor(message, { portalId: org.portalId })])).status,
      200,
    );
    await held.arrived;
    await kill(first);
    held.release();
    await sleep(500);
    assert.equal(
      pipeline.opencx.effects.filter((effect) => effect.kind === 'message-sent').length,
      0,
      'nothing was emitted before the kill',
    );

    children.push(await spawnService('processor', pipeline.env));
    await waitFor(
      'the message to reach OpenCX after the restart',
      () => pipeline.opencx.effects.some((effect) => effect.kind === 'message-sent'),
      60000,
    );
    // A marker on the same thread follows any second copy in per-conversation order.
    const marker = fixtures.message({
      kind: 'customer-chat',
      threadId: message.conversationsThreadId,
      text: 'Marker after the kill',
    });
    pipeline.hubspot.addMessage(marker, { portalId: org.portalId });
    assert.equal(
      (await pipeline.postBatch([fixtures.webhookEventFor(marker, { portalId: org.portalId })])).status,
      200,
    );
    await waitFor(
      'the marker at OpenCX',
      () =>
        pipeline.opencx.effects.some(
          (effect) =>
            effect.kind === 'message-sent' &&
            (effect.body as { message: { text: string } }).message.text === 'Marker after the kill',
        ),
      60000,
    );
    const sent = pipeline.opencx.effects.filter(
      (effect) =>
        effect.kind === 'message-sent' &&
        (effect.body as { message: { text: string } }).message.text === 'Do not lose me',
    );
    assert.equal(sent.length, 1, 'delivered exactly once');
    assert.equal(pipeline.opencx.sessions.get(sent[0]?.sessionId ?? '')?.messages[0]?.text, 'Do not lose me');
  });
});
