/**
 * Ingest throughput (issue 10): the project's ingest against three baselines, measured side by side
 * in one invocation, each server its own OS process, loaded by autocannon from this process:
 * - hello: a koa app answering 200 to the same signed POST (the ceiling of koa + node:http here);
 * - naive: a koa + kafkajs app that reads the body, checks the same HubSpot v3 signature
 *   (ingest's own verifier), JSON-parses the batch and does one `send` with acks=all per request
 *   (kafkajs's plain producer: no idempotence, one request to the broker per webhook);
 * - floor: naive with one change, the least a durable signed webhook can cost on koa + kafkajs:
 *   the requests read in one turn of the event loop share one acks=all send of an idempotent
 *   producer, one send in flight (as ingest does). No validation, Avro, routing, metrics or logs.
 *   `floor / hello` is the ceiling of `ingest / hello` for any app built on koa + kafkajs here;
 * - ingest: `services/ingest/src/main.ts` as deployed (LOG_LEVEL=info), with a test organisation
 *   registered through its admin API, answering 200 only once the batch is durable.
 * Scenarios: signed 1-event webhooks, and signed 100-event batches (conversation.newMessage).
 * Each round runs every target once per scenario (the order rotates each round); medians of the
 * rounds, and the median of each round's ratios, are printed. CPU ms per event of each server
 * comes from /proc/<pid>/stat (utime + stime over the measured window).
 *
 *   npm run bench:ingest -- [--runs 3] [--seconds 10] [--connections 50] [--quick]
 *                           [--only ingest,hello,naive,floor] [--scenario single,batch] [--profile]
 *
 * --profile starts ingest and the floor with `--cpu-prof`, stops them with SIGTERM at the end (so
 * the profiles are written) and prints, for each, its top 15 self-time frames and the busy time
 * per library (bench/profile.ts).
 * BENCH_INGEST_NODE_OPTIONS, when set, is ingest's NODE_OPTIONS (V8 flags tried on ingest alone).
 * Internally, `node bench/ingest.bench.ts --serve hello|naive|floor` is how a baseline server starts.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream, mkdtempSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { topicsFor } from '../lib/kafka/topics.ts';
import { stopGracefully } from '../test/support/processes.ts';
import * as fixtures from '../test/fakes/hubspot-fixtures.ts';
import { startFakeHubSpot } from '../test/fakes/hubspot.ts';
import { ADMIN_TOKEN, CLIENT_SECRET, registerTestOrg } from '../test/support/pipeline.ts';
import { freePort } from '../test/support/processes.ts';
import { signedWebhookHeaders } from '../test/support/signed-delivery.ts';
import { profileRows, readNewestProfile, summariseProfile } from './profile.ts';
import {
  benchInfra,
  benchKafka,
  cleanUpRun,
  fmt,
  histogramQuantile,
  median,
  newRunPrefixes,
  printTable,
  processCpuMs,
  progress,
  scrape,
  type Sample,
  topicRecordCount,
  waitUntil,
  withConsole,
} from './support.ts';

const TARGETS = ['hello', 'naive', 'floor', 'ingest'] as const;
type Target = (typeof TARGETS)[number];
const SCENARIOS = { single: 1, batch: 100 } as const;
type Scenario = keyof typeof SCENARIOS;
const PARTITIONS = 3;
/** Distinct signed bodies per scenario: autocannon cycles through them on every connection. */
const POOL_SIZE = 64;
const benchFile = fileURLToPath(import.meta.url);
const repoRoot = fileURLToPath(new URL('../', import.meta.url));

// autocannon ships no types: the part of its API used here.
type AutocannonRequest = { method: string; path: string; headers: Record<string, string>; body: string };
type AutocannonResult = {
  '2xx': number;
  non2xx: number;
  errors: number;
  timeouts: number;
  duration: number;
  latency: { p50: number; p99: number };
};
type Autocannon = (options: {
  url: string;
  connections: number;
  duration: number;
  requests: AutocannonRequest[];
  timeout: number;
}) => Promise<AutocannonResult>;
const autocannon = createRequire(import.meta.url)('autocannon') as Autocannon;

// The baseline servers (child mode) --------------------------------------------------------------

const serveBaseline = async (kind: string): Promise<void> => {
  const { default: Koa } = await import('koa');
  const port = Number(process.env.PORT);
  const app = new Koa();
  if (kind === 'hello') {
    app.use((ctx) => {
      ctx.body = 'Hello World';
    });
  } else if (kind === 'naive' || kind === 'floor') {
    const { default: getRawBody } = await import('raw-body');
    const { verifyHubSpotSignature } = await import('../services/ingest/src/signature.ts');
    const topic = process.env.NAIVE_TOPIC ?? '';
    const secret = process.env.NAIVE_SECRET ?? '';
    const producer = benchKafka(process.env.KAFKA_BROKERS ?? '127.0.0.1:9092', `bench-${kind}`).producer(
      kind === 'floor' ? { idempotent: true, maxInFlightRequests: 1 } : {},
    );
    await producer.connect();
    type Message = { key: string; value: string };
    const write =
      kind === 'naive'
        ? (messages: Message[]): Promise<unknown> => producer.send({ topic, acks: -1, messages })
        : sharedSends<Message>((messages) => producer.send({ topic, acks: -1, messages }));
    app.use(async (ctx) => {
      const rawBody = await getRawBody(ctx.req, { limit: 1024 * 1024 });
      const check = verifyHubSpotSignature(
        {
          method: ctx.method,
          url: `${ctx.protocol}://${ctx.host}${ctx.originalUrl}`,
          rawBody,
          headers: ctx.headers,
        },
        { clientSecret: secret, maxAgeMs: 5 * 60 * 1000, allowLegacyVersions: false },
        Date.now(),
      );
      if (!check.ok) {
        ctx.status = 401;
        ctx.body = { error: check.reason };
        return;
      }
      const events = JSON.parse(rawBody.toString('utf8')) as { portalId: number }[];
      try {
        await write(events.map((event) => ({ key: String(event.portalId), value: JSON.stringify(event) })));
      } catch {
        ctx.status = 503;
        ctx.body = { error: 'kafka_unavailable' };
        return;
      }
      ctx.body = { accepted: events.length };
    });
  } else {
    throw new Error(`--serve ${kind}: expected hello, naive or floor`);
  }
  const server = app.listen(port, '127.0.0.1');
  process.on('SIGTERM', () => {
    server.close();
    process.exit(0);
  });
};

/**
 * The floor's one design change from naive: the requests read in one turn of the event loop share
 * one send (up to SHARED_SEND_BYTES of values, under the broker's 1 MiB batch limit), and the next
 * send starts when the last one is acknowledged (one in flight, as an idempotent producer allows).
 * A bench baseline only: a bad record fails every request of its send. Not ingest's
 * BatchingPublisher (lib/kafka), whose per-caller isolation and size checks are part of what the
 * floor leaves out.
 */
const SHARED_SEND_BYTES = 512 * 1024;
const sharedSends = <M extends { value: string }>(
  send: (messages: M[]) => Promise<unknown>,
): ((messages: M[]) => Promise<void>) => {
  let waiting: { messages: M[]; bytes: number; settle: (error?: Error) => void }[] = [];
  let sending = false;
  const flush = (): void => {
    if (sending || waiting.length === 0) return;
    let bytes = 0;
    let taken = 0;
    while (
      taken < waiting.length &&
      (taken === 0 || bytes + (waiting[taken]?.bytes ?? 0) <= SHARED_SEND_BYTES)
    )
      bytes += waiting[taken++]?.bytes ?? 0;
    const batch = waiting.slice(0, taken);
    waiting = waiting.slice(taken);
    sending = true;
    send(batch.flatMap((each) => each.messages))
      .then(
        () => batch.forEach((each) => each.settle()),
        (error: unknown) =>
          batch.forEach((each) => each.settle(error instanceof Error ? error : new Error(String(error)))),
      )
      .finally(() => {
        sending = false;
        flush();
      });
  };
  return (messages) =>
    new Promise<void>((resolve, reject) => {
      const bytes = messages.reduce((sum, message) => sum + message.value.length, 0);
      waiting.push({ messages, bytes, settle: (error) => (error === undefined ? resolve() : reject(error)) });
      if (waiting.length === 1) setImmediate(flush);
    });
};

// The bench (parent mode) ------------------------------------------------------------------------

type Server = { readonly target: Target; readonly child: ChildProcess; readonly port: number };

const spawnServer = async (
  target: Target,
  env: Record<string, string>,
  /** argv: node's arguments (flags, the entry file, its arguments). */
  options: { argv: string[]; readyPath: string; logFile: string },
): Promise<Server> => {
  const port = await freePort();
  const child = spawn(process.execPath, options.argv, {
    cwd: repoRoot,
    env: { ...process.env, ...env, PORT: String(port) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const log = createWriteStream(options.logFile, { flags: 'a' });
  child.stdout?.pipe(log);
  child.stderr?.pipe(log);
  await waitUntil(
    `${target} to answer GET ${options.readyPath} (its log: ${options.logFile})`,
    async () => {
      if (child.exitCode !== null)
        throw new Error(`${target} exited with ${child.exitCode}; see ${options.logFile}`);
      return fetch(`http://127.0.0.1:${port}${options.readyPath}`).then(
        (response) => response.status < 500,
        () => false,
      );
    },
    90_000,
    100,
  );
  return { target, child, port };
};

const stopServer = (server: Server): Promise<void> => stopGracefully(server.child, 20_000);

/** Signed bodies of `events` conversation.newMessage events each, signed for `url` now. */
const requestPool = (url: string, path: string, portalId: number, events: number): AutocannonRequest[] =>
  Array.from({ length: POOL_SIZE }, () => {
    const body = JSON.stringify(Array.from({ length: events }, () => fixtures.webhookEvent({ portalId })));
    return { method: 'POST', path, headers: signedWebhookHeaders(url, body, CLIENT_SECRET), body };
  });

type Measurement = {
  readonly round: number;
  readonly scenario: Scenario;
  readonly target: Target;
  readonly requestsPerS: number;
  readonly eventsPerS: number;
  readonly p50: number;
  readonly p99: number;
  readonly non2xx: number;
  readonly errors: number;
  readonly cpuMsPerEvent: number;
  readonly accepted: number;
  /** ingest only: median wait of a request for its shared acks=all send (ingest_durable_write_seconds). */
  readonly durableWaitP50Ms: number;
};

const DURABLE_WAIT = 'ingest_durable_write_seconds';
/** A histogram's samples after minus before (the window's own observations). */
const histogramDelta = (before: readonly Sample[], after: readonly Sample[]): Sample[] =>
  after
    .filter((sample) => sample.name === `${DURABLE_WAIT}_bucket`)
    .map((sample) => ({
      ...sample,
      value:
        sample.value -
        (before.find((old) => old.name === sample.name && old.labels.le === sample.labels.le)?.value ?? 0),
    }));

const measure = async (
  server: Server,
  scenario: Scenario,
  options: { seconds: number; connections: number; portalId: number },
  round: number,
): Promise<Measurement> => {
  const path = '/webhooks/hubspot';
  const url = `http://127.0.0.1:${server.port}`;
  const events = SCENARIOS[scenario];
  const requests = requestPool(`${url}${path}`, path, options.portalId, events);
  const pid = server.child.pid ?? 0;
  const scrapeIngest = (): Promise<Sample[]> =>
    server.target === 'ingest' ? scrape(server.port) : Promise.resolve([]);
  const metricsBefore = await scrapeIngest();
  const cpuBefore = processCpuMs(pid);
  const result = await autocannon({
    url,
    connections: options.connections,
    duration: options.seconds,
    requests,
    timeout: 10,
  });
  const cpuMs = processCpuMs(pid) - cpuBefore;
  const durableWait = histogramDelta(metricsBefore, await scrapeIngest());
  const accepted = result['2xx'];
  return {
    round,
    scenario,
    target: server.target,
    requestsPerS: accepted / result.duration,
    eventsPerS: (accepted * events) / result.duration,
    p50: result.latency.p50,
    p99: result.latency.p99,
    non2xx: result.non2xx,
    errors: result.errors + result.timeouts,
    cpuMsPerEvent: accepted > 0 ? cpuMs / (accepted * events) : Number.NaN,
    accepted: accepted * events,
    durableWaitP50Ms: histogramQuantile(durableWait, DURABLE_WAIT, 0.5) * 1000,
  };
};

const USAGE =
  'usage: npm run bench:ingest -- [--runs N] [--seconds S] [--connections C] [--quick] [--only ingest,hello,naive,floor] [--scenario single,batch] [--profile]';

const listOption = <T extends string>(raw: string, allowed: readonly T[], name: string): T[] => {
  const items = raw.split(',').filter((item) => item !== '');
  const unknown = items.filter((item) => !(allowed as readonly string[]).includes(item));
  if (unknown.length > 0)
    throw new Error(`${name}: unknown ${unknown.join(', ')} (expected ${allowed.join(', ')})`);
  return items as T[];
};

const main = async (): Promise<void> => {
  const { values } = parseArgs({
    options: {
      serve: { type: 'string' },
      runs: { type: 'string' },
      seconds: { type: 'string' },
      connections: { type: 'string', default: '50' },
      quick: { type: 'boolean', default: false },
      only: { type: 'string', default: TARGETS.join(',') },
      scenario: { type: 'string', default: 'single,batch' },
      profile: { type: 'boolean', default: false },
    },
  });
  if (values.serve !== undefined) return serveBaseline(values.serve);
  const runs = Number(values.runs ?? (values.quick ? 1 : 3));
  const seconds = Number(values.seconds ?? (values.quick ? 3 : 10));
  const connections = Number(values.connections);
  for (const [name, value] of [
    ['--runs', runs],
    ['--seconds', seconds],
    ['--connections', connections],
  ] as const)
    if (!Number.isInteger(value) || value <= 0)
      throw new Error(`${name} must be a positive integer\n${USAGE}`);
  const targets = listOption(values.only, TARGETS, '--only');
  const scenarios = listOption(values.scenario, Object.keys(SCENARIOS) as Scenario[], '--scenario');

  const infra = benchInfra();
  const prefixes = newRunPrefixes('ingest');
  const workDir = mkdtempSync(join(tmpdir(), `bench-ingest-${prefixes.runId}-`));
  /** Where `--profile` has a target (ingest, and the floor to compare it with) write its profile. */
  const profiled = (target: Target): string[] =>
    values.profile && (target === 'ingest' || target === 'floor')
      ? ['--cpu-prof', `--cpu-prof-dir=${join(workDir, 'profile', target)}`]
      : [];
  progress(
    `ingest bench ${prefixes.runId}: ${runs} round(s) of ${seconds} s per target and scenario, ${connections} connections; logs in ${workDir}`,
  );
  const hubspot = await startFakeHubSpot({ defaultRateLimit: null });
  const servers: Server[] = [];
  const kafka = benchKafka(infra.kafkaBrokers, `bench-ingest-${prefixes.runId}`);
  const naiveTopic = `${prefixes.topicPrefix}naive-raw`;
  let ingestAccepted = 0;
  try {
    const common = {
      KAFKA_BROKERS: infra.kafkaBrokers,
      SCHEMA_REGISTRY_URL: infra.schemaRegistryUrl,
      REDIS_URL: infra.redisUrl,
    };
    const portalId = 95_000_000 + Math.floor(Math.random() * 900_000);
    if (targets.includes('ingest')) {
      const ingestEnv = {
        ...common,
        NODE_ENV: 'production',
        ...(process.env.BENCH_INGEST_NODE_OPTIONS
          ? { NODE_OPTIONS: process.env.BENCH_INGEST_NODE_OPTIONS }
          : {}),
        LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? 'info',
        KAFKA_TOPIC_PREFIX: prefixes.topicPrefix,
        REDIS_KEY_PREFIX: prefixes.redisPrefix,
        KAFKA_PARTITIONS: String(PARTITIONS),
        KAFKA_REPLICATION_FACTOR: '1',
        HUBSPOT_API_BASE_URL: hubspot.url,
        HUBSPOT_CLIENT_SECRET: CLIENT_SECRET,
        ADMIN_TOKEN,
        SECRETS_KEY: randomBytes(32).toString('base64'),
        METRICS_PORT: '0',
      };
      const ingest = await spawnServer('ingest', ingestEnv, {
        argv: [...profiled('ingest'), join(repoRoot, 'services/ingest/src/main.ts')],
        readyPath: '/readyz',
        logFile: join(workDir, 'ingest.log'),
      });
      servers.push(ingest);
      await withConsole(ingestEnv, (consoleUrl) =>
        registerTestOrg(consoleUrl, hubspot, { orgId: `bench-ingest-${prefixes.runId}`, portalId }),
      );
    }
    if (targets.includes('naive') || targets.includes('floor')) {
      const admin = kafka.admin();
      await admin.connect();
      await admin
        .createTopics({
          topics: [{ topic: naiveTopic, numPartitions: PARTITIONS, replicationFactor: 1 }],
          waitForLeaders: true,
        })
        .finally(() => admin.disconnect());
    }
    for (const target of (['hello', 'naive', 'floor'] as const).filter((each) => targets.includes(each)))
      servers.push(
        await spawnServer(
          target,
          { ...common, NAIVE_TOPIC: naiveTopic, NAIVE_SECRET: CLIENT_SECRET },
          {
            argv: [...profiled(target), benchFile, '--serve', target],
            readyPath: '/',
            logFile: join(workDir, `${target}.log`),
          },
        ),
      );
    const ordered = TARGETS.map((target) => servers.find((server) => server.target === target)).filter(
      (server): server is Server => server !== undefined,
    );

    const load = { seconds, connections, portalId };
    progress('warm-up (not measured): 3 s per target and scenario');
    for (const scenario of scenarios)
      for (const server of ordered) {
        const warm = await measure(server, scenario, { ...load, seconds: 3 }, 0);
        if (server.target === 'ingest') ingestAccepted += warm.accepted;
      }

    const results: Measurement[] = [];
    for (let round = 1; round <= runs; round++) {
      for (const scenario of scenarios) {
        // Who goes first rotates each round.
        const order = ordered.map((_, index) => ordered[(index + round - 1) % ordered.length] as Server);
        for (const server of order) {
          const result = await measure(server, scenario, load, round);
          results.push(result);
          if (server.target === 'ingest') ingestAccepted += result.accepted;
          progress(
            `round ${round} ${scenario.padEnd(6)} ${server.target.padEnd(6)} ${fmt(result.requestsPerS)} req/s, ${fmt(result.eventsPerS)} ev/s, p50 ${result.p50} ms, p99 ${result.p99} ms, non-2xx ${result.non2xx}, errors ${result.errors}, CPU ${fmt(result.cpuMsPerEvent, 4)} ms/event${server.target === 'ingest' ? `, durable wait p50 ${fmt(result.durableWaitP50Ms, 1)} ms` : ''}`,
          );
        }
      }
    }
    report(
      results,
      runs,
      scenarios,
      ordered.map((server) => server.target),
    );

    if (targets.includes('ingest')) {
      const stored = await topicRecordCount(kafka, topicsFor(prefixes.topicPrefix).rawEvents.name);
      console.log(
        `\ndurable check: ingest answered 200 for ${ingestAccepted} events (warm-up included); the raw topic holds ${stored} records${stored >= ingestAccepted ? ' (none missing)' : ' — MISSING RECORDS'}`,
      );
    }
    const uptime = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
    console.log(`load average at the end (1, 5, 15 min): ${uptime}`);
  } finally {
    await Promise.allSettled(servers.map(stopServer));
    await hubspot.close();
    await cleanUpRun(infra, prefixes);
  }
  for (const target of targets.filter((each) => profiled(each).length > 0)) {
    const { file, profile } = readNewestProfile(join(workDir, 'profile', target));
    const summary = summariseProfile(profile);
    const rows = profileRows(summary);
    printTable(
      `${target} CPU profile (${file}): busy ${fmt(summary.busyMs)} ms, idle ${fmt(summary.idleMs)} ms; top 15 self-time frames`,
      rows.frames,
    );
    printTable(
      `${target} busy time per library (Node and native frames charged to the library or project code that called them; "self only": without)`,
      rows.categories,
    );
  }
};

const report = (
  results: readonly Measurement[],
  runs: number,
  scenarios: readonly Scenario[],
  targets: readonly Target[],
): void => {
  printTable(
    'every run',
    results.map((result) => ({
      round: result.round,
      scenario: result.scenario,
      target: result.target,
      'req/s': fmt(result.requestsPerS),
      'events/s': fmt(result.eventsPerS),
      'p50 ms': result.p50,
      'p99 ms': result.p99,
      'non-2xx': result.non2xx,
      errors: result.errors,
      'CPU ms/event': fmt(result.cpuMsPerEvent, 4),
      'durable wait p50 ms': result.target === 'ingest' ? fmt(result.durableWaitP50Ms, 1) : '',
    })),
  );
  const of = (scenario: Scenario, target: Target): Measurement[] =>
    results.filter((result) => result.scenario === scenario && result.target === target);
  printTable(
    `medians of ${runs} round(s)`,
    scenarios.flatMap((scenario) =>
      targets.map((target) => {
        const runsOf = of(scenario, target);
        return {
          scenario: `${scenario} (${SCENARIOS[scenario]} event${SCENARIOS[scenario] > 1 ? 's' : ''}/request)`,
          target,
          'req/s': fmt(median(runsOf.map((run) => run.requestsPerS))),
          'events/s': fmt(median(runsOf.map((run) => run.eventsPerS))),
          'p50 ms': fmt(median(runsOf.map((run) => run.p50))),
          'p99 ms': fmt(median(runsOf.map((run) => run.p99))),
          'non-2xx (sum)': runsOf.reduce((sum, run) => sum + run.non2xx + run.errors, 0),
          'CPU ms/event': fmt(median(runsOf.map((run) => run.cpuMsPerEvent)), 4),
          'durable wait p50 ms':
            target === 'ingest' ? fmt(median(runsOf.map((run) => run.durableWaitP50Ms)), 1) : '',
        };
      }),
    ),
  );
  const ratioRows: Record<string, string>[] = [];
  const ratio = (scenario: Scenario, of1: Target, of2: Target, target: string): void => {
    const perRound = Array.from({ length: runs }, (_, index) => {
      const first = of(scenario, of1).find((run) => run.round === index + 1);
      const second = of(scenario, of2).find((run) => run.round === index + 1);
      return first && second ? first.requestsPerS / second.requestsPerS : Number.NaN;
    });
    ratioRows.push({
      scenario,
      ratio: `${of1} / ${of2}`,
      'median of per-round ratios': fmt(median(perRound), 2),
      'per round': perRound.map((each) => fmt(each, 2)).join(', '),
      'issue 10 target': target,
    });
  };
  const ISSUE_10_TARGETS: Partial<Record<`${Scenario} ${Target}`, string>> = {
    'single hello': '>= 0.70',
    'single naive': '>= 5.0',
    'batch naive': '> 1.0',
  };
  for (const scenario of scenarios) {
    if (targets.includes('ingest'))
      for (const baseline of targets.filter((target) => target !== 'ingest'))
        ratio(scenario, 'ingest', baseline, ISSUE_10_TARGETS[`${scenario} ${baseline}`] ?? '');
    // How close the least possible durable app comes to the hello-world: the ceiling of the
    // targets above for anything built on koa + kafkajs on this machine.
    if (targets.includes('floor')) {
      if (targets.includes('hello')) ratio(scenario, 'floor', 'hello', '');
      if (targets.includes('naive')) ratio(scenario, 'floor', 'naive', '');
    }
  }
  printTable('ratios (requests/s; side by side in each round)', ratioRows);
  const batchIngest = median(of('batch', 'ingest').map((run) => run.eventsPerS));
  if (scenarios.includes('batch'))
    console.log(
      `\n100-event batches: ingest ${fmt(batchIngest)} durable events/s (issue 10 target: >= 100,000)`,
    );
};

main().then(
  () => {
    // A baseline server keeps running; the bench itself exits once it printed.
    if (parseArgs({ options: { serve: { type: 'string' } }, strict: false }).values.serve === undefined)
      process.exit(0);
  },
  (error: unknown) => {
    console.error(`ingest bench: ${error instanceof Error ? error.message : String(error)}`);
    process.exit(1);
  },
);
