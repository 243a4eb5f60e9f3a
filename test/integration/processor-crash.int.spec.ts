import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import * as fixtures from '../fakes/hubspot-fixtures.ts';
import { sleep, startTestPipeline, waitFor, type TestOrg, type TestPipeline } from '../support/pipeline.ts';

const processorEntry = fileURLToPath(new URL('../../services/processor/src/main.ts', import.meta.url));

const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });

/** The processor as its own OS process, so the test can SIGKILL it for real. */
const spawnProcessor = async (env: Record<string, string>): Promise<ChildProcess> => {
  const port = await freePort();
  const child = spawn(process.execPath, [processorEntry], { env: { ...process.env, ...env, METRICS_PORT: String(port) }, stdio: ['ignore', 'ignore', 'inherit'] });
  await waitFor('the processor process to serve /healthz', async () => {
    if (child.exitCode !== null) throw new Error(`processor exited with ${child.exitCode}`);
    return fetch(`http://127.0.0.1:${port}/healthz`).then((response) => response.ok, () => false);
  }, 60000);
  return child;
};

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
    for (const child of children) child.kill('SIGKILL');
    await pipeline?.stop();
  });

  it('given a processor SIGKILLed after claiming, when a new one starts, then OpenCX gets the message exactly once', async () => {
    const message = fixtures.message({ kind: 'customer-chat', text: 'Do not lose me' });
    pipeline.hubspot.addMessage(message, { portalId: org.portalId });
    // The re-fetch comes after the claim and before the emit: holding it holds the processor there.
    const held = pipeline.hubspot.hold(new RegExp(`/messages/${message.id}$`));

    const first = await spawnProcessor(pipeline.env);
    children.push(first);
    assert.equal((await pipeline.postBatch([fixtures.webhookEventFor(message, { portalId: org.portalId })])).status, 200);
    await held.arrived;
    first.kill('SIGKILL');
    await new Promise((resolve) => first.once('exit', resolve));
    held.release();
    await sleep(500);
    assert.equal(pipeline.opencx.effects.filter((effect) => effect.kind === 'message-sent').length, 0, 'nothing was emitted before the kill');

    children.push(await spawnProcessor(pipeline.env));
    await waitFor('the message to reach OpenCX after the restart', () => pipeline.opencx.effects.some((effect) => effect.kind === 'message-sent'), 60000);
    await sleep(3000);
    const sent = pipeline.opencx.effects.filter((effect) => effect.kind === 'message-sent');
    assert.equal(sent.length, 1, 'delivered exactly once');
    assert.equal(pipeline.opencx.sessions.get(sent[0]?.sessionId ?? '')?.messages[0]?.text, 'Do not lose me');
  });
});
