/**
 * Processor throughput (issue 3): raw HubSpot events/s through ONE processor replica (decode →
 * dedup claim in Redis → re-fetch from the fake HubSpot on loopback → rules → emit, acks=all),
 * on the real broker, registry and Redis, against a deliberately simple baseline consumer over
 * the same input.
 *
 * Each run gets fresh topic/Redis prefixes; the same input is pre-produced through ingest
 * (signed batches of 100) before the consumer starts, so the figure is drain throughput.
 * Runs alternate processor / baseline; medians of BENCH_RUNS (3) each are printed.
 *
 *   node bench/processor.bench.ts        (BENCH_EVENTS=5000 BENCH_RUNS=3 BENCH_THREADS=500 BENCH_ORGS=3)
 */
import type { KafkaMessage } from 'kafkajs';
import { createRedisDedupStore } from '../lib/dedup-store.ts';
import { createRedis } from '../lib/redis.ts';
import { AvroCodec } from '../lib/registry.ts';
import { createDurableProducer, createKafka, topicsFor } from '../lib/kafka/index.ts';
import { createHubSpotApi, type HubSpotApi } from '../lib/hubspot/index.ts';
import { orderingKeyOf } from '../lib/domain-events.ts';
import { createLogger } from '../lib/log.ts';
import { IgnoreReason, parseWebhookEvent, routeNewMessage } from '../services/processor/src/rules/index.ts';
import * as fixtures from '../test/fakes/hubspot-fixtures.ts';
import type { HubSpotMessage as FakeMessage } from '../test/fakes/hubspot.ts';
import { startTestPipeline, type TestPipeline } from '../test/support/pipeline.ts';
import {
  benchInfra,
  benchKafka,
  cleanUpRun,
  envInt,
  fmt,
  measureWithOneRetry,
  median,
  newRunPrefixes,
  pipelineEnv,
  printTable,
  progress,
  scrape,
  sleep,
  sumOf,
  topicRecordCount,
  waitUntil,
} from './support.ts';

/**
 * BENCH_MIX=messages (default): customer messages re-fetched from the fake HubSpot, their retries
 * and unsupported types. BENCH_MIX=no-hubspot: only events that need no HubSpot call (issue 10's
 * 20k/s target): retries of messages handled earlier, ticket property changes, unsupported types
 * and unknown portals.
 */
const MIX = process.env.BENCH_MIX ?? 'messages';
if (MIX !== 'messages' && MIX !== 'no-hubspot')
  throw new Error(`BENCH_MIX must be messages or no-hubspot, got ${MIX}`);
const TOTAL = envInt('BENCH_EVENTS', MIX === 'no-hubspot' ? 40_000 : 5000);
const RUNS = envInt('BENCH_RUNS', 3);
const THREADS = envInt('BENCH_THREADS', 500);
const ORGS = envInt('BENCH_ORGS', 3);
const WARM_UP_EVENTS = envInt('BENCH_WARMUP_EVENTS', MIX === 'no-hubspot' ? 10_000 : 2000);
const DRAIN_TIMEOUT_MS = envInt('BENCH_TIMEOUT_MS', 180_000);
/** Added to every fake HubSpot answer: 0 is loopback; a real HubSpot answers in tens of ms. */
const HUBSPOT_LATENCY_MS = envInt('BENCH_HUBSPOT_LATENCY_MS', 0);
/** For profiling one side: BENCH_ONLY=processor or BENCH_ONLY=baseline. */
const ONLY = process.env.BENCH_ONLY;
const infra = benchInfra();

// The input: ~70% customer messages, ~20% HubSpot retries of them, ~10% unsupported types ------

type BenchOrg = { readonly orgId: string; readonly portalId: number };
const orgs: BenchOrg[] = Array.from({ length: ORGS }, (_, index) => ({
  orgId: `bench-org-${index}`,
  portalId: 91_000_001 + index,
}));

type Input = {
  /** Messages the fake HubSpot serves on re-fetch, with their portal. */
  readonly messages: readonly { readonly message: FakeMessage; readonly portalId: number }[];
  /** The webhook events in delivery order. */
  readonly events: readonly object[];
  readonly unique: number;
  readonly duplicates: number;
  readonly unsupported: number;
  /** Dedup keys a delivery before the run confirmed (no-hubspot: the originals of its retries). */
  readonly handledBefore: readonly string[];
  /** Events the rules skip without a HubSpot call, by why (no-hubspot). */
  readonly skippedOther: number;
};

const UNSUPPORTED_TYPES = ['contact.propertyChange', 'deal.creation', 'company.propertyChange'];

/** An event of a type the rules do not support, from one of the orgs' portals. */
const unsupportedEvent = (index: number): object => ({
  eventId: 4_000_000_000 + index,
  subscriptionId: 2_371_672,
  portalId: (orgs[index % orgs.length] ?? orgs[0]!).portalId,
  appId: fixtures.FIXTURE_APP_ID,
  occurredAt: Date.now(),
  attemptNumber: 0,
  objectId: 51_000_000 + index,
  subscriptionType: UNSUPPORTED_TYPES[index % UNSUPPORTED_TYPES.length],
  propertyName: 'lifecyclestage',
  propertyValue: 'customer',
  changeSource: 'CRM_UI',
});

const buildInput = (total: number): Input => {
  const unique = Math.round(total * 0.7);
  const duplicates = Math.round(total * 0.2);
  const unsupported = total - unique - duplicates;
  const threads = Array.from({ length: THREADS }, (_, index) => ({
    threadId: fixtures.newThreadId(),
    org: orgs[index % orgs.length] ?? orgs[0]!,
  }));
  const messages: { message: FakeMessage; portalId: number }[] = [];
  // Position on a 0..unique line: an original at its index, a retry somewhere after its original.
  const placed: { at: number; event: object }[] = [];
  const originals: { at: number; event: fixtures.NewMessageWebhookEvent }[] = [];
  for (let index = 0; index < unique; index++) {
    const thread = threads[index % threads.length] ?? threads[0]!;
    const message = fixtures.message({
      kind: 'customer-chat',
      threadId: thread.threadId,
      text: `bench message ${index}`,
    });
    messages.push({ message, portalId: thread.org.portalId });
    const event = fixtures.webhookEventFor(message, { portalId: thread.org.portalId });
    originals.push({ at: index, event });
    placed.push({ at: index, event });
  }
  for (let index = 0; index < duplicates; index++) {
    const original = originals[Math.floor(Math.random() * originals.length)] ?? originals[0]!;
    const retry = {
      ...original.event,
      eventId: original.event.eventId + 10_000_000 + index,
      attemptNumber: 1,
    };
    placed.push({ at: original.at + 0.5 + Math.random() * (unique - original.at), event: retry });
  }
  for (let index = 0; index < unsupported; index++)
    placed.push({ at: Math.random() * unique, event: unsupportedEvent(index) });
  placed.sort((a, b) => a.at - b.at);
  return {
    messages,
    events: placed.map((entry) => entry.event),
    unique,
    duplicates,
    unsupported,
    handledBefore: [],
    skippedOther: 0,
  };
};

/**
 * Events that need no HubSpot call, shuffled: 30% retries of messages a delivery before the run
 * handled (their dedup keys are confirmed in Redis first), 30% property changes of tickets no
 * session is linked to (claim, property clock, links, confirm), 20% unsupported types, 20% events
 * of portals no organisation has.
 */
const buildNoHubSpotInput = (total: number): Input => {
  const duplicates = Math.round(total * 0.3);
  const propertyChanges = Math.round(total * 0.3);
  const unsupported = Math.round(total * 0.2);
  const unknownPortal = total - duplicates - propertyChanges - unsupported;
  const events: object[] = [];
  const handledBefore: string[] = [];
  for (let index = 0; index < duplicates; index++) {
    const org = orgs[index % orgs.length] ?? orgs[0]!;
    const event = fixtures.webhookEvent({
      portalId: org.portalId,
      objectId: 7_000_000 + (index % THREADS),
      messageId: `handled-${index}`,
      attemptNumber: 1,
    });
    handledBefore.push(`${org.orgId}:message:${event.messageId}`);
    events.push(event);
  }
  const changesFrom = Date.now() - propertyChanges;
  for (let index = 0; index < propertyChanges; index++) {
    const org = orgs[index % orgs.length] ?? orgs[0]!;
    events.push(
      // Distinct times: two changes of one property at the same millisecond are one change (its dedup key).
      fixtures.ticketPropertyChangeEvent({
        portalId: org.portalId,
        objectId: 8_000_000 + (index % THREADS),
        occurredAt: changesFrom + index,
        // Cleared (ignored as empty_value after its claim and clock): a non-empty change is emitted
        // for outbound to hold until its ticket is linked, which would count as a domain event
        // that no unique message explains (the mix has none).
        propertyValue: '',
      }),
    );
  }
  for (let index = 0; index < unsupported; index++) events.push(unsupportedEvent(index));
  for (let index = 0; index < unknownPortal; index++)
    events.push(fixtures.webhookEvent({ portalId: 99_000_000 + (index % 50), objectId: 9_000_000 + index }));
  for (let index = events.length - 1; index > 0; index--) {
    const other = Math.floor(Math.random() * (index + 1));
    [events[index], events[other]] = [events[other]!, events[index]!];
  }
  return {
    messages: [],
    events,
    unique: 0,
    duplicates,
    unsupported,
    handledBefore,
    skippedOther: propertyChanges + unknownPortal,
  };
};

// One run: fresh prefixes, ingest + fakes, the input pre-produced ------------------------------

type Prepared = {
  pipeline: TestPipeline;
  prefixes: ReturnType<typeof newRunPrefixes>;
  tokens: Map<number, string>;
};

const prepare = async (input: Input, extraEnv: Record<string, string>): Promise<Prepared> => {
  const prefixes = newRunPrefixes('processor');
  const pipeline = await startTestPipeline({
    processor: false,
    outbound: false,
    env: pipelineEnv(prefixes, { DEDUP_CLAIM_LEASE_MS: '30000', ...extraEnv }),
  });
  progress(`  ingest up (topics ${prefixes.topicPrefix}*)`);
  const tokens = new Map<number, string>();
  for (const org of orgs) {
    const created = await pipeline.createOrg({ orgId: org.orgId, portalId: org.portalId });
    tokens.set(org.portalId, created.accessToken);
  }
  for (const { message, portalId } of input.messages) pipeline.hubspot.addMessage(message, { portalId });
  if (input.handledBefore.length > 0) {
    // What a delivery before the run left: the originals' dedup keys, confirmed.
    const redis = createRedis(infra.redisUrl, createLogger('bench', 'silent'));
    const store = createRedisDedupStore(redis, {
      prefix: prefixes.redisPrefix,
      owner: 'bench-seed',
      leaseMs: 30_000,
      doneTtlMs: 3_600_000,
    });
    await Promise.all(input.handledBefore.map((key) => store.confirm(key)));
    redis.disconnect();
  }
  pipeline.hubspot.setLatency(HUBSPOT_LATENCY_MS);
  // Signed batches of 100, as HubSpot sends them, four at a time.
  const batches: object[][] = [];
  for (let index = 0; index < input.events.length; index += 100)
    batches.push(input.events.slice(index, index + 100));
  let next = 0;
  await Promise.all(
    Array.from({ length: 4 }, async () => {
      for (let batch = batches[next++]; batch !== undefined; batch = batches[next++]) {
        const response = await pipeline.postBatch(batch);
        if (response.status !== 200)
          throw new Error(`ingest answered ${response.status}: ${await response.text()}`);
      }
    }),
  );
  const kafka = benchKafka(infra.kafkaBrokers, 'bench-processor-check');
  const rawTopic = topicsFor(prefixes.topicPrefix).rawEvents.name;
  const onTopic = await topicRecordCount(kafka, rawTopic);
  if (onTopic !== input.events.length)
    throw new Error(`raw topic holds ${onTopic} records, expected ${input.events.length}`);
  progress(`  ${onTopic} raw events on ${rawTopic} (posted to ingest in ${batches.length} signed batches)`);
  return { pipeline, prefixes, tokens };
};

const stopAndClean = async (
  pipeline: TestPipeline,
  prefixes: ReturnType<typeof newRunPrefixes>,
): Promise<void> => {
  const stopping = performance.now();
  await pipeline.stopProcessor();
  const processorStopped = performance.now();
  await pipeline.stop();
  const cleaning = performance.now();
  await cleanUpRun(infra, prefixes);
  progress(
    `  stopped in ${fmt((cleaning - stopping) / 1000, 1)} s (processor ${fmt((processorStopped - stopping) / 1000, 1)} s), cleaned up in ${fmt((performance.now() - cleaning) / 1000, 1)} s`,
  );
};

type RunResult = {
  readonly kind: 'processor' | 'baseline';
  readonly eventsPerSecond: number;
  readonly seconds: number;
  /** The bench process's CPU (the consumer, the fakes, the polling) over the drain, per event. */
  readonly cpuMsPerEvent: number;
  readonly handled: number;
  readonly emitted: number;
  readonly duplicatesSkipped: number;
  readonly unsupportedSkipped: number;
  readonly domainRecords: number;
};

/**
 * Steady-state drain rate: from the first HubSpot re-fetch (the consumer is running) to the poll
 * that sees every event handled. Start-up (connect, group join) is left out of both.
 */
const timeDrain = async (
  pipeline: TestPipeline,
  handled: () => Promise<number>,
  total: number,
): Promise<{ seconds: number; handled: number; measured: number; cpuMs: number }> => {
  let last = 0;
  let lastReport = Date.now();
  // Without HubSpot calls (BENCH_MIX=no-hubspot) the clock starts at the first poll that sees an
  // event handled, and only the events handled after it count.
  let firstSeen: { at: number; handled: number; cpu: NodeJS.CpuUsage } | undefined;
  const finishedAt = await waitUntil(
    'every raw event handled',
    async () => {
      last = await handled();
      if (firstSeen === undefined && last > 0)
        firstSeen = { at: Date.now(), handled: last, cpu: process.cpuUsage() };
      if (Date.now() - lastReport > 2000) {
        progress(`  … ${last}/${total} handled`);
        lastReport = Date.now();
      }
      return last >= total ? Date.now() : undefined;
    },
    DRAIN_TIMEOUT_MS,
    100,
  );
  const cpu = process.cpuUsage(firstSeen?.cpu);
  const cpuMs = (cpu.user + cpu.system) / 1000;
  const firstFetch = pipeline.hubspot.requests[0]?.at;
  if (firstFetch !== undefined)
    return { seconds: (finishedAt - firstFetch) / 1000, handled: last, measured: total, cpuMs };
  const since = firstSeen ?? { at: finishedAt, handled: 0 };
  return {
    seconds: (finishedAt - since.at) / 1000,
    handled: last,
    measured: total - since.handled,
    cpuMs,
  };
};

const runProcessor = async (input: Input): Promise<RunResult> => {
  // The per-portal HubSpot limit (100 / 10 s by default) would make this a benchmark of the limit.
  const prepared = await prepare(input, { HUBSPOT_RATE_LIMIT_MAX: '1000000' });
  const { pipeline, prefixes } = prepared;
  try {
    const processor = await pipeline.startProcessor();
    const drained = await timeDrain(
      pipeline,
      async () => sumOf(await scrape(processor.metricsPort), 'processor_events_total'),
      input.events.length,
    );
    await sleep(300);
    const samples = await scrape(processor.metricsPort);
    const domainRecords = await topicRecordCount(
      benchKafka(infra.kafkaBrokers, 'bench-processor-check'),
      topicsFor(prefixes.topicPrefix).domainEvents.name,
    );
    return {
      kind: 'processor',
      eventsPerSecond: drained.measured / drained.seconds,
      seconds: drained.seconds,
      cpuMsPerEvent: drained.cpuMs / drained.measured,
      handled: sumOf(samples, 'processor_events_total'),
      emitted: sumOf(samples, 'processor_domain_events_total'),
      duplicatesSkipped: sumOf(samples, 'processor_ignored_total', { reason: IgnoreReason.duplicate }),
      unsupportedSkipped: sumOf(samples, 'processor_ignored_total', { reason: IgnoreReason.unsupportedType }),
      domainRecords,
    };
  } finally {
    await stopAndClean(pipeline, prefixes);
  }
};

/**
 * The simple baseline: kafkajs eachMessage, one message at a time: decode, Redis SET NX, the same
 * HubSpot client (no limiter), the same pure rules, one send with acks=-1 per event.
 */
const runBaseline = async (input: Input): Promise<RunResult> => {
  const { pipeline, prefixes, tokens } = await prepare(input, {});
  const topics = topicsFor(prefixes.topicPrefix);
  const kafka = createKafka({
    clientId: 'bench-baseline',
    brokers: infra.kafkaBrokers.split(','),
    logger: createLogger('bench-baseline', 'silent'),
  });
  const codec = new AvroCodec({ url: infra.schemaRegistryUrl, subjectPrefix: prefixes.topicPrefix });
  const redis = createRedis(infra.redisUrl, createLogger('bench', 'silent'));
  const producer = createDurableProducer(kafka);
  const consumer = kafka.consumer({
    groupId: `${prefixes.topicPrefix}baseline`,
    allowAutoTopicCreation: false,
  });
  const apis = new Map<number, HubSpotApi>();
  for (const org of orgs) {
    apis.set(
      org.portalId,
      createHubSpotApi({
        baseUrl: pipeline.hubspot.url,
        accessToken: tokens.get(org.portalId) ?? '',
        timeoutMs: 10000,
      }),
    );
  }
  const orgByPortal = new Map(orgs.map((org) => [org.portalId, org]));
  const counts = { handled: 0, emitted: 0, duplicates: 0, unsupported: 0 };
  try {
    await codec.registerAll();
    await producer.connect();
    await consumer.connect();
    await consumer.subscribe({ topics: [topics.rawEvents.name], fromBeginning: true });
    const handle = async (message: KafkaMessage): Promise<void> => {
      const raw = (await codec.decodeRecord(message.value ?? Buffer.alloc(0))).record as {
        portalId: number;
        receivedAt: number;
        event: string;
      };
      const parsed = parseWebhookEvent(raw.event);
      const org = orgByPortal.get(Number(raw.portalId));
      if (parsed.ok && parsed.event.subscriptionType === 'ticket.propertyChange' && org) {
        // A claim, then skipped: no session is linked to the ticket (the rule's answer here).
        const { objectId, propertyName, occurredAt } = parsed.event;
        await redis.set(
          `${prefixes.redisPrefix}dedup:${org.orgId}:ticket:${objectId}:${propertyName}:${occurredAt}`,
          'done',
          'PX',
          3_600_000,
          'NX',
        );
        return;
      }
      if (!parsed.ok || parsed.event.subscriptionType !== 'conversation.newMessage') {
        counts.unsupported++;
        return;
      }
      const event = parsed.event;
      if (!org) return; // unknown portal: skipped
      const first = await redis.set(
        `${prefixes.redisPrefix}dedup:${org.orgId}:message:${event.messageId}`,
        'done',
        'PX',
        3_600_000,
        'NX',
      );
      if (first !== 'OK') {
        counts.duplicates++;
        return;
      }
      const refetched = await apis.get(org.portalId)!.getMessage(event.objectId, event.messageId);
      const decision = routeNewMessage(event, refetched, {
        orgId: org.orgId,
        aiActorId: 'A-111',
        receivedAt: Number(raw.receivedAt),
        emailDelayMs: 0,
      });
      if (decision.kind !== 'emit') return;
      const messages = await Promise.all(
        decision.events.map(async (domainEvent) => ({
          key: orderingKeyOf(domainEvent),
          value: await codec.encodeEvent(domainEvent),
          headers: { 'event-type': domainEvent.type, 'event-id': domainEvent.eventId },
        })),
      );
      await producer.send({ topic: topics.domainEvents.name, acks: -1, messages });
      counts.emitted += messages.length;
    };
    await consumer.run({
      eachMessage: async ({ message }) => {
        await handle(message);
        counts.handled++;
      },
    });
    const drained = await timeDrain(pipeline, () => Promise.resolve(counts.handled), input.events.length);
    const domainRecords = await topicRecordCount(
      benchKafka(infra.kafkaBrokers, 'bench-processor-check'),
      topics.domainEvents.name,
    );
    return {
      kind: 'baseline',
      eventsPerSecond: drained.measured / drained.seconds,
      seconds: drained.seconds,
      cpuMsPerEvent: drained.cpuMs / drained.measured,
      handled: counts.handled,
      emitted: counts.emitted,
      duplicatesSkipped: counts.duplicates,
      unsupportedSkipped: counts.unsupported,
      domainRecords,
    };
  } finally {
    await consumer.disconnect().catch(() => undefined);
    await producer.disconnect().catch(() => undefined);
    redis.disconnect();
    await stopAndClean(pipeline, prefixes);
  }
};

// Main -----------------------------------------------------------------------------------------

const main = async (): Promise<void> => {
  const build = MIX === 'no-hubspot' ? buildNoHubSpotInput : buildInput;
  const input = build(TOTAL);
  if (MIX === 'no-hubspot')
    progress(
      `processor bench (no HubSpot calls): ${input.events.length} raw events (${input.duplicates} retries of messages handled before the run, ` +
        `${input.unsupported} unsupported, ${input.skippedOther} ticket property changes with no session and events of unknown portals), ${RUNS} runs each, alternating`,
    );
  else
    progress(
      `processor bench: ${input.events.length} raw events (${input.unique} unique customer messages on ${THREADS} threads across ${ORGS} orgs, ` +
        `${input.duplicates} HubSpot retries, ${input.unsupported} unsupported), ${RUNS} runs each, alternating; warm-up ${WARM_UP_EVENTS} events each`,
    );
  // The first runs in a process (and on a freshly started broker) are slower while JIT compilers
  // warm up: one unmeasured round of each first, then the measured rounds alternate who goes first.
  const warmUpInput = build(WARM_UP_EVENTS);
  for (const kind of ['processor', 'baseline'] as const) {
    if (WARM_UP_EVENTS === 0 || (ONLY !== undefined && ONLY !== kind)) continue;
    progress(`warm-up (not measured): ${kind}, ${warmUpInput.events.length} events`);
    const result = await measureWithOneRetry(`warm-up ${kind}`, () =>
      kind === 'processor' ? runProcessor(warmUpInput) : runBaseline(warmUpInput),
    );
    progress(`warm-up: ${kind}: ${fmt(result.eventsPerSecond)} events/s (discarded)`);
  }
  const results: RunResult[] = [];
  for (let run = 1; run <= RUNS; run++) {
    const order = run % 2 === 1 ? (['processor', 'baseline'] as const) : (['baseline', 'processor'] as const);
    for (const kind of order) {
      if (ONLY !== undefined && ONLY !== kind) continue;
      progress(`run ${run}/${RUNS}: ${kind}: preparing`);
      const result = await measureWithOneRetry(`run ${run}/${RUNS}: ${kind}`, () =>
        kind === 'processor' ? runProcessor(input) : runBaseline(input),
      );
      results.push(result);
      progress(
        `run ${run}/${RUNS}: ${kind}: ${fmt(result.eventsPerSecond)} events/s (${fmt(result.seconds, 2)} s), emitted ${result.emitted}, ` +
          `domain records ${result.domainRecords}, duplicates skipped ${result.duplicatesSkipped}`,
      );
    }
  }

  const of = (kind: RunResult['kind']) => results.filter((result) => result.kind === kind);
  const processorRate = median(of('processor').map((result) => result.eventsPerSecond));
  const baselineRate = median(of('baseline').map((result) => result.eventsPerSecond));
  printTable(
    'Runs (events/s = raw events drained per second, from the first HubSpot re-fetch to the last event handled)',
    results.map((result, index) => ({
      '#': ONLY === undefined ? Math.floor(index / 2) + 1 : index + 1,
      consumer: result.kind,
      'events/s': fmt(result.eventsPerSecond),
      seconds: fmt(result.seconds, 2),
      'CPU ms/event': fmt(result.cpuMsPerEvent, 3),
      handled: result.handled,
      'domain events': result.emitted,
      'records on domain topic': result.domainRecords,
      'duplicates skipped': result.duplicatesSkipped,
      'unsupported skipped': result.unsupportedSkipped,
      'dedup correct':
        result.emitted === input.unique &&
        result.domainRecords === input.unique &&
        result.duplicatesSkipped === input.duplicates
          ? 'yes'
          : `NO (expected ${input.unique})`,
    })),
  );
  // Each round's two runs ran back to back, so their ratio is less exposed to the machine's noise.
  const roundRatios = of('processor').flatMap((result, index) => {
    const baseline = of('baseline')[index];
    return baseline ? [result.eventsPerSecond / baseline.eventsPerSecond] : [];
  });
  console.log(
    `\nper-round ratios processor/baseline: ${roundRatios.map((ratio) => `${fmt(ratio, 2)}x`).join(', ')} (median ${fmt(median(roundRatios), 2)}x)`,
  );
  printTable(
    `Figures (median of ${RUNS} runs each, ${input.events.length} raw events, ${input.unique} unique messages)`,
    [
      {
        consumer: 'processor (KeyedConsumer, 1 replica)',
        'median events/s': fmt(processorRate),
        'ratio vs baseline': `${fmt(processorRate / baselineRate, 2)}x`,
      },
      {
        consumer: 'baseline (eachMessage, one at a time)',
        'median events/s': fmt(baselineRate),
        'ratio vs baseline': '1.00x',
      },
    ],
  );
  const wrong = results.filter(
    (result) => result.emitted !== input.unique || result.domainRecords !== input.unique,
  );
  console.log(
    wrong.length === 0
      ? `\ndedup: every run emitted exactly ${input.unique} domain events for ${input.unique} unique messages (${input.duplicates} retries dropped)`
      : `\ndedup: ${wrong.length} run(s) did NOT emit exactly ${input.unique} domain events: ${wrong.map((result) => `${result.kind} emitted ${result.emitted}, topic ${result.domainRecords}`).join('; ')}`,
  );
};

await main();
// Kafka and Redis clients of stopped services may keep timers alive for a while.
process.exit(0);
