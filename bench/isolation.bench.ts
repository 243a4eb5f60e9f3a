/**
 * Tenant isolation (issues 3 and 8): how much latency portal B's customers gain while another
 * tenant is in trouble. Ingest and outbound run in this process, the processor as a process of
 * its own (so its memory is its own: RSS is read from /proc), all on the real broker, registry
 * and Redis; the fake HubSpot rate-limits portal A hard (5 calls / 10 s, 429 beyond) while the
 * processor's own per-portal limiter keeps its default (100 / 10 s).
 *
 * B latency = webhook POST for one B message → the fake OpenCX storing it (`message-sent`).
 * Each round, on fresh prefixes: (a) a steady B stream alone, (b) the same stream right after
 * BENCH_FLOOD (50,000) A events (one per thread) were accepted: they wait on A's HubSpot budget.
 * Medians over BENCH_RUNS (3) rounds. Then, once, (c): the B stream for BENCH_OUTAGE_MS (5 min)
 * while organisation C's OpenCX answers 503 and C keeps sending (BENCH_C_RATE per second);
 * afterwards every C message must arrive, with no dead letter. 0 skips (c).
 *
 * The processor reconciles every organisation every BENCH_RECONCILE_INTERVAL_MS (10 s; 0 turns
 * it off, to compare B's latency without it): each phase reports the reconciler's HubSpot calls
 * per portal and run, against the portal's budget and the bookkeeping share of it (issue 23).
 *
 *   node bench/isolation.bench.ts
 */
import * as fixtures from '../test/fakes/hubspot-fixtures.ts';
import { readFileSync } from 'node:fs';
import type { ChildProcess } from 'node:child_process';
import { startTestPipeline, type TestOrg, type TestPipeline } from '../test/support/pipeline.ts';
import { kill, spawnService } from '../test/support/processes.ts';
import {
  benchInfra,
  cleanUpRun,
  envInt,
  fmt,
  measureWithOneRetry,
  median,
  newRunPrefixes,
  percentile,
  pipelineEnv,
  printTable,
  progress,
  scrape,
  sleep,
  sumOf,
  waitUntil,
} from './support.ts';

const RUNS = envInt('BENCH_RUNS', 3);
const B_RATE = envInt('BENCH_B_RATE', 4);
const B_MESSAGES = envInt('BENCH_B_MESSAGES', 100);
const B_THREADS = envInt('BENCH_B_THREADS', 10);
const FLOOD = envInt('BENCH_FLOOD', 50_000);
const OUTAGE_MS = envInt('BENCH_OUTAGE_MS', 300_000);
const C_RATE = envInt('BENCH_C_RATE', 4);
const RECONCILE_INTERVAL_MS = envInt('BENCH_RECONCILE_INTERVAL_MS', 10_000);
/** The processor's per-portal limit (its default) and the share bookkeeping may take of it (lib/rate-limiter.ts). */
const PORTAL_BUDGET = { max: 100, windowMs: 10_000, bookkeepingShare: 0.8 };
/** How long after its POST a B message may still arrive before it counts as not delivered. */
const DELIVERY_TIMEOUT_MS = envInt('BENCH_DELIVERY_TIMEOUT_MS', 60_000);
const infra = benchInfra();
const PORTAL_A = 94_000_001;
const PORTAL_B = 94_000_002;
const PORTAL_C = 94_000_003;
const HUBSPOT_LIMIT_A = { max: 5, intervalMs: 10_000 };

type Phase = 'a: B alone' | 'b: B + A flood' | 'c: B + C OpenCX 503';
type PhaseResult = {
  readonly round: number;
  readonly phase: Phase;
  readonly flood: number;
  readonly latencies: readonly number[];
  readonly missing: number;
  readonly aDelivered: number;
  readonly throttled: number;
  readonly hubspotRetries: number;
  readonly loopLagP99Ms: number;
  /** The processor's resident memory before the phase and once its B messages were delivered. */
  readonly rssBeforeMiB: number;
  readonly rssAfterMiB: number;
  /** Phase c: C's messages posted, delivered after the outage, dead-lettered. */
  readonly c?: { readonly posted: number; readonly delivered: number; readonly deadLettered: number };
  readonly reconcile: ReconcileFigures;
};

/** The reconciler's work in a phase: runs by outcome, HubSpot calls by portal. */
type ReconcileFigures = {
  readonly seconds: number;
  readonly runs: { readonly completed: number; readonly deferred: number; readonly failed: number };
  readonly callsByPortal: Readonly<Record<string, number>>;
};

type Round = {
  pipeline: TestPipeline;
  prefixes: ReturnType<typeof newRunPrefixes>;
  orgA: TestOrg;
  orgB: TestOrg;
  orgC: TestOrg;
  bThreads: string[];
  processor: ChildProcess & { metricsPort: number };
  processorMetricsPort: number;
};

/** Resident memory of a process, from /proc (Linux). */
const rssMiB = (pid: number | undefined): number => {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? 0) / 1024;
};

const startRound = async (): Promise<Round> => {
  const prefixes = newRunPrefixes('isolation');
  // Production defaults for what the test harness shortens: claim lease and HubSpot back-off.
  const pipeline = await startTestPipeline({
    processor: false,
    env: pipelineEnv(prefixes, {
      DEDUP_CLAIM_LEASE_MS: '30000',
      HUBSPOT_RETRY_INITIAL_MS: '500',
      EMAIL_DELAY_MS: '5000',
    }),
  });
  const orgA = await pipeline.createOrg({ orgId: 'bench-org-a', portalId: PORTAL_A });
  const orgB = await pipeline.createOrg({ orgId: 'bench-org-b', portalId: PORTAL_B });
  const orgC = await pipeline.createOrg({ orgId: 'bench-org-c', portalId: PORTAL_C });
  const processor = await spawnService('processor', {
    ...pipeline.env,
    RECONCILE_INTERVAL_MS: String(RECONCILE_INTERVAL_MS),
    RECONCILE_SETTLE_MS: '2000',
  });
  pipeline.hubspot.setRateLimit(PORTAL_A, HUBSPOT_LIMIT_A);
  pipeline.opencx.setAiResponder(() => null);
  const bThreads = Array.from({ length: B_THREADS }, () => fixtures.newThreadId());
  // Warm-up, not measured: each B thread gets its session, and the code paths get compiled, so
  // phase a (which always runs first) is not penalised for coming first.
  const texts: { text: string }[] = [];
  for (let index = 0; index < B_THREADS * 3; index++) {
    const threadId = bThreads[index % bThreads.length] ?? bThreads[0]!;
    texts.push(await postCustomerMessage(pipeline, PORTAL_B, threadId, `warm-up ${prefixes.runId} ${index}`));
    await sleep(1000 / B_RATE);
  }
  await waitUntil(
    'B warm-up messages to reach OpenCX',
    () => texts.every((text) => sentAt(pipeline).has(text.text)),
    60_000,
  );
  return {
    pipeline,
    prefixes,
    orgA,
    orgB,
    orgC,
    bThreads,
    processor,
    processorMetricsPort: processor.metricsPort,
  };
};

/** Adds the message to the fake HubSpot and POSTs its webhook alone; resolves with the POST time. */
const postCustomerMessage = async (
  pipeline: TestPipeline,
  portalId: number,
  threadId: string,
  text: string,
): Promise<{ text: string; postedAt: number }> => {
  const message = fixtures.message({ kind: 'customer-chat', threadId, text });
  pipeline.hubspot.addMessage(message, { portalId });
  const postedAt = Date.now();
  const response = await pipeline.postBatch([fixtures.webhookEventFor(message, { portalId })]);
  if (response.status !== 200) throw new Error(`ingest answered ${response.status}`);
  return { text, postedAt };
};

/** When OpenCX stored each message, by its text. */
const sentAt = (pipeline: TestPipeline): Map<string, number> => {
  const times = new Map<string, number>();
  for (const effect of pipeline.opencx.effects) {
    if (effect.kind !== 'message-sent') continue;
    const text = (effect.body as { message?: { text?: string } }).message?.text;
    if (text !== undefined && !times.has(text)) times.set(text, effect.at);
  }
  return times;
};

/** A events, one per thread, posted in signed batches of 100. */
const floodA = async (pipeline: TestPipeline, count: number, tag: string): Promise<string[]> => {
  const texts: string[] = [];
  const events: object[] = [];
  for (let index = 0; index < count; index++) {
    const text = `A ${tag} ${index}`;
    const message = fixtures.message({ kind: 'customer-chat', text });
    pipeline.hubspot.addMessage(message, { portalId: PORTAL_A });
    events.push(fixtures.webhookEventFor(message, { portalId: PORTAL_A }));
    texts.push(text);
  }
  for (let index = 0; index < events.length; index += 100) {
    const response = await pipeline.postBatch(events.slice(index, index + 100));
    if (response.status !== 200) throw new Error(`ingest answered ${response.status} to an A batch`);
  }
  return texts;
};

const runPhase = async (
  round: Round,
  roundNumber: number,
  phase: Phase,
  flood: number,
): Promise<PhaseResult> => {
  const { pipeline } = round;
  const before = await scrape(round.processorMetricsPort);
  const phaseStart = Date.now();
  const rssBeforeMiB = rssMiB(round.processor.pid);
  const aTexts = flood > 0 ? await floodA(pipeline, flood, `${roundNumber}-${phase}`) : [];
  if (flood > 0) progress(`  ${flood} A events accepted by ingest; B stream starts`);
  const outage = phase === 'c: B + C OpenCX 503';
  const cThreads = Array.from({ length: 20 }, () => fixtures.newThreadId());
  const cPosted: string[] = [];
  const deadLettersBefore = await pipeline.counter('outbound', 'outbound_dead_letters_total');
  let cStream: Promise<void> = Promise.resolve();
  const bMessages = outage ? Math.round((OUTAGE_MS / 1000) * B_RATE) : B_MESSAGES;
  if (outage) {
    const outageEnds = Date.now() + OUTAGE_MS;
    pipeline.opencx.failApiKeyUntil(round.orgC.apiKey, outageEnds);
    progress(
      `  organisation C's OpenCX answers 503 for ${OUTAGE_MS / 1000} s; C sends ${C_RATE}/s meanwhile`,
    );
    cStream = (async () => {
      for (let index = 0; Date.now() < outageEnds; index++) {
        const threadId = cThreads[index % cThreads.length] ?? cThreads[0]!;
        const text = `C ${roundNumber} ${index}`;
        cPosted.push(text);
        await postCustomerMessage(pipeline, PORTAL_C, threadId, text);
        await sleep(1000 / C_RATE);
      }
    })();
  }
  const posted: { text: string; postedAt: number }[] = [];
  const interval = 1000 / B_RATE;
  const streamStart = Date.now();
  let lastReport = Date.now();
  for (let index = 0; index < bMessages; index++) {
    // A steady rate: each POST at its slot, whatever the previous one took.
    const slot = streamStart + index * interval;
    if (slot > Date.now()) await sleep(slot - Date.now());
    const threadId = round.bThreads[index % round.bThreads.length] ?? round.bThreads[0]!;
    posted.push(
      await postCustomerMessage(pipeline, PORTAL_B, threadId, `B ${roundNumber} ${phase} ${index}`),
    );
    if (Date.now() - lastReport > 5000) {
      const delivered = sentAt(pipeline);
      progress(
        `  … ${index + 1}/${bMessages} B messages posted, ${posted.filter((entry) => delivered.has(entry.text)).length} delivered`,
      );
      lastReport = Date.now();
    }
  }
  const lastPost = Date.now();
  await waitUntil(
    'B messages to reach OpenCX',
    () => {
      const delivered = sentAt(pipeline);
      return (
        posted.every((entry) => delivered.has(entry.text)) || Date.now() - lastPost > DELIVERY_TIMEOUT_MS
      );
    },
    DELIVERY_TIMEOUT_MS + 10_000,
    100,
  );
  const rssAfterMiB = rssMiB(round.processor.pid);
  await cStream;
  let c: PhaseResult['c'];
  if (outage) {
    progress(`  outage over: waiting for C's ${cPosted.length} messages`);
    await waitUntil(
      "C's messages to reach OpenCX after the outage",
      () => {
        const delivered = sentAt(pipeline);
        return cPosted.every((text) => delivered.has(text));
      },
      5 * 60_000,
      500,
    ).catch((error: unknown) => progress(`  ${String(error)}`));
    const delivered = sentAt(pipeline);
    c = {
      posted: cPosted.length,
      delivered: cPosted.filter((text) => delivered.has(text)).length,
      deadLettered: (await pipeline.counter('outbound', 'outbound_dead_letters_total')) - deadLettersBefore,
    };
  }
  const delivered = sentAt(pipeline);
  const latencies = posted.flatMap((entry) => {
    const at = delivered.get(entry.text);
    return at === undefined ? [] : [at - entry.postedAt];
  });
  const after = await scrape(round.processorMetricsPort);
  const delta = (name: string, where: Record<string, string> = {}): number =>
    sumOf(after, name, where) - sumOf(before, name, where);
  return {
    round: roundNumber,
    phase,
    flood,
    latencies,
    missing: posted.length - latencies.length,
    aDelivered: aTexts.filter((text) => delivered.has(text)).length,
    throttled: delta('processor_hubspot_throttled_total', { portal_id: String(PORTAL_A) }),
    hubspotRetries: delta('processor_hubspot_retries_total'),
    // Every service and both fakes share this process and its event loop.
    loopLagP99Ms: sumOf(after, 'nodejs_eventloop_lag_p99_seconds') * 1000,
    rssBeforeMiB,
    rssAfterMiB,
    ...(c ? { c } : {}),
    reconcile: {
      seconds: (Date.now() - phaseStart) / 1000,
      runs: {
        completed: delta('processor_reconcile_runs_total', { outcome: 'completed' }),
        deferred: delta('processor_reconcile_runs_total', { outcome: 'deferred' }),
        failed: delta('processor_reconcile_runs_total', { outcome: 'failed' }),
      },
      callsByPortal: Object.fromEntries(
        [PORTAL_A, PORTAL_B, PORTAL_C].map((portal) => [
          portal === PORTAL_A ? 'A' : portal === PORTAL_B ? 'B' : 'C',
          delta('processor_hubspot_calls_total', {
            portal_id: String(portal),
            purpose: 'reconcile_threads',
          }) +
            delta('processor_hubspot_calls_total', {
              portal_id: String(portal),
              purpose: 'reconcile_messages',
            }),
        ]),
      ),
    },
  };
};

/** A portal's reconcile calls per budget window, and as a share of what bookkeeping may take. */
const reconcileShare = (figures: ReconcileFigures, portal: string): string => {
  const calls = figures.callsByPortal[portal] ?? 0;
  const perWindow = calls / (figures.seconds / (PORTAL_BUDGET.windowMs / 1000));
  const share = perWindow / (PORTAL_BUDGET.max * PORTAL_BUDGET.bookkeepingShare);
  return `${calls} (${fmt(perWindow, 2)}/${PORTAL_BUDGET.windowMs / 1000} s, ${fmt(share * 100, 1)} %)`;
};

const endRound = async (round: Round): Promise<void> => {
  const stopping = performance.now();
  await kill(round.processor);
  await round.pipeline.stop();
  await cleanUpRun(infra, round.prefixes);
  progress(`  round stopped and cleaned up in ${fmt((performance.now() - stopping) / 1000, 1)} s`);
};

const describe = (result: PhaseResult): string =>
  `B p50 ${fmt(percentile(result.latencies, 50))} ms, p99 ${fmt(percentile(result.latencies, 99))} ms, max ${fmt(Math.max(...result.latencies))} ms, ` +
  `${result.missing} not delivered; A delivered ${result.aDelivered}/${result.flood}; processor RSS ${fmt(result.rssBeforeMiB)} → ${fmt(result.rssAfterMiB)} MiB` +
  (result.c
    ? `; C ${result.c.delivered}/${result.c.posted} delivered after the outage, ${result.c.deadLettered} dead-lettered`
    : '') +
  `; reconcile runs ${JSON.stringify(result.reconcile.runs)}, HubSpot calls A ${reconcileShare(result.reconcile, 'A')}, B ${reconcileShare(result.reconcile, 'B')}, C ${reconcileShare(result.reconcile, 'C')}`;

const main = async (): Promise<void> => {
  progress(
    `isolation bench: B streams ${B_MESSAGES} customer messages at ${B_RATE}/s on ${B_THREADS} threads; portal A limited by HubSpot to ` +
      `${HUBSPOT_LIMIT_A.max} calls / ${HUBSPOT_LIMIT_A.intervalMs / 1000} s; flood ${FLOOD} A events; ${RUNS} rounds` +
      (OUTAGE_MS > 0
        ? `; then one round with organisation C's OpenCX answering 503 for ${OUTAGE_MS / 1000} s`
        : ''),
  );
  const results: PhaseResult[] = [];
  for (let roundNumber = 1; roundNumber <= RUNS; roundNumber++) {
    const phases = await measureWithOneRetry(`round ${roundNumber}`, async () => {
      progress(`round ${roundNumber}/${RUNS}: starting the pipeline`);
      const round = await startRound();
      try {
        progress(`round ${roundNumber}/${RUNS}: phase a (B alone)`);
        const alone = await runPhase(round, roundNumber, 'a: B alone', 0);
        progress(`round ${roundNumber}/${RUNS}: a: ${describe(alone)}`);
        progress(`round ${roundNumber}/${RUNS}: phase b (B while ${FLOOD} throttled A events are in flight)`);
        const flooded = await runPhase(round, roundNumber, 'b: B + A flood', FLOOD);
        progress(`round ${roundNumber}/${RUNS}: b: ${describe(flooded)}`);
        return [alone, flooded];
      } finally {
        await endRound(round);
      }
    });
    results.push(...phases);
  }
  if (OUTAGE_MS > 0) {
    const big = await measureWithOneRetry('outage round', async () => {
      progress(`outage round: starting the pipeline`);
      const round = await startRound();
      try {
        progress(`outage round: phase c (B while C's OpenCX answers 503)`);
        const result = await runPhase(round, RUNS + 1, 'c: B + C OpenCX 503', 0);
        progress(`outage round: c: ${describe(result)}`);
        return result;
      } finally {
        await endRound(round);
      }
    });
    results.push(big);
  }

  printTable(
    'Phases (B latency: webhook POST → OpenCX stored the message; all services and fakes share one process)',
    results.map((result) => ({
      round: result.round > RUNS ? 'big' : result.round,
      phase: result.phase,
      'A events': result.flood,
      'B p50 ms': fmt(percentile(result.latencies, 50)),
      'B p99 ms': fmt(percentile(result.latencies, 99)),
      'B max ms': fmt(Math.max(...result.latencies)),
      'B not delivered': result.missing,
      'A delivered': result.flood > 0 ? `${result.aDelivered}/${result.flood}` : '-',
      'A limiter waits': result.throttled,
      'HubSpot retries': result.hubspotRetries,
      'loop lag p99 ms': fmt(result.loopLagP99Ms, 1),
      'processor RSS MiB': `${fmt(result.rssBeforeMiB)} → ${fmt(result.rssAfterMiB)}`,
      'C delivered / dead-lettered': result.c
        ? `${result.c.delivered}/${result.c.posted} / ${result.c.deadLettered}`
        : '-',
    })),
  );
  if (RECONCILE_INTERVAL_MS > 0)
    printTable(
      `Reconciler (every ${RECONCILE_INTERVAL_MS / 1000} s): HubSpot calls per portal in the phase (per ${PORTAL_BUDGET.windowMs / 1000} s window, % of the bookkeeping share: ${PORTAL_BUDGET.bookkeepingShare * 100} % of ${PORTAL_BUDGET.max})`,
      results.map((result) => ({
        round: result.round > RUNS ? 'big' : result.round,
        phase: result.phase,
        seconds: fmt(result.reconcile.seconds),
        'runs completed / deferred / failed': `${result.reconcile.runs.completed} / ${result.reconcile.runs.deferred} / ${result.reconcile.runs.failed}`,
        'A calls': reconcileShare(result.reconcile, 'A'),
        'B calls': reconcileShare(result.reconcile, 'B'),
        'C calls': reconcileShare(result.reconcile, 'C'),
      })),
    );
  const of = (phase: Phase) => results.filter((result) => result.phase === phase);
  const p = (phase: Phase, q: number) => median(of(phase).map((result) => percentile(result.latencies, q)));
  const notDelivered = (phase: Phase): string => {
    const results = of(phase);
    return `${results.reduce((total, result) => total + result.missing, 0)}/${results.reduce((total, result) => total + result.missing + result.latencies.length, 0)}`;
  };
  const rows = [
    {
      phase: 'a: B alone',
      'median B p50 ms': fmt(p('a: B alone', 50)),
      'median B p99 ms': fmt(p('a: B alone', 99)),
      'added p99 ms': '-',
      'p99 ratio': '1.0x',
      'B not delivered': notDelivered('a: B alone'),
    },
    {
      phase: `b: B + ${FLOOD} throttled A events`,
      'median B p50 ms': fmt(p('b: B + A flood', 50)),
      'median B p99 ms': fmt(p('b: B + A flood', 99)),
      'added p99 ms': fmt(p('b: B + A flood', 99) - p('a: B alone', 99)),
      'p99 ratio': `${fmt(p('b: B + A flood', 99) / p('a: B alone', 99), 1)}x`,
      'B not delivered': notDelivered('b: B + A flood'),
    },
  ];
  if (OUTAGE_MS > 0) {
    rows.push({
      phase: `c: B while C's OpenCX answers 503 for ${OUTAGE_MS / 1000} s (1 round)`,
      'median B p50 ms': fmt(p('c: B + C OpenCX 503', 50)),
      'median B p99 ms': fmt(p('c: B + C OpenCX 503', 99)),
      'added p99 ms': fmt(p('c: B + C OpenCX 503', 99) - p('a: B alone', 99)),
      'p99 ratio': `${fmt(p('c: B + C OpenCX 503', 99) / p('a: B alone', 99), 1)}x`,
      'B not delivered': notDelivered('c: B + C OpenCX 503'),
    });
  }
  printTable(`Figures (medians over ${RUNS} rounds of ${B_MESSAGES} B messages each)`, rows);
  const missing = results.reduce((total, result) => total + result.missing, 0);
  if (missing > 0) {
    console.log(
      `\nFINDING: ${missing} B message(s) were not delivered within ${DELIVERY_TIMEOUT_MS / 1000} s of the last post ` +
        `(${results
          .filter((result) => result.missing > 0)
          .map((result) => `${result.phase}: ${result.missing}/${B_MESSAGES}`)
          .join('; ')}): ` +
        "another tenant's trouble held portal B up.",
    );
  }
};

await main();
// Kafka and Redis clients of stopped services (and A's handlers still backing off) keep timers alive.
process.exit(0);
