import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import * as fixtures from '../fakes/hubspot-fixtures.ts';
import {
  startTestPipeline,
  sumCounter,
  waitFor,
  type TestOrg,
  type TestPipeline,
} from '../support/pipeline.ts';
import { kill, spawnService } from '../support/processes.ts';

/**
 * Portal A's backlog in the first test: 2,000 in npm test (its 15-minute budget); the
 * consumer-level test (tenant-parking.int.spec.ts) parks 20,000. `TENANT_ISOLATION_EVENTS=20000
 * npx mocha test/integration/tenant-isolation.int.spec.ts` runs the pipeline with 20,000 (about
 * 45 s on a quiet 2-core machine; passed).
 */
const A_EVENTS = Number(process.env.TENANT_ISOLATION_EVENTS ?? 2000);
const A_THREADS = 40;

/** Texts OpenCX received per organisation's API key, in arrival order. */
const sentTexts = (pipeline: TestPipeline, org: TestOrg): string[] =>
  pipeline.opencx.effects
    .filter(
      (effect) =>
        effect.kind === 'message-sent' &&
        pipeline.opencx.sessions.get(effect.sessionId)?.apiKey === org.apiKey,
    )
    .map((effect) => (effect.body as { message: { text: string } }).message.text);

const scrape = async (child: { metricsPort: number }, name: string, labels: Record<string, string> = {}) =>
  sumCounter(await (await fetch(`http://127.0.0.1:${child.metricsPort}/metrics`)).text(), name, labels);

/**
 * Texts are `<thread>#<sequence>`: every thread's texts are 0..n-1 in order, each exactly once.
 */
const assertEachOnceInOrder = (texts: readonly string[], threads: number, perThread: number): void => {
  assert.equal(new Set(texts).size, texts.length, 'no message applied twice');
  const byThread = new Map<string, number[]>();
  for (const text of texts) {
    const [thread = '', sequence = ''] = text.split('#');
    byThread.set(thread, [...(byThread.get(thread) ?? []), Number(sequence)]);
  }
  assert.equal(byThread.size, threads, 'every thread');
  for (const [thread, sequences] of byThread)
    assert.deepEqual(
      sequences,
      Array.from({ length: perThread }, (_, index) => index),
      `${thread}: in order, none missing`,
    );
};

/**
 * `threads` conversations of `org` in the fake HubSpot. `messages(from, to)`: each thread's
 * customer messages `from` to `to - 1` (texts `<name><thread>#<sequence>`), as webhook events.
 */
const conversations = (pipeline: TestPipeline, org: TestOrg, name: string, threads: number) => {
  const threadIds = Array.from({ length: threads }, () => fixtures.newThreadId());
  for (const threadId of threadIds)
    pipeline.hubspot.setThread(fixtures.thread({ id: threadId }), { portalId: org.portalId });
  return {
    messages(from: number, to: number): fixtures.NewMessageWebhookEvent[] {
      const events: fixtures.NewMessageWebhookEvent[] = [];
      for (let sequence = from; sequence < to; sequence++)
        for (const [index, threadId] of threadIds.entries()) {
          const message = fixtures.message({
            threadId,
            kind: 'customer-chat',
            text: `${name}${index}#${sequence}`,
          });
          pipeline.hubspot.addMessage(message, { portalId: org.portalId });
          events.push(fixtures.webhookEventFor(message, { portalId: org.portalId }));
        }
      return events;
    },
  };
};

const postAll = async (pipeline: TestPipeline, events: readonly object[]): Promise<void> => {
  for (let index = 0; index < events.length; index += 100) {
    const response = await pipeline.postBatch(events.slice(index, index + 100));
    assert.equal(response.status, 200, await response.text());
  }
};

/**
 * Posts one more message on each thread and waits for all of them at OpenCX. Each comes after
 * any second copy of its thread's earlier messages in both services' per-conversation order, so
 * once they are all there the thread's list is final: a positive signal instead of a sleep.
 */
const postMarkers = async (
  pipeline: TestPipeline,
  org: TestOrg,
  threads: { messages: (from: number, to: number) => fixtures.NewMessageWebhookEvent[] },
  name: string,
  count: number,
  sequence: number,
): Promise<void> => {
  await postAll(pipeline, threads.messages(sequence, sequence + 1));
  const markers = Array.from({ length: count }, (_, index) => `${name}${index}#${sequence}`);
  await waitFor(
    `the ${count} markers of ${name} at OpenCX`,
    () => {
      const sent = new Set(sentTexts(pipeline, org));
      return markers.every((marker) => sent.has(marker));
    },
    60000,
  );
};

/**
 * Issue 8 on the whole pipeline (real broker, registry and Redis; fake HubSpot and OpenCX): one
 * tenant's trouble, of any size or length, does not reach another, survives kill -9 of the
 * service holding it, and loses nothing, applies nothing twice, keeps each thread's order.
 */
describe('tenant isolation: a waiting tenant is parked, others flow (real Kafka)', function () {
  this.timeout(240000);
  let pipeline: TestPipeline;
  const children: ChildProcess[] = [];
  afterEach(async () => {
    await Promise.all(children.splice(0).map(kill));
    await pipeline?.stop();
  });

  it(`given ${A_EVENTS} of portal A’s messages waiting on its HubSpot budget on the partition portal B uses, then B flows; after a kill -9 of the processor, A’s come through once and in order`, async () => {
    pipeline = await startTestPipeline({
      processor: false,
      env: {
        // One partition: A's backlog is in front of every B message.
        KAFKA_PARTITIONS: '1',
        HUBSPOT_RATE_LIMIT_MAX: '20',
        HUBSPOT_RATE_LIMIT_WINDOW_MS: '10000',
        PARK_AFTER_MS: '300',
        PARK_PROBE_INITIAL_MS: '1000',
        // OpenCX's own per-organisation limit (50/s by default) is not what is tested here.
        OPENCX_RATE_LIMIT_MAX: '100000',
      },
    });
    pipeline.opencx.setAiResponder(() => null);
    const orgA = await pipeline.createOrg();
    const orgB = await pipeline.createOrg();
    const first = await spawnService('processor', pipeline.env);
    children.push(first);

    const threadsA = conversations(pipeline, orgA, 'a', A_THREADS);
    await postAll(pipeline, threadsA.messages(0, A_EVENTS / A_THREADS));
    await postAll(pipeline, conversations(pipeline, orgB, 'b', 5).messages(0, 4));
    await waitFor('all of B’s 20 messages at OpenCX', () => sentTexts(pipeline, orgB).length >= 20, 60000);
    // Order, not a stopwatch: B's messages are behind all of A's in the partition, and they were
    // all applied while most of A's still waited.
    const aBefore = sentTexts(pipeline, orgA).length;
    assert.ok(aBefore < 500, `${aBefore} of A's applied: A was not waiting on its budget`);
    assert.ok(
      (await scrape(first, 'processor_parked_messages_total')) >= A_EVENTS * 0.9,
      'A’s messages parked, not held',
    );
    assertEachOnceInOrder(sentTexts(pipeline, orgB), 5, 4);

    // kill -9 while A is parked; the new processor finds A's cursor in the commit. HubSpot's
    // budget is raised for it (as an operator would after a higher limit is granted) so the
    // whole backlog can be checked within the test.
    await kill(first);
    const second = await spawnService('processor', { ...pipeline.env, HUBSPOT_RATE_LIMIT_MAX: '100000' });
    children.push(second);
    await waitFor(
      `all of A’s ${A_EVENTS} at OpenCX`,
      () => sentTexts(pipeline, orgA).length >= A_EVENTS,
      150_000,
    );
    await postMarkers(pipeline, orgA, threadsA, 'a', A_THREADS, A_EVENTS / A_THREADS);
    assertEachOnceInOrder(sentTexts(pipeline, orgA), A_THREADS, A_EVENTS / A_THREADS + 1);
  });

  it('given one organisation’s OpenCX answering 503 far past the retry budget, then others flow, nothing is dead-lettered, and after a kill -9 of outbound every message arrives once and in order', async () => {
    pipeline = await startTestPipeline({
      outbound: false,
      env: {
        OPENCX_RETRY_ATTEMPTS: '3',
        OPENCX_RETRY_INITIAL_MS: '50',
        OPENCX_RETRY_MAX_MS: '200',
        PARK_PROBE_INITIAL_MS: '500',
        PARK_PROBE_MAX_MS: '1000',
      },
    });
    pipeline.opencx.setAiResponder(() => null);
    const orgC = await pipeline.createOrg();
    const orgD = await pipeline.createOrg();
    const first = await spawnService('outbound', pipeline.env);
    children.push(first);
    // Down until the test ends the outage (after the kill): a condition, not a clock.
    pipeline.opencx.failApiKeyUntil(orgC.apiKey, Number.MAX_SAFE_INTEGER);

    const threadsC = conversations(pipeline, orgC, 'c', 10);
    const threadsD = conversations(pipeline, orgD, 'd', 5);
    await postAll(pipeline, threadsC.messages(0, 5));
    // Every one of C's 50 reaches the park (none dropped, none dead-lettered, none held in a
    // retry loop); D has sent nothing yet, so these are all C's.
    await waitFor(
      'all of C’s 50 parked',
      async () => (await scrape(first, 'outbound_parked_messages_total')) >= 50,
      30000,
    );
    await postAll(pipeline, threadsD.messages(0, 4));
    await waitFor('all of D’s 20 at OpenCX', () => sentTexts(pipeline, orgD).length >= 20, 30000);
    assert.equal(await scrape(first, 'outbound_dead_letters_total'), 0, 'an outage is not dead-lettered');

    await kill(first);
    const second = await spawnService('outbound', pipeline.env);
    children.push(second);
    await waitFor(
      'C parked again by the new outbound',
      async () => (await scrape(second, 'outbound_parked_messages_total')) > 0,
      30000,
    );
    // C's parked messages outlived the kill: the new outbound reads them again from the cursor
    // in the commit and, C still down, parks them again.
    await waitFor(
      'C’s parked messages read again by the new outbound',
      async () => (await scrape(second, 'outbound_parked_messages_replayed_total')) > 0,
      30000,
    );
    pipeline.opencx.failApiKeyUntil(orgC.apiKey, Date.now());
    await waitFor(
      'all of C’s 50 at OpenCX after the outage',
      () => sentTexts(pipeline, orgC).length >= 50,
      90000,
    );
    await postMarkers(pipeline, orgC, threadsC, 'c', 10, 5);
    await postMarkers(pipeline, orgD, threadsD, 'd', 5, 4);
    assertEachOnceInOrder(sentTexts(pipeline, orgC), 10, 6);
    assertEachOnceInOrder(sentTexts(pipeline, orgD), 5, 5);
    assert.equal(await scrape(second, 'outbound_dead_letters_total'), 0, 'an outage is not dead-lettered');
    const sessions = pipeline.opencx.effects.filter(
      (effect) =>
        effect.kind === 'session-created' &&
        pipeline.opencx.sessions.get(effect.sessionId)?.apiKey === orgC.apiKey,
    );
    assert.equal(sessions.length, 10, 'one session per thread');
  });
});
