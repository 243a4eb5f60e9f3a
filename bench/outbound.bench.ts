/**
 * Outbound throughput (issue 4): customer-message domain events/s applied to the fake OpenCX
 * (every answer delayed 20 ms, setLatency(20)) by ONE outbound replica, and its apply latency
 * (outbound_apply_seconds), against the same events applied strictly one at a time by a loop
 * calling the same OpenCX client through the same applyDomainEvent. The difference is what
 * per-conversation parallelism buys.
 *
 * The events (BENCH_EVENTS=2000 on BENCH_THREADS=200 threads across BENCH_ORGS=4 orgs, Avro,
 * keyed by orderingKeyOf) are on the domain topic before outbound starts: the figure is drain
 * throughput. Runs alternate outbound / sequential; medians of BENCH_RUNS (3) each.
 * The per-org OpenCX limit (OPENCX_RATE_LIMIT_MAX, 50/s by default) and the per-portal HubSpot
 * limit are raised for the measured runs; BENCH_DEFAULT_LIMITS=1 adds one run with the defaults.
 * Outbound runs as its own process (`node services/outbound/src/main.ts`), as deployed, so it does
 * not share an event loop with the fake OpenCX (which validates every request against its
 * OpenAPI document); BENCH_OUTBOUND_IN_PROCESS=1 runs it in the bench's process instead.
 * BENCH_OUTBOUND_NODE_OPTIONS is its NODE_OPTIONS (e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof"). Its CPU
 * ms/event is its process's CPU time over the drain divided by the events. The figure is also
 * compared with the per-thread ordering limit: each thread's events one after another, each one
 * OpenCX call (the first two: the session is created first).
 *
 *   node bench/outbound.bench.ts
 */
import { applyDomainEvent, type ApplyDeps } from '../services/outbound/src/apply-domain-event.ts';
import { createOpenCxApi, type OpenCxApi } from '../services/outbound/src/opencx/client.ts';
import { createHubSpotApi, type HubSpotApi } from '../lib/hubspot/index.ts';
import { createDurableProducer, createKafka, topicsFor } from '../lib/kafka/index.ts';
import { deriveEventId, OrgId, PortalId } from '../lib/ids.ts';
import { orderingKeyOf, type CustomerMessage } from '../lib/domain-events.ts';
import { createLogger } from '../lib/log.ts';
import type { Org } from '../lib/orgs/index.ts';
import { AvroCodec } from '../lib/registry.ts';
import { withRetry } from '../lib/retry.ts';
import { threadLinkKey, ticketLinkKey, type SessionLink } from '../lib/session-links.ts';
import * as fixtures from '../test/fakes/hubspot-fixtures.ts';
import { startTestPipeline, type TestOrg, type TestPipeline } from '../test/support/pipeline.ts';
import { spawnService, stopGracefully } from '../test/support/processes.ts';
import { heldTicketsInMemory } from '../test/support/held-tickets.ts';
import {
  benchInfra,
  cleanUpRun,
  envInt,
  fmt,
  histogramBucketBound,
  histogramCountAbove,
  histogramQuantile,
  measureWithOneRetry,
  median,
  newRunPrefixes,
  percentile,
  pipelineEnv,
  printTable,
  processCpuMs,
  progress,
  scrape,
  sumOf,
  waitUntil,
  type Sample,
} from './support.ts';

const TOTAL = envInt('BENCH_EVENTS', 2000);
const THREADS = envInt('BENCH_THREADS', 200);
const ORGS = envInt('BENCH_ORGS', 4);
const RUNS = envInt('BENCH_RUNS', 3);
const LATENCY_MS = envInt('BENCH_OPENCX_LATENCY_MS', 20);
const DEFAULT_LIMITS = process.env.BENCH_DEFAULT_LIMITS === '1';
const TIMEOUT_MS = envInt('BENCH_TIMEOUT_MS', 300_000);
const WARM_UP_EVENTS = envInt('BENCH_WARMUP_EVENTS', 300);
/** Events each outbound replica applies, on conversations of their own, before the measured ones. */
const PROCESS_WARM_UP_EVENTS = envInt('BENCH_PROCESS_WARMUP_EVENTS', 10_000);
/** For profiling one side: BENCH_ONLY=outbound or BENCH_ONLY=sequential. */
const ONLY = process.env.BENCH_ONLY;
const IN_PROCESS = process.env.BENCH_OUTBOUND_IN_PROCESS === '1';
const infra = benchInfra();
const logger = createLogger('bench-outbound', 'silent');
const RAISED_LIMITS = { OPENCX_RATE_LIMIT_MAX: '1000000', HUBSPOT_RATE_LIMIT_MAX: '1000000' };
const APPLY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

type BenchOrg = { readonly orgId: string; readonly portalId: number };
const orgs: BenchOrg[] = Array.from({ length: ORGS }, (_, index) => ({
  orgId: `bench-org-${index}`,
  portalId: 93_000_001 + index,
}));
type BenchThread = { readonly threadId: string; readonly org: BenchOrg };
const threadsOf = (count: number): BenchThread[] =>
  Array.from({ length: count }, (_, index) => ({
    threadId: fixtures.newThreadId(),
    org: orgs[index % orgs.length] ?? orgs[0]!,
  }));
const threads = threadsOf(THREADS);
/** Conversations of the replica's own warm-up (PROCESS_WARM_UP_EVENTS), apart from the measured ones. */
const warmUpThreads = threadsOf(Math.min(THREADS, 200));

/** Round-robin over threads, so every partition carries many conversations at once. */
const buildEvents = (count = TOTAL, on: readonly BenchThread[] = threads): CustomerMessage[] =>
  Array.from({ length: count }, (_, index) => {
    const thread = on[index % on.length] ?? on[0]!;
    const messageId = fixtures.newMessageId();
    return {
      type: 'customer-message',
      eventId: deriveEventId('customer-message', thread.org.orgId, messageId),
      orgId: thread.org.orgId,
      portalId: thread.org.portalId,
      threadId: thread.threadId,
      occurredAt: Date.now(),
      messageId,
      text: `bench customer message ${index}`,
      subject: null,
      channelId: fixtures.LIVE_CHAT_CHANNEL_ID,
      channelAccountId: '240183460',
      channelType: 'web',
      senderActorId: 'V-48710712',
      senderName: 'Jane Visitor',
      senderDeliveryType: 'CHANNEL_SPECIFIC_OPAQUE_ID',
      senderDeliveryValue: 'a3f1c2d4-visitor-session',
    };
  });

type Prepared = {
  pipeline: TestPipeline;
  prefixes: ReturnType<typeof newRunPrefixes>;
  created: Map<string, TestOrg>;
};

/** Fresh prefixes, ingest (for the admin API) and the fakes; OpenCX slowed, AI answers off. */
const prepare = async (env: Record<string, string>): Promise<Prepared> => {
  const prefixes = newRunPrefixes('outbound');
  const pipeline = await startTestPipeline({
    processor: false,
    outbound: false,
    env: pipelineEnv(prefixes, env),
  });
  const created = new Map<string, TestOrg>();
  for (const org of orgs)
    created.set(org.orgId, await pipeline.createOrg({ orgId: org.orgId, portalId: org.portalId }));
  for (const thread of [...threads, ...warmUpThreads])
    pipeline.hubspot.setThread(fixtures.thread({ id: thread.threadId }), { portalId: thread.org.portalId });
  pipeline.opencx.setLatency(LATENCY_MS);
  // No ai-reply leg: the figure is the domain path (the loop does not post replies either).
  pipeline.opencx.setAiResponder(() => null);
  return { pipeline, prefixes, created };
};

type RunResult = {
  readonly kind: 'outbound' | 'sequential' | 'outbound, default limits';
  readonly eventsPerSecond: number;
  readonly seconds: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly exactP99Ms: number;
  /** Upper bound of the histogram bucket holding p99: the interpolated p99 is only this precise. */
  readonly p99BucketMs: number;
  /** Events whose apply took over 1 s. */
  readonly overOneSecond: number;
  readonly messagesSent: number;
  readonly sessions: number;
  /** The outbound process's CPU over the drain per event (NaN in the bench's process or for the loop). */
  readonly cpuMsPerEvent: number;
  /** A new thread's session set-up (see sessionSetUp). */
  readonly setUp: SetUp;
  readonly problems: string;
};

/**
 * Per new thread, from OpenCX seeing the session create to seeing the thread's first message
 * (total), split at the ticket look-up arriving at HubSpot: create → look-up is the create call
 * (LATENCY_MS) and the look-up's own wait; look-up → first send is the look-up answer and the
 * durable link write (SessionLinks.write) before the message goes out.
 */
type SetUp = { readonly total: number[]; readonly createToLookUp: number[]; readonly lookUpToSend: number[] };
const sessionSetUp = (pipeline: TestPipeline, since = 0): SetUp => {
  const createdAt = new Map<string, number>();
  const firstSendAt = new Map<string, number>();
  const lookedUpAt = new Map<string, number>();
  for (const request of pipeline.opencx.requests) {
    if (request.method === 'POST' && request.path === '/chat/sessions') {
      const threadId = (request.body as { custom_data?: { hubspot_thread_id?: string } }).custom_data
        ?.hubspot_thread_id;
      if (threadId !== undefined && !createdAt.has(threadId)) createdAt.set(threadId, request.at);
      continue;
    }
    const sessionId = /^\/chat\/sessions\/([^/]+)\/send$/.exec(request.path)?.[1];
    if (sessionId !== undefined && !firstSendAt.has(sessionId)) firstSendAt.set(sessionId, request.at);
  }
  for (const request of pipeline.hubspot.requests) {
    const threadId = /^\/conversations\/v3\/conversations\/threads\/([^/]+)$/.exec(request.path)?.[1];
    if (request.method === 'GET' && threadId !== undefined && !lookedUpAt.has(threadId))
      lookedUpAt.set(threadId, request.at);
  }
  const setUp: SetUp = { total: [], createToLookUp: [], lookUpToSend: [] };
  for (const session of pipeline.opencx.sessions.values()) {
    const threadId = session.customData.hubspot_thread_id ?? '';
    const created = createdAt.get(threadId);
    const lookedUp = lookedUpAt.get(threadId);
    const sent = firstSendAt.get(session.id);
    if (created === undefined || sent === undefined || created < since) continue;
    setUp.total.push(sent - created);
    if (lookedUp === undefined) continue;
    setUp.createToLookUp.push(lookedUp - created);
    setUp.lookUpToSend.push(sent - lookedUp);
  }
  return setUp;
};

/** From the first request OpenCX saw to the last message it stored. */
const span = (pipeline: TestPipeline, since = 0): { seconds: number; sent: number; sessions: number } => {
  const sent = pipeline.opencx.effects.filter(
    (effect) => effect.kind === 'message-sent' && effect.at >= since,
  );
  const first = pipeline.opencx.requests.find((request) => request.at >= since)?.at ?? 0;
  const last = sent.at(-1)?.at ?? first;
  return { seconds: (last - first) / 1000, sent: sent.length, sessions: pipeline.opencx.sessions.size };
};

const problemsOf = (pipeline: TestPipeline, threadCount: number, samples: readonly Sample[] = []): string => {
  const found = [
    pipeline.opencx.violations.length > 0 ? `${pipeline.opencx.violations.length} contract violations` : '',
    sumOf(samples, 'outbound_retries_total') > 0 ? `${sumOf(samples, 'outbound_retries_total')} retries` : '',
    sumOf(samples, 'outbound_dead_letters_total') > 0
      ? `${sumOf(samples, 'outbound_dead_letters_total')} dead letters`
      : '',
    pipeline.opencx.sessions.size !== threadCount
      ? `${pipeline.opencx.sessions.size} sessions for ${threadCount} threads`
      : '',
  ].filter((text) => text !== '');
  return found.length === 0 ? 'none' : found.join(', ');
};

const runOutbound = async (events: readonly CustomerMessage[], defaults: boolean): Promise<RunResult> => {
  const { pipeline, prefixes } = await prepare(defaults ? {} : RAISED_LIMITS);
  let child: Awaited<ReturnType<typeof spawnService>> | undefined;
  const kafka = createKafka({
    clientId: 'bench-outbound-producer',
    brokers: infra.kafkaBrokers.split(','),
    logger,
  });
  const producer = createDurableProducer(kafka);
  try {
    const codec = new AvroCodec({ url: infra.schemaRegistryUrl, subjectPrefix: prefixes.topicPrefix });
    await codec.registerAll();
    await producer.connect();
    const topic = topicsFor(prefixes.topicPrefix).domainEvents.name;
    const produce = async (list: readonly CustomerMessage[]): Promise<void> => {
      for (let index = 0; index < list.length; index += 500) {
        const messages = await Promise.all(
          list.slice(index, index + 500).map(async (event) => ({
            key: orderingKeyOf(event),
            value: await codec.encodeEvent(event),
            headers: { 'event-type': event.type, 'event-id': event.eventId },
          })),
        );
        await producer.sendBatch({ topicMessages: [{ topic, messages }], acks: -1 });
      }
    };
    const sentSince = (since: number): number =>
      pipeline.opencx.effects.filter((effect) => effect.kind === 'message-sent' && effect.at >= since).length;
    const waitForSent = async (what: string, since: number, count: number): Promise<void> => {
      let lastReport = Date.now();
      await waitUntil(
        what,
        () => {
          const sent = sentSince(since);
          if (Date.now() - lastReport > 2000) {
            progress(`  … ${sent}/${count} messages sent to OpenCX`);
            lastReport = Date.now();
          }
          return sent >= count;
        },
        TIMEOUT_MS,
        20,
      );
    };

    const extraEnv = defaults ? {} : RAISED_LIMITS;
    const outbound = IN_PROCESS
      ? await pipeline.startOutbound(extraEnv)
      : (child = await spawnService('outbound', {
          ...pipeline.env,
          ...extraEnv,
          NODE_OPTIONS: process.env.BENCH_OUTBOUND_NODE_OPTIONS ?? '',
        }));
    // The replica's own warm-up, on other conversations: a running replica's JIT is warm, and
    // its group is joined; a fresh process's first second is neither.
    const warmUp = buildEvents(PROCESS_WARM_UP_EVENTS, warmUpThreads);
    if (warmUp.length > 0) {
      await produce(warmUp);
      await waitForSent('the warm-up at OpenCX', 0, warmUp.length);
    }
    const before = await scrape(outbound.metricsPort);
    const pid = child?.pid;
    const cpuBefore = pid === undefined ? Number.NaN : processCpuMs(pid);
    const since = Date.now();
    await produce(events);
    progress(`  ${events.length} customer-message events on ${topic}`);
    await waitForSent('every message sent to OpenCX', since, events.length);
    const cpuMs = pid === undefined ? Number.NaN : processCpuMs(pid) - cpuBefore;
    const measured = span(pipeline, since);
    const setUp = sessionSetUp(pipeline, since);
    const all = await scrape(outbound.metricsPort);
    const samples = minus(all, before);
    const threadCount = new Set([...events, ...warmUp].map((event) => event.threadId)).size;
    const measuredThreads = new Set(events.map((event) => event.threadId));
    return {
      kind: defaults ? 'outbound, default limits' : 'outbound',
      eventsPerSecond: events.length / measured.seconds,
      seconds: measured.seconds,
      p50Ms: histogramQuantile(samples, 'outbound_apply_seconds', 0.5) * 1000,
      p99Ms: histogramQuantile(samples, 'outbound_apply_seconds', 0.99) * 1000,
      exactP99Ms: Number.NaN,
      p99BucketMs: histogramBucketBound(samples, 'outbound_apply_seconds', 0.99) * 1000,
      overOneSecond: histogramCountAbove(samples, 'outbound_apply_seconds', 1),
      messagesSent: measured.sent,
      sessions: [...pipeline.opencx.sessions.values()].filter((session) =>
        measuredThreads.has(session.customData.hubspot_thread_id ?? ''),
      ).length,
      cpuMsPerEvent: cpuMs / events.length,
      setUp,
      problems: problemsOf(pipeline, threadCount, all),
    };
  } finally {
    await producer.disconnect().catch(() => undefined);
    if (child) await stopGracefully(child, 10_000);
    await pipeline.stop();
    await cleanUpRun(infra, prefixes);
  }
};

/** Each sample's value less its value in `before` (same name and labels): what a window added. */
const minus = (after: readonly Sample[], before: readonly Sample[]): Sample[] => {
  const keyOf = (sample: Sample) => `${sample.name}${JSON.stringify(sample.labels)}`;
  const earlier = new Map(before.map((sample) => [keyOf(sample), sample.value]));
  return after.map((sample) => ({ ...sample, value: sample.value - (earlier.get(keyOf(sample)) ?? 0) }));
};

/** The same applyDomainEvent and OpenCX client, one event at a time, links kept in memory. */
const runSequential = async (events: readonly CustomerMessage[]): Promise<RunResult> => {
  const { pipeline, prefixes, created } = await prepare(RAISED_LIMITS);
  try {
    const orgById = new Map<string, Org>();
    for (const org of orgs) {
      const made = created.get(org.orgId)!;
      orgById.set(org.orgId, {
        orgId: OrgId(org.orgId),
        deleted: false,
        updatedAt: Date.now(),
        hubspot: {
          portalId: PortalId(org.portalId),
          aiActorId: made.aiActorId,
          defaultOwnerActorId: 'A-222',
          accessToken: made.accessToken,
          refreshToken: undefined,
          tokenExpiresAt: undefined,
          privateAppClientSecret: undefined,
          reconnectRequired: false,
        },
        opencx: { apiKey: made.apiKey },
        settings: { assistMode: false, ticketingEnabled: true },
        webhookToken: 'unused',
      });
    }
    const links = new Map<string, SessionLink>();
    const openCx = new Map<string, OpenCxApi>();
    const hubspot = new Map<string, HubSpotApi>();
    const deps: ApplyDeps = {
      orgs: { byId: (orgId) => orgById.get(orgId) },
      links: {
        forThread: (orgId, threadId) => links.get(threadLinkKey(orgId, threadId)),
        forTicket: (orgId, ticketId) => links.get(ticketLinkKey(orgId, ticketId)),
        write: async (entries) => {
          for (const { key, link } of entries) links.set(key, link);
        },
      },
      owedTicketLookUps: { owe: async () => undefined, settle: async () => undefined },
      held: heldTicketsInMemory().deps,
      openCxFor: (org) => {
        const api =
          openCx.get(org.orgId) ??
          createOpenCxApi({ baseUrl: pipeline.opencx.url, apiKey: org.opencx.apiKey, timeoutMs: 10000 });
        openCx.set(org.orgId, api);
        return api;
      },
      hubspotFor: (org) => {
        const api =
          hubspot.get(org.orgId) ??
          createHubSpotApi({
            baseUrl: pipeline.hubspot.url,
            accessToken: org.hubspot.accessToken ?? '',
            timeoutMs: 10000,
          });
        hubspot.set(org.orgId, api);
        return api;
      },
      emitAiReply: async () => undefined,
      sessionsCreated: { inc: () => undefined },
      retry: (_target, work) => withRetry({ attempts: 8, initialDelayMs: 20, maxDelayMs: 200 }, work),
      logger,
      now: Date.now,
    };
    const latencies: number[] = [];
    let lastReport = Date.now();
    for (const [index, event] of events.entries()) {
      const started = performance.now();
      await applyDomainEvent(event, deps);
      latencies.push((performance.now() - started) / 1000);
      if (Date.now() - lastReport > 5000) {
        progress(`  … ${index + 1}/${events.length} applied`);
        lastReport = Date.now();
      }
    }
    const measured = span(pipeline);
    const setUp = sessionSetUp(pipeline);
    // Bucketed like outbound_apply_seconds, so both p99s have the same resolution.
    const bucketSamples: Sample[] = [...APPLY_BUCKETS, Number.POSITIVE_INFINITY].map((bound) => ({
      name: 'apply_bucket',
      labels: { le: Number.isFinite(bound) ? String(bound) : '+Inf' },
      value: latencies.filter((latency) => latency <= bound).length,
    }));
    return {
      kind: 'sequential',
      eventsPerSecond: events.length / measured.seconds,
      seconds: measured.seconds,
      p50Ms: histogramQuantile(bucketSamples, 'apply', 0.5) * 1000,
      p99Ms: histogramQuantile(bucketSamples, 'apply', 0.99) * 1000,
      exactP99Ms: percentile(latencies, 99) * 1000,
      p99BucketMs: histogramBucketBound(bucketSamples, 'apply', 0.99) * 1000,
      overOneSecond: latencies.filter((latency) => latency > 1).length,
      messagesSent: measured.sent,
      sessions: measured.sessions,
      cpuMsPerEvent: Number.NaN,
      setUp,
      problems: problemsOf(pipeline, new Set(events.map((event) => event.threadId)).size),
    };
  } finally {
    await pipeline.stop();
    await cleanUpRun(infra, prefixes);
  }
};

/**
 * The most any applier keeping each thread's order can do: the busiest thread's events one after
 * another, each one OpenCX call (LATENCY_MS), its first preceded by the session create.
 */
const perThreadLimit = (events: readonly CustomerMessage[]): number => {
  const perThread = new Map<string, number>();
  for (const event of events) perThread.set(event.threadId, (perThread.get(event.threadId) ?? 0) + 1);
  const busiest = Math.max(...perThread.values());
  return events.length / (((busiest + 1) * LATENCY_MS) / 1000);
};

const main = async (): Promise<void> => {
  const events = buildEvents();
  progress(
    `outbound bench: ${events.length} customer-message events on ${THREADS} threads across ${ORGS} orgs, fake OpenCX latency ${LATENCY_MS} ms, ` +
      `${RUNS} runs each, alternating${DEFAULT_LIMITS ? ', plus one run with the default rate limits' : ''}`,
  );
  // The first runs in a process (and on a freshly started broker) are slower while JIT compilers
  // warm up: one short unmeasured run of each first, then the measured rounds alternate who goes first.
  if (WARM_UP_EVENTS > 0) {
    const warmUp = events.slice(0, WARM_UP_EVENTS);
    progress(`warm-up (not measured): outbound and sequential, ${warmUp.length} events`);
    if (ONLY !== 'sequential')
      await measureWithOneRetry('warm-up outbound', () => runOutbound(warmUp, false));
    if (ONLY !== 'outbound') await measureWithOneRetry('warm-up sequential', () => runSequential(warmUp));
  }
  const results: RunResult[] = [];
  for (let run = 1; run <= RUNS; run++) {
    const order =
      run % 2 === 1 ? (['outbound', 'sequential'] as const) : (['sequential', 'outbound'] as const);
    for (const kind of order) {
      if (ONLY !== undefined && ONLY !== kind) continue;
      progress(`run ${run}/${RUNS}: ${kind}: preparing`);
      const result = await measureWithOneRetry(`run ${run}/${RUNS}: ${kind}`, () =>
        kind === 'outbound' ? runOutbound(events, false) : runSequential(events),
      );
      results.push(result);
      progress(
        `run ${run}/${RUNS}: ${kind}: ${fmt(result.eventsPerSecond)} events/s (${fmt(result.seconds, 2)} s), apply p50 ${fmt(result.p50Ms, 1)} ms, p99 ${fmt(result.p99Ms, 1)} ms`,
      );
    }
  }
  if (DEFAULT_LIMITS) {
    progress(
      'extra run: outbound with the default rate limits (OPENCX_RATE_LIMIT_MAX=50 per org per second, HubSpot 100 per portal per 10 s)',
    );
    const result = await measureWithOneRetry('extra run', () => runOutbound(events, true));
    results.push(result);
    progress(`extra run: ${fmt(result.eventsPerSecond)} events/s (${fmt(result.seconds, 2)} s)`);
  }

  printTable(
    'Runs (events/s from the first request OpenCX saw to the last message it stored; apply latency per event, bucketed as outbound_apply_seconds)',
    results.map((result) => ({
      applier: result.kind,
      'events/s': fmt(result.eventsPerSecond),
      seconds: fmt(result.seconds, 2),
      'apply p50 ms': fmt(result.p50Ms, 1),
      'apply p99 ms (bucket ≤)': `${fmt(result.p99Ms)} (≤${fmt(result.p99BucketMs)})`,
      'exact p99 ms': fmt(result.exactP99Ms, 1),
      'applies > 1 s': result.overOneSecond,
      'CPU ms/event': fmt(result.cpuMsPerEvent, 3),
      'new-thread set-up p50/p99 ms': `${fmt(percentile(result.setUp.total, 50))}/${fmt(percentile(result.setUp.total, 99))}`,
      '…create→look-up p50/p99': `${fmt(percentile(result.setUp.createToLookUp, 50))}/${fmt(percentile(result.setUp.createToLookUp, 99))}`,
      '…look-up→send p50/p99': `${fmt(percentile(result.setUp.lookUpToSend, 50))}/${fmt(percentile(result.setUp.lookUpToSend, 99))}`,
      'messages sent': result.messagesSent,
      sessions: result.sessions,
      problems: result.problems,
    })),
  );
  const of = (kind: RunResult['kind']) => results.filter((result) => result.kind === kind);
  const outboundRate = median(of('outbound').map((result) => result.eventsPerSecond));
  const sequentialRate = median(of('sequential').map((result) => result.eventsPerSecond));
  // Each round's two runs ran back to back, so their ratio is less exposed to the machine's noise.
  const roundRatios = of('outbound').flatMap((result, index) => {
    const sequential = of('sequential')[index];
    return sequential ? [result.eventsPerSecond / sequential.eventsPerSecond] : [];
  });
  console.log(
    `\nper-round ratios outbound/sequential: ${roundRatios.map((ratio) => `${fmt(ratio, 1)}x`).join(', ')} (median ${fmt(median(roundRatios), 1)}x)`,
  );
  const limit = perThreadLimit(events);
  console.log(
    `per-thread ordering limit: ${fmt(limit)} events/s (the busiest thread's events one after another, ${LATENCY_MS} ms each, its first two calls for the session); ` +
      `outbound reaches ${fmt((100 * outboundRate) / limit)} % of it (median ${fmt(outboundRate)} events/s)`,
  );
  printTable(
    `Figures (median of ${RUNS} runs each; ${events.length} events, ${THREADS} threads, OpenCX latency ${LATENCY_MS} ms)`,
    [
      {
        applier: 'outbound (KeyedConsumer, 1 replica)',
        'median events/s': fmt(outboundRate),
        'ratio vs sequential': `${fmt(outboundRate / sequentialRate, 1)}x`,
        'median apply p50 ms': fmt(median(of('outbound').map((result) => result.p50Ms)), 1),
        'median apply p99 ms': fmt(median(of('outbound').map((result) => result.p99Ms)), 1),
        'median new-thread set-up p50/p99 ms': `${fmt(median(of('outbound').map((result) => percentile(result.setUp.total, 50))))}/${fmt(median(of('outbound').map((result) => percentile(result.setUp.total, 99))))}`,
        'median CPU ms/event': fmt(median(of('outbound').map((result) => result.cpuMsPerEvent)), 3),
      },
      {
        applier: 'sequential loop (same client)',
        'median events/s': fmt(sequentialRate),
        'ratio vs sequential': '1.0x',
        'median apply p50 ms': fmt(median(of('sequential').map((result) => result.p50Ms)), 1),
        'median apply p99 ms': fmt(median(of('sequential').map((result) => result.p99Ms)), 1),
        'median new-thread set-up p50/p99 ms': `${fmt(median(of('sequential').map((result) => percentile(result.setUp.total, 50))))}/${fmt(median(of('sequential').map((result) => percentile(result.setUp.total, 99))))}`,
        'median CPU ms/event': 'n/a',
      },
    ],
  );
};

await main();
// Kafka and Redis clients of stopped services may keep timers alive for a while.
process.exit(0);
