/**
 * Webhook load on a running test pipeline, delivered as HubSpot delivers it, and the checks of
 * what reached OpenCX: the part shared by the specs that break the pipeline's infrastructure
 * under load (kafka-cluster: brokers killed; redis-sentinel-kill: the Redis master killed).
 */
import assert from 'node:assert/strict';
import type { Kafka } from 'kafkajs';
import { topicsFor } from '../../lib/kafka/index.ts';
import * as fixtures from '../fakes/hubspot-fixtures.ts';
import type { FakeOpenCx } from '../fakes/opencx.ts';
import { sleep, waitFor, type TestOrg, type TestPipeline } from './pipeline.ts';
import { readTopicToEnd } from './topic-reader.ts';

export type Attempt = { readonly sentAt: number; readonly answeredAt: number; readonly status: number };
/** A batch from its first attempt to the one answered 200: the delay HubSpot sees. */
export type Batch = { readonly firstSentAt: number; readonly acknowledgedAt: number };

/**
 * A conversation of the fake HubSpot; `next()` is its next customer message as a webhook event,
 * whose text is `<name>#<sequence>` (t3#0, t3#1, ...), so OpenCX's copy says where it belongs.
 */
export type Thread = { readonly name: string; sent: number; next: () => fixtures.NewMessageWebhookEvent };

/** `count` new threads of `org` at the fake HubSpot, named t<first>, t<first + 1>, ... */
export const threadsOf = (pipeline: TestPipeline, org: TestOrg, first: number, count: number): Thread[] =>
  Array.from({ length: count }, (_, offset) => {
    const threadId = fixtures.newThreadId();
    pipeline.hubspot.setThread(fixtures.thread({ id: threadId }), { portalId: org.portalId });
    const thread: Thread = {
      name: `t${first + offset}`,
      sent: 0,
      next: () => {
        const message = fixtures.message({
          threadId,
          kind: 'customer-chat',
          text: `${thread.name}#${thread.sent++}`,
        });
        pipeline.hubspot.addMessage(message, { portalId: org.portalId });
        return fixtures.webhookEventFor(message, { portalId: org.portalId });
      },
    };
    return thread;
  });

/** Posts a batch as HubSpot delivers it: the same events again every 250 ms until answered 200. */
export const deliver = async (
  pipeline: TestPipeline,
  events: readonly fixtures.NewMessageWebhookEvent[],
  attempts: Attempt[],
): Promise<Batch> => {
  const firstSentAt = Date.now();
  for (;;) {
    const sentAt = Date.now();
    const status = await pipeline.postBatch(events).then(
      async (response) => {
        await response.arrayBuffer();
        return response.status;
      },
      () => 0,
    );
    attempts.push({ sentAt, answeredAt: Date.now(), status });
    if (status === 200) return { firstSentAt, acknowledgedAt: Date.now() };
    await sleep(250);
  }
};

/**
 * Webhook load: `senders` concurrent senders, each owning a share of the threads and posting one
 * new message on two of them every ~100 ms. A sender waits for its batch's 200 before the next,
 * so each thread's messages are acknowledged in order.
 */
export const startLoad = (pipeline: TestPipeline, threads: readonly Thread[], senders = 3) => {
  let stopping = false;
  const attempts: Attempt[] = [];
  const batches: Batch[] = [];
  const acknowledged: fixtures.NewMessageWebhookEvent[] = [];
  const sender = async (index: number): Promise<void> => {
    const own = threads.filter((_, position) => position % senders === index);
    for (let round = 0; !stopping; round += 2) {
      const events = [own[round % own.length], own[(round + 1) % own.length]].map((thread) =>
        (thread as Thread).next(),
      );
      batches.push(await deliver(pipeline, events, attempts));
      acknowledged.push(...events);
      await sleep(100);
    }
  };
  const running = Promise.all(Array.from({ length: senders }, (_, index) => sender(index)));
  return {
    attempts,
    batches,
    acknowledged,
    /** Stops sending new messages; resolves once each sender's last batch was answered 200. */
    stop: async (): Promise<void> => {
      stopping = true;
      await running;
    },
  };
};
export type WebhookLoad = ReturnType<typeof startLoad>;

export const statusCounts = (attempts: readonly Attempt[]): Record<string, number> => {
  const counts: Record<string, number> = {};
  for (const { status } of attempts) counts[status] = (counts[status] ?? 0) + 1;
  return counts;
};

export const seconds = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;

/** An answer slower than this counts as disturbed (ingest answers in milliseconds otherwise). */
const SLOW_MS = 1000;

/**
 * What HubSpot saw from `from` on: the answers by status, the longest a batch waited for its 200
 * (retries included), and how long after `from` the last refused or slow (> 1 s) answer came.
 */
export const disturbance = (
  load: { readonly attempts: readonly Attempt[]; readonly batches: readonly Batch[] },
  from: number,
): string => {
  const after = load.attempts.filter((attempt) => attempt.answeredAt >= from);
  const disturbed = after.filter(
    (attempt) => attempt.status !== 200 || attempt.answeredAt - attempt.sentAt > SLOW_MS,
  );
  const lastDisturbed = Math.max(from, ...disturbed.map((attempt) => attempt.answeredAt));
  const slowest = Math.max(
    0,
    ...load.batches
      .filter((batch) => batch.acknowledgedAt >= from)
      .map((batch) => batch.acknowledgedAt - batch.firstSentAt),
  );
  return `answers by status ${JSON.stringify(statusCounts(after))}, ${disturbed.length} refused or slower than ${seconds(SLOW_MS)}, the last ${seconds(lastDisturbed - from)} after; the slowest batch waited ${seconds(slowest)} for its 200`;
};

/** The texts of the messages OpenCX was sent, in the order it got them. */
const sentTexts = (opencx: Pick<FakeOpenCx, 'effects'>): string[] =>
  opencx.effects
    .filter((effect) => effect.kind === 'message-sent')
    .map((effect) => (effect.body as { message: { text: string } }).message.text);

/**
 * The longest time from `from` on with no new message at OpenCX, and when it ended. Measured
 * once the last message sent on each thread is there (or after `timeoutMs`, when one is missing:
 * assertEachOnceInOrder then says which), so a pause still going on is not missed.
 */
export const longestEffectGap = async (
  opencx: Pick<FakeOpenCx, 'effects'>,
  threads: readonly Thread[],
  from: number,
  timeoutMs = 120000,
): Promise<{ gapMs: number; endedAt: number }> => {
  await waitFor(
    'the last message of every thread at OpenCX',
    () => {
      const sent = new Set(sentTexts(opencx));
      return threads.every((thread) => thread.sent === 0 || sent.has(`${thread.name}#${thread.sent - 1}`));
    },
    timeoutMs,
  ).catch(() => undefined);
  const messageTimes = opencx.effects
    .filter((effect) => effect.kind === 'message-sent')
    .map((effect) => effect.at);
  const times = [from, ...messageTimes.filter((at) => at > from)].sort((a, b) => a - b);
  let longest = { gapMs: 0, endedAt: from };
  for (let index = 1; index < times.length; index++) {
    const gapMs = (times[index] as number) - (times[index - 1] as number);
    if (gapMs > longest.gapMs) longest = { gapMs, endedAt: times[index] as number };
  }
  return longest;
};

/**
 * One more message on every thread, then waits for all of them at OpenCX: each comes after any
 * second copy of its thread's earlier messages in the services' per-conversation order, so once
 * they are there the lists are final. Then no text came twice and every thread is in order.
 * `kafka` reads the dead-letter topic when a message is missing, to say whether it was refused
 * (and why) or lost on the way.
 */
export const assertEachOnceInOrder = async (
  pipeline: TestPipeline,
  threads: readonly Thread[],
  kafka: Kafka,
): Promise<void> => {
  const markers = threads.map((thread) => ({ thread, event: thread.next() }));
  const attempts: Attempt[] = [];
  for (let index = 0; index < markers.length; index += 20)
    await deliver(
      pipeline,
      markers.slice(index, index + 20).map(({ event }) => event),
      attempts,
    );
  const texts = (): string[] => sentTexts(pipeline.opencx);
  await waitFor(
    'every thread’s marker at OpenCX',
    () => {
      const sent = new Set(texts());
      return threads.every((thread) => sent.has(`${thread.name}#${thread.sent - 1}`));
    },
    180000,
  );
  const all = texts();
  const duplicates = all.length - new Set(all).size;
  const byThread = new Map<string, number[]>();
  for (const text of all) {
    const [name = '', sequence = ''] = text.split('#');
    byThread.set(name, [...(byThread.get(name) ?? []), Number(sequence)]);
  }
  const outOfOrder = threads.filter((thread) => {
    const sequences = byThread.get(thread.name) ?? [];
    return sequences.some((sequence, index) => index > 0 && sequence <= (sequences[index - 1] as number));
  });
  const missing = threads.reduce(
    (sum, thread) => sum + thread.sent - new Set(byThread.get(thread.name) ?? []).size,
    0,
  );
  console.log(
    `      OpenCX: ${all.length} messages sent, ${missing} missing, ${duplicates} twice, ${outOfOrder.length} threads out of order`,
  );
  if (missing > 0) {
    // What the dead-letter topic holds says whether a missing message was refused (and why)
    // or lost on the way.
    const sent = new Set(all);
    const lost = threads.flatMap((thread) =>
      Array.from({ length: thread.sent }, (_, sequence) => `${thread.name}#${sequence}`).filter(
        (text) => !sent.has(text),
      ),
    );
    const letters = await readTopicToEnd(
      kafka,
      topicsFor(pipeline.env.KAFKA_TOPIC_PREFIX ?? '').deadLetters.name,
    );
    const reasons: Record<string, number> = {};
    for (const letter of letters) {
      const reason = letter.headers?.['dead-letter-reason']?.toString() ?? 'none';
      reasons[reason] = (reasons[reason] ?? 0) + 1;
    }
    console.log(
      `      MISSING at OpenCX: ${lost.slice(0, 10).join(', ')}; dead-letter topic: ${letters.length} letters, by reason ${JSON.stringify(reasons)}`,
    );
  }
  assert.equal(missing, 0, 'every message answered 200 reached OpenCX');
  assert.equal(duplicates, 0, 'no message reached OpenCX twice');
  assert.deepEqual(
    outOfOrder.map((thread) => thread.name),
    [],
    'each thread in order',
  );
};

/**
 * State-changing requests that reached OpenCX with an Idempotency-Key (of the same API key) it
 * had seen before: copies the fake answered from the stored first answer, adding no effect. Sent
 * again by a retry of the outbound client, or by a redelivery of the event it carries.
 */
export const repeatedIdempotencyKeys = (
  opencx: Pick<FakeOpenCx, 'requests'>,
): { readonly total: number; readonly messageSends: number } => {
  const seen = new Set<string>();
  let total = 0;
  let messageSends = 0;
  for (const request of opencx.requests) {
    const key = request.headers['idempotency-key'];
    if (request.method === 'GET' || typeof key !== 'string') continue;
    const scope = `${request.headers.authorization ?? ''}\u0000${key}`;
    if (!seen.has(scope)) {
      seen.add(scope);
      continue;
    }
    total++;
    if (request.path.endsWith('/send')) messageSends++;
  }
  return { total, messageSends };
};
