/**
 * Capacity (issue 22): what ONE replica of each service costs per event and sustains, measured
 * one service at a time so every figure belongs to one process: its CPU time (/proc, user +
 * system), the Redis commands it sent (INFO commandstats of a redis-server of the bench's own,
 * and that server's CPU), the Kafka records and bytes it wrote (high watermarks and the broker's
 * log files), and its HubSpot and OpenCX calls (the fakes' request logs). Then the sizing for
 * 1k, 10k and 100k events/s from the medians (bench/capacity-model.ts).
 *
 * The mix is conversation turns on live chat: a customer message (one in ten starts a new
 * conversation, whose session OpenCX creates) that OpenCX's AI answers, and the webhook HubSpot
 * then sends for the AI's own answer (re-fetched and skipped as own_ai_echo). So a turn is two
 * webhook events, one re-fetch each, one domain event, one OpenCX send, one reply posted.
 *
 * Each round, on fresh topic and Redis prefixes:
 *   1. ingest (its own process), loaded by autocannon for --ingest-seconds per scenario (signed
 *      1-event requests, then 100-event batches) after a 3 s warm-up of each;
 *   2. the processor and outbound (each its own process) handle --warm-turns turns loaded through
 *      another ingest (not measured: V8 compiles the hot paths), then wait paused (SIGSTOP) while
 *      --turns more are loaded; the processor is resumed and drains its backlog alone, then
 *      outbound drains its own (the fake AI answering every message). Each drain is measured from
 *      just before the resume to the poll that sees the last unit done, so nothing is in flight at
 *      either end; the rate from the first progress seen (a rejoin after the pause is no work);
 *   3. the bench's own posted-replies table reads 50,000 records shaped like the run's, as every
 *      outbound replica reads the records the others write: the CPU one table record costs.
 * Then each process's CPU at rest over --idle-seconds, after as many to settle; the broker's CPU
 * at rest (measured at the start of each round) is taken off its CPU in each window. HubSpot and
 * OpenCX answer after --hubspot-latency-ms / --opencx-latency-ms; their per-tenant limits are
 * raised, so the figure is the pipeline's. AI answers are posted as a long-running replica would
 * (the organisations' Redis memory of reply attempts is set an hour back, see
 * services/outbound/src/reply-attempts.ts).
 *
 *   npm run bench:capacity -- [--rounds 3] [--turns 10000] [--warm-turns 4000] [--orgs 8]
 *        [--ingest-seconds 10] [--connections 50] [--hubspot-latency-ms 20] [--opencx-latency-ms 20]
 *        [--redis-port 7501] [--broker-pid PID] [--kafka-log-dir DIR] [--idle-seconds 5] [--quick]
 *
 * --redis-port starts a redis-server of the bench's own there (no persistence) and stops it at the
 * end; without it the bench starts one on a free port. --broker-pid and --kafka-log-dir default to
 * the local stack's (.local/run) when KAFKA_BROKERS is its port; without them the broker's CPU and
 * the bytes written are not printed.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { Admin } from 'kafkajs';
import { Redis } from 'ioredis';
import { createKafka, topicsFor } from '../lib/kafka/index.ts';
import { createLogger } from '../lib/log.ts';
import { PostedReplies } from '../lib/posted-replies.ts';
import { deriveEventId } from '../lib/ids.ts';
import { AI_MARKER } from '../services/outbound/src/post-ai-reply.ts';
import { memorySinceKey } from '../services/outbound/src/redis-memory.ts';
import * as fixtures from '../test/fakes/hubspot-fixtures.ts';
import { startFakeHubSpot, type FakeHubSpot } from '../test/fakes/hubspot.ts';
import { startFakeOpenCx, type FakeOpenCx } from '../test/fakes/opencx.ts';
import { ADMIN_TOKEN, CLIENT_SECRET, registerTestOrg, type TestOrg } from '../test/support/pipeline.ts';
import { freePort } from '../test/support/processes.ts';
import { postSignedWebhook, signedWebhookHeaders } from '../test/support/signed-delivery.ts';
import { killAllChildren, Replica } from '../test/support/soak/cluster.ts';
import {
  CHART_DEFAULT_PLAN,
  ONE_CORE_PLAN,
  sizeFor,
  type DeploymentPlan,
  type MeasuredCosts,
  type ServiceCost,
  type ServiceSizing,
} from './capacity-model.ts';
import {
  benchInfra,
  benchKafka,
  cleanUpRun,
  fmt,
  median,
  newRunPrefixes,
  printTable,
  processCpuMs,
  progress,
  scrape,
  sleep,
  sumOf,
  waitUntil,
  withConsole,
} from './support.ts';

const repoRoot = fileURLToPath(new URL('../', import.meta.url));
const MESSAGES_PER_CONVERSATION = 10;
const PARTITIONS = 6;
const POOL_SIZE = 64;
const RATES = [1_000, 10_000, 100_000] as const;

// autocannon ships no types: the part of its API used here (as in ingest.bench.ts).
type AutocannonRequest = { method: string; path: string; headers: Record<string, string>; body: string };
type AutocannonResult = { '2xx': number; non2xx: number; errors: number; timeouts: number; duration: number };
type Autocannon = (options: {
  url: string;
  connections: number;
  duration: number;
  requests: AutocannonRequest[];
  timeout: number;
}) => Promise<AutocannonResult>;
const autocannon = createRequire(import.meta.url)('autocannon') as Autocannon;

const USAGE =
  'usage: npm run bench:capacity -- [--rounds 3] [--turns 10000] [--warm-turns 4000] [--orgs 8] [--ingest-seconds 10] [--connections 50] [--hubspot-latency-ms 20] [--opencx-latency-ms 20] [--redis-port P] [--broker-pid PID] [--kafka-log-dir DIR] [--idle-seconds 5] [--quick]';

type Options = {
  readonly rounds: number;
  readonly turns: number;
  readonly warmTurns: number;
  readonly orgs: number;
  readonly ingestSeconds: number;
  readonly connections: number;
  readonly hubspotLatencyMs: number;
  readonly opencxLatencyMs: number;
  readonly redisPort: number | undefined;
  readonly brokerPid: number | undefined;
  readonly kafkaLogDir: string | undefined;
  readonly idleSeconds: number;
};

const parseOptions = (): Options => {
  const { values } = parseArgs({
    options: {
      rounds: { type: 'string' },
      turns: { type: 'string' },
      'warm-turns': { type: 'string' },
      orgs: { type: 'string', default: '8' },
      'ingest-seconds': { type: 'string' },
      connections: { type: 'string', default: '50' },
      'hubspot-latency-ms': { type: 'string', default: '20' },
      'opencx-latency-ms': { type: 'string', default: '20' },
      'redis-port': { type: 'string' },
      'broker-pid': { type: 'string' },
      'kafka-log-dir': { type: 'string' },
      'idle-seconds': { type: 'string', default: '5' },
      quick: { type: 'boolean', default: false },
    },
  });
  const quick = values.quick;
  const number = (name: string, raw: string | undefined, fallback: number, min = 1): number => {
    const value = Number(raw ?? fallback);
    if (!Number.isInteger(value) || value < min)
      throw new Error(`--${name} must be an integer ≥ ${min}, got ${raw}\n${USAGE}`);
    return value;
  };
  const optional = (name: string, raw: string | undefined): number | undefined =>
    raw === undefined ? undefined : number(name, raw, 0);
  const local = localStack();
  return {
    rounds: number('rounds', values.rounds, quick ? 1 : 3),
    turns: number('turns', values.turns, quick ? 2000 : 10_000),
    warmTurns: number('warm-turns', values['warm-turns'], quick ? 500 : 4000, 1),
    orgs: number('orgs', values.orgs, 8),
    ingestSeconds: number('ingest-seconds', values['ingest-seconds'], quick ? 3 : 10),
    connections: number('connections', values.connections, 50),
    hubspotLatencyMs: number('hubspot-latency-ms', values['hubspot-latency-ms'], 20, 0),
    opencxLatencyMs: number('opencx-latency-ms', values['opencx-latency-ms'], 20, 0),
    redisPort: optional('redis-port', values['redis-port']),
    brokerPid: optional('broker-pid', values['broker-pid']) ?? local?.brokerPid,
    kafkaLogDir: values['kafka-log-dir'] ?? local?.logDir,
    idleSeconds: number('idle-seconds', values['idle-seconds'], 5, 0),
  };
};

/** The local stack's broker (infra/local), when KAFKA_BROKERS names its port: its pid and log dir. */
const localStack = (): { brokerPid: number; logDir: string } | undefined => {
  const run = join(repoRoot, '.local/run');
  try {
    const port = readFileSync(join(run, 'kafka.port'), 'utf8').trim();
    const brokers = process.env.KAFKA_BROKERS ?? '127.0.0.1:9092';
    if (brokers !== `127.0.0.1:${port}`) return undefined;
    const properties = readFileSync(join(run, 'kafka-server.properties'), 'utf8');
    const logDir = /^log\.dirs=(.*)$/m.exec(properties)?.[1]?.trim();
    const brokerPid = Number(readFileSync(join(run, 'kafka.pid'), 'utf8').trim());
    return logDir && Number.isInteger(brokerPid) ? { brokerPid, logDir } : undefined;
  } catch {
    return undefined;
  }
};

// A redis-server of the bench's own: INFO commandstats then counts the services' commands only --

type BenchRedis = { readonly url: string; readonly pid: number; readonly stop: () => Promise<void> };

const startRedis = async (port: number, logDir: string): Promise<BenchRedis> => {
  const child: ChildProcess = spawn(
    'redis-server',
    [
      '--port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--save',
      '',
      '--appendonly',
      'no',
      '--logfile',
      join(logDir, 'redis.log'),
    ],
    { stdio: 'ignore' },
  );
  const url = `redis://127.0.0.1:${port}`;
  await waitUntil(
    `a redis-server of the bench's own on port ${port}`,
    async () => {
      if (child.exitCode !== null)
        throw new Error(`redis-server exited (${child.exitCode}): is port ${port} taken?`);
      const probe = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
      probe.on('error', () => undefined);
      try {
        await probe.connect();
        const info = await probe.info('server');
        return /process_id:(\d+)/.exec(info)?.[1] === String(child.pid);
      } catch {
        return false;
      } finally {
        probe.disconnect();
      }
    },
    15_000,
    100,
  );
  return {
    url,
    pid: child.pid ?? 0,
    stop: async () => {
      if (child.exitCode !== null) return;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await exited;
    },
  };
};

type CommandStats = ReadonlyMap<string, number>;

const commandStats = async (redis: Redis): Promise<CommandStats> => {
  const stats = new Map<string, number>();
  for (const match of (await redis.info('commandstats')).matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm))
    stats.set(match[1] ?? '', Number(match[2]));
  return stats;
};

/** Commands between two snapshots, without the bench's own INFO. */
const commandDelta = (before: CommandStats, after: CommandStats): Map<string, number> => {
  const delta = new Map<string, number>();
  for (const [command, calls] of after) {
    if (command === 'info') continue;
    const added = calls - (before.get(command) ?? 0);
    if (added > 0) delta.set(command, added);
  }
  return delta;
};

// Kafka: records (high watermarks) and bytes (the leaders' log segments) under the run's prefix --

const kafkaRecords = async (admin: Admin, prefix: string): Promise<number> => {
  const topics = (await admin.listTopics()).filter((topic) => topic.startsWith(prefix));
  let total = 0;
  for (const topic of topics)
    for (const { high } of await admin.fetchTopicOffsets(topic)) total += Number(high);
  return total;
};

const kafkaBytes = (logDir: string | undefined, prefix: string): number => {
  if (logDir === undefined) return Number.NaN;
  let total = 0;
  for (const directory of readdirSync(logDir).filter((name) => name.startsWith(prefix))) {
    try {
      for (const file of readdirSync(join(logDir, directory)))
        if (file.endsWith('.log')) total += statSync(join(logDir, directory, file)).size;
    } catch {
      // A partition directory deleted meanwhile: nothing of this run.
    }
  }
  return total;
};

// A snapshot of everything counted, and the difference of two --------------------------------

type Snapshot = {
  readonly at: number;
  /** Work done so far (events handled, turns finished), read together with the CPU times. */
  readonly units: number;
  readonly serviceCpuMs: number;
  readonly redisCpuMs: number;
  readonly brokerCpuMs: number;
  readonly commands: CommandStats;
  readonly kafkaRecords: number;
  readonly kafkaBytes: number;
  readonly hubspotCalls: number;
  readonly opencxCalls: number;
};

type Meter = {
  readonly snapshot: (units: () => Promise<number>) => Promise<Snapshot>;
};

const meterFor = (context: {
  readonly servicePid: number;
  readonly redis: Redis;
  readonly redisPid: number;
  readonly brokerPid: number | undefined;
  readonly admin: Admin;
  readonly prefix: string;
  readonly kafkaLogDir: string | undefined;
  readonly hubspot: FakeHubSpot;
  readonly opencx: FakeOpenCx;
}): Meter => ({
  snapshot: async (units) => {
    const at = performance.now();
    const serviceCpuMs = processCpuMs(context.servicePid);
    const redisCpuMs = processCpuMs(context.redisPid);
    const brokerCpuMs = context.brokerPid === undefined ? Number.NaN : processCpuMs(context.brokerPid);
    const hubspotCalls = context.hubspot.requests.length;
    const opencxCalls = context.opencx.requests.length;
    const [done, commands, records] = await Promise.all([
      units(),
      commandStats(context.redis),
      kafkaRecords(context.admin, context.prefix),
    ]);
    return {
      at,
      units: done,
      serviceCpuMs,
      redisCpuMs,
      brokerCpuMs,
      commands,
      kafkaRecords: records,
      kafkaBytes: kafkaBytes(context.kafkaLogDir, context.prefix),
      hubspotCalls,
      opencxCalls,
    };
  },
});

/** What one service did per unit of work (an event, a turn) over a measured window. */
type Window = {
  readonly units: number;
  readonly seconds: number;
  readonly perSecond: number;
  readonly cpuMs: number;
  readonly redisCommands: number;
  readonly redisCpuMs: number;
  readonly brokerCpuMs: number;
  readonly kafkaRecords: number;
  readonly kafkaBytes: number;
  readonly hubspotCalls: number;
  readonly opencxCalls: number;
  /** Commands per unit, the busiest first. */
  readonly topCommands: string;
};

/** `brokerIdleMsPerS`: the broker's CPU at rest, taken off its CPU in the window. */
const windowOf = (before: Snapshot, after: Snapshot, brokerIdleMsPerS: number): Window => {
  const units = after.units - before.units;
  const commands = commandDelta(before.commands, after.commands);
  const total = [...commands.values()].reduce((sum, calls) => sum + calls, 0);
  const seconds = (after.at - before.at) / 1000;
  return {
    units,
    seconds,
    perSecond: units / seconds,
    cpuMs: (after.serviceCpuMs - before.serviceCpuMs) / units,
    redisCommands: total / units,
    redisCpuMs: (after.redisCpuMs - before.redisCpuMs) / units,
    brokerCpuMs: (after.brokerCpuMs - before.brokerCpuMs - brokerIdleMsPerS * seconds) / units,
    kafkaRecords: (after.kafkaRecords - before.kafkaRecords) / units,
    kafkaBytes: (after.kafkaBytes - before.kafkaBytes) / units,
    hubspotCalls: (after.hubspotCalls - before.hubspotCalls) / units,
    opencxCalls: (after.opencxCalls - before.opencxCalls) / units,
    topCommands: [...commands]
      .sort(([, a], [, b]) => b - a)
      .slice(0, 6)
      .map(([command, calls]) => `${command} ${fmt(calls / units, 2)}`)
      .join(', '),
  };
};

/** A process's CPU at rest, ms per second: `seconds` to settle, then `seconds` measured. */
const idleCpu = async (pid: number, seconds: number): Promise<number> => {
  if (seconds === 0) return Number.NaN;
  // Settle first: right after a burst, V8 still collects and compiles.
  await sleep(seconds * 1000);
  const before = processCpuMs(pid);
  await sleep(seconds * 1000);
  return (processCpuMs(pid) - before) / seconds;
};

// The services' environment -------------------------------------------------------------------

const serviceEnv = (
  prefixes: ReturnType<typeof newRunPrefixes>,
  infra: ReturnType<typeof benchInfra>,
  upstreams: { hubspot: FakeHubSpot; opencx: FakeOpenCx },
): Record<string, string> => ({
  NODE_ENV: 'production',
  LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? 'info',
  KAFKA_BROKERS: infra.kafkaBrokers,
  SCHEMA_REGISTRY_URL: infra.schemaRegistryUrl,
  REDIS_URL: infra.redisUrl,
  KAFKA_TOPIC_PREFIX: prefixes.topicPrefix,
  REDIS_KEY_PREFIX: prefixes.redisPrefix,
  KAFKA_PARTITIONS: String(PARTITIONS),
  KAFKA_REPLICATION_FACTOR: '1',
  HUBSPOT_API_BASE_URL: upstreams.hubspot.url,
  OPENCX_API_BASE_URL: upstreams.opencx.url,
  HUBSPOT_CLIENT_SECRET: CLIENT_SECRET,
  ADMIN_TOKEN,
  SECRETS_KEY: randomBytes(32).toString('base64'),
  HUBSPOT_RATE_LIMIT_MAX: '1000000',
  OPENCX_RATE_LIMIT_MAX: '1000000',
  // A replica paused (SIGSTOP) while its backlog is loaded keeps its partitions.
  KAFKA_SESSION_TIMEOUT_MS: '180000',
});

const registerOrgs = async (
  env: Record<string, string>,
  hubspot: FakeHubSpot,
  runId: string,
  count: number,
): Promise<TestOrg[]> =>
  withConsole(env, async (consoleUrl) => {
    const orgs: TestOrg[] = [];
    for (let index = 0; index < count; index++)
      orgs.push(
        await registerTestOrg(consoleUrl, hubspot, {
          orgId: `bench-capacity-${runId}-${index + 1}`,
          portalId: 97_000_000 + (parseInt(runId.slice(0, 4), 16) % 1000) * 100 + index,
        }),
      );
    return orgs;
  });

// 1. ingest ------------------------------------------------------------------------------------

const INGEST_SCENARIOS = { single: 1, batch: 100 } as const;
type IngestScenario = keyof typeof INGEST_SCENARIOS;
type IngestResult = Window & { readonly scenario: IngestScenario; readonly non2xx: number };

type Shared = {
  readonly options: Options;
  readonly infra: ReturnType<typeof benchInfra>;
  readonly redis: BenchRedis;
  readonly redisClient: Redis;
  readonly hubspot: FakeHubSpot;
  readonly opencx: FakeOpenCx;
  readonly logDir: string;
  /** The broker's CPU at rest (ms per s), measured at the start of the round; NaN without its pid. */
  readonly brokerIdleMsPerS: number;
};

const measureIngest = async (shared: Shared, round: number): Promise<IngestResult[]> => {
  const { options, hubspot, opencx } = shared;
  const prefixes = newRunPrefixes('capacity');
  const env = serviceEnv(prefixes, shared.infra, { hubspot, opencx });
  const ingest = new Replica('ingest', round * 10 + 1, env, shared.logDir);
  const admin = benchKafka(shared.infra.kafkaBrokers, 'bench-capacity').admin();
  const results: IngestResult[] = [];
  try {
    await admin.connect();
    await ingest.start();
    const [org] = await registerOrgs(env, hubspot, prefixes.runId, 1);
    const url = `http://127.0.0.1:${ingest.port}`;
    const path = '/webhooks/hubspot';
    const meter = meterFor({
      servicePid: ingest.pid ?? 0,
      redis: shared.redisClient,
      redisPid: shared.redis.pid,
      brokerPid: options.brokerPid,
      admin,
      prefix: prefixes.topicPrefix,
      kafkaLogDir: options.kafkaLogDir,
      hubspot,
      opencx,
    });
    for (const scenario of Object.keys(INGEST_SCENARIOS) as IngestScenario[]) {
      const events = INGEST_SCENARIOS[scenario];
      // Signed just before each load (HubSpot's signatures are valid for 5 minutes).
      const requests = (): AutocannonRequest[] =>
        Array.from({ length: POOL_SIZE }, () => {
          const body = JSON.stringify(
            Array.from({ length: events }, () => fixtures.webhookEvent({ portalId: org?.portalId ?? 0 })),
          );
          return {
            method: 'POST',
            path,
            headers: signedWebhookHeaders(`${url}${path}`, body, CLIENT_SECRET),
            body,
          };
        });
      await autocannon({
        url,
        connections: options.connections,
        duration: 3,
        requests: requests(),
        timeout: 10,
      });
      const load = requests();
      const accepted = async (): Promise<number> =>
        sumOf(await scrape(ingest.port), 'ingest_events_accepted_total');
      const before = await meter.snapshot(accepted);
      const result = await autocannon({
        url,
        connections: options.connections,
        duration: options.ingestSeconds,
        requests: load,
        timeout: 10,
      });
      const after = await meter.snapshot(accepted);
      const measured = {
        ...windowOf(before, after, shared.brokerIdleMsPerS),
        scenario,
        non2xx: result.non2xx,
      };
      results.push(measured);
      progress(
        `round ${round} ingest ${scenario}: ${fmt(measured.perSecond)} events/s, CPU ${fmt(measured.cpuMs, 4)} ms/event, Redis ${fmt(measured.redisCommands, 3)} commands/event, Kafka ${fmt(measured.kafkaRecords, 2)} records and ${fmt(measured.kafkaBytes)} bytes/event, non-2xx ${result.non2xx}`,
      );
    }
  } finally {
    await ingest.stop();
    await admin.disconnect().catch(() => undefined);
    await cleanUpRun(shared.infra, prefixes);
  }
  return results;
};

// 2-4. processor, outbound, tables ---------------------------------------------------------------

type Turn = { readonly events: readonly object[] };

/** Conversation turns: the customer's message and the webhook of the AI's answer to it. */
const buildTurns = (count: number, orgs: readonly TestOrg[], hubspot: FakeHubSpot, label: string): Turn[] => {
  const running: { org: TestOrg; threadId: string; sent: number }[] = [];
  const turns: Turn[] = [];
  for (let index = 0; index < count; index++) {
    let conversation = running[Math.floor(Math.random() * running.length)];
    if (conversation === undefined || Math.random() < 1 / MESSAGES_PER_CONVERSATION) {
      const org = orgs[index % orgs.length] as TestOrg;
      conversation = { org, threadId: fixtures.newThreadId(), sent: 0 };
      hubspot.setThread(fixtures.thread({ id: conversation.threadId }), { portalId: org.portalId });
      running.push(conversation);
    }
    conversation.sent += 1;
    if (conversation.sent >= MESSAGES_PER_CONVERSATION) running.splice(running.indexOf(conversation), 1);
    const { org, threadId } = conversation;
    const customer = fixtures.message({ kind: 'customer-chat', threadId, text: `${label} #${index}` });
    const answer = fixtures.message({
      kind: 'agent-reply',
      threadId,
      text: `AI: ${label} #${index}\n\n${AI_MARKER}`,
      createdBy: org.aiActorId,
      senders: [{ actorId: org.aiActorId, name: 'OpenCX AI' }],
      client: { clientType: 'INTEGRATION', integrationAppId: fixtures.FIXTURE_APP_ID },
    });
    hubspot.addMessage(customer, { portalId: org.portalId });
    hubspot.addMessage(answer, { portalId: org.portalId });
    turns.push({
      events: [
        fixtures.webhookEventFor(customer, { portalId: org.portalId }),
        fixtures.webhookEventFor(answer, { portalId: org.portalId }),
      ],
    });
  }
  return turns;
};

type PipelineResult = {
  readonly processor: Window;
  readonly processorIdleMsPerS: number;
  readonly outbound: Window;
  readonly outboundIdleMsPerS: number;
  /** CPU ms per table record read by a replica that did not write it (posted replies, session links). */
  readonly tableCpuMsPerRecord: number;
  /** Table records written per turn that every outbound replica reads. */
  readonly outboundTableRecords: number;
  /** Session-link records per turn (the processor reads them too). */
  readonly linkRecords: number;
  readonly checks: string;
};

/** SIGSTOP / SIGCONT: a warmed-up replica waits while its input is loaded (its JIT and group kept). */
const pause = (replica: Replica): void => {
  if (replica.pid !== undefined) process.kill(replica.pid, 'SIGSTOP');
};
const resume = (replica: Replica): void => {
  if (replica.pid !== undefined) process.kill(replica.pid, 'SIGCONT');
};

/**
 * Resumes a paused replica whose backlog is loaded and measures its drain: counts and CPU from
 * just before it resumes (nothing in flight) to the first poll (every 100 ms) where `done`
 * holds (nothing in flight either), so every unit's whole work is inside. The rate is taken
 * between 10 % and 90 % of the backlog: without the first moments after the resume (a rejoin,
 * fetches starting) and the last conversations' tail.
 */
const measureDrain = async (
  label: string,
  replica: Replica,
  meter: Meter,
  progressOf: (samples: Awaited<ReturnType<typeof scrape>>) => { units: number; done: boolean },
  /** Units done when it was paused (a paused process answers no scrape), and the backlog's. */
  units: { pausedAt: number; backlog: number },
  brokerIdleMsPerS: number,
): Promise<Window> => {
  const unitsNow = async (): Promise<number> => progressOf(await scrape(replica.port)).units;
  const start = await meter.snapshot(() => Promise.resolve(units.pausedAt));
  resume(replica);
  const marks: { at: number; units: number }[] = [];
  const crossed = (share: number): { at: number; units: number } | undefined =>
    marks.find((mark) => mark.units - units.pausedAt >= share * units.backlog);
  let lastReport = Date.now();
  await waitUntil(
    label,
    async () => {
      const state = progressOf(await scrape(replica.port));
      marks.push({ at: performance.now(), units: state.units });
      if (Date.now() - lastReport > 5000) {
        progress(`  … ${label}: ${state.units - units.pausedAt}`);
        lastReport = Date.now();
      }
      return state.done;
    },
    600_000,
    100,
  );
  const end = await meter.snapshot(unitsNow);
  const window = windowOf(start, end, brokerIdleMsPerS);
  const from = crossed(0.1);
  const to = crossed(0.9);
  const perSecond =
    from !== undefined && to !== undefined && to.at > from.at
      ? (to.units - from.units) / ((to.at - from.at) / 1000)
      : window.perSecond;
  return { ...window, perSecond };
};

const TABLE_PROBE_RECORDS = 50_000;

/**
 * CPU (this process) for a replica's table to read one record it did not write: a posted-replies
 * table reads a topic of TABLE_PROBE_RECORDS records shaped like the run's (one per thread), less
 * the same table reading an empty topic (connecting and joining alone), per record.
 */
const tableReadCpu = async (kafkaBrokers: string, prefix: string, admin: Admin): Promise<number> => {
  const logger = createLogger('bench-capacity', 'silent');
  const kafka = createKafka({ clientId: 'bench-capacity-tables', brokers: kafkaBrokers.split(','), logger });
  const full = `${prefix}bench.table-probe`;
  const empty = `${prefix}bench.table-probe-empty`;
  await admin.createTopics({
    topics: [full, empty].map((topic) => ({ topic, numPartitions: 1, replicationFactor: 1 })),
    waitForLeaders: true,
  });
  const producer = kafka.producer();
  await producer.connect();
  try {
    const now = Date.now();
    for (let from = 0; from < TABLE_PROBE_RECORDS; from += 1000)
      await producer.send({
        topic: full,
        acks: -1,
        messages: Array.from({ length: 1000 }, (_, index) => ({
          key: `bench-capacity-org-${index % 8}:thread:${6_065_362_000 + from + index}`,
          value: JSON.stringify({
            eventId: deriveEventId('ai-reply', from + index),
            occurredAt: now,
            postedAt: now,
          }),
        })),
      });
  } finally {
    await producer.disconnect();
  }
  const readCpuMs = async (topic: string): Promise<number> => {
    const table = new PostedReplies({ kafka, topic, groupPrefix: prefix, logger });
    const before = process.cpuUsage();
    await table.start();
    const used = process.cpuUsage(before);
    await table.stop();
    return (used.user + used.system) / 1000;
  };
  const emptyMs = await readCpuMs(empty);
  const fullMs = await readCpuMs(full);
  return (fullMs - emptyMs) / TABLE_PROBE_RECORDS;
};

const measurePipeline = async (shared: Shared, round: number): Promise<PipelineResult> => {
  const { options, hubspot, opencx } = shared;
  const prefixes = newRunPrefixes('capacity');
  const topics = topicsFor(prefixes.topicPrefix);
  const env = serviceEnv(prefixes, shared.infra, { hubspot, opencx });
  const admin = benchKafka(shared.infra.kafkaBrokers, 'bench-capacity').admin();
  const loader = new Replica('ingest', round * 10 + 2, env, shared.logDir);
  const processor = new Replica('processor', round * 10 + 2, env, shared.logDir);
  const outbound = new Replica('outbound', round * 10 + 2, env, shared.logDir);
  const stopped = new Set<Replica>();
  const stop = async (replica: Replica): Promise<void> => {
    if (stopped.has(replica)) return;
    stopped.add(replica);
    resume(replica);
    await replica.stop();
  };
  const recordsOn = async (topic: string): Promise<number> =>
    (await admin.fetchTopicOffsets(topic)).reduce((sum, { high }) => sum + Number(high), 0);
  try {
    await admin.connect();
    await loader.start();
    const orgs = await registerOrgs(env, hubspot, prefixes.runId, options.orgs);
    const label = `capacity ${prefixes.runId}`;
    const turns = buildTurns(options.warmTurns + options.turns, orgs, hubspot, label);
    const warmEvents = turns.slice(0, options.warmTurns).flatMap((turn) => turn.events);
    const measuredEvents = turns.slice(options.warmTurns).flatMap((turn) => turn.events);
    const all = turns.length;
    const allEvents = warmEvents.length + measuredEvents.length;
    // Signed batches of 100, as HubSpot sends them, one after the other: a conversation's messages
    // reach the raw topic in the order they were written. (Out of order, an AI answer to an older
    // message is skipped: the conversation has moved past it.)
    const load = async (events: readonly object[]): Promise<void> => {
      for (let index = 0; index < events.length; index += 100) {
        const response = await postSignedWebhook(
          `http://127.0.0.1:${loader.port}/webhooks/hubspot`,
          JSON.stringify(events.slice(index, index + 100)),
          CLIENT_SECRET,
        );
        if (response.status !== 200)
          throw new Error(`ingest answered ${response.status}: ${await response.text()}`);
        await response.arrayBuffer();
      }
    };
    // A long-running deployment: Redis has remembered the organisations' reply attempts for an hour.
    for (const org of orgs)
      await shared.redisClient.set(
        memorySinceKey(prefixes.redisPrefix, org.orgId),
        String(Date.now() - 3_600_000),
      );

    // Warm-up (not measured): each replica handles the warm-up turns, then waits paused.
    await load(warmEvents);
    const processorProgress = (samples: Awaited<ReturnType<typeof scrape>>) => {
      const handled = sumOf(samples, 'processor_events_total');
      return { units: handled, done: handled >= allEvents };
    };
    const outboundProgress = (samples: Awaited<ReturnType<typeof scrape>>) => {
      const sent = sumOf(samples, 'outbound_events_applied_total', { type: 'customer-message' });
      const answered =
        sumOf(samples, 'outbound_events_applied_total', { type: 'ai-reply' }) +
        sumOf(samples, 'outbound_events_skipped_total', { type: 'ai-reply' });
      // A turn is its message at OpenCX and its answer handled: half of each.
      return { units: (sent + answered) / 2, sent, answered, done: sent >= all && answered >= all };
    };
    await processor.start();
    await waitUntil(
      'the processor to handle the warm-up',
      async () => sumOf(await scrape(processor.port), 'processor_events_total') >= warmEvents.length,
      600_000,
      200,
    );
    await outbound.start();
    await waitUntil(
      'outbound to apply the warm-up',
      async () => {
        const state = outboundProgress(await scrape(outbound.port));
        return state.sent >= options.warmTurns && state.answered >= options.warmTurns;
      },
      600_000,
      200,
    );
    const processorPausedAt = processorProgress(await scrape(processor.port)).units;
    const outboundPausedAt = outboundProgress(await scrape(outbound.port)).units;
    pause(processor);
    pause(outbound);
    await load(measuredEvents);
    await stop(loader);
    const onRaw = await recordsOn(topics.rawEvents.name);
    if (onRaw !== allEvents) throw new Error(`raw topic holds ${onRaw} records, expected ${allEvents}`);
    progress(
      `round ${round}: ${options.warmTurns} warm-up turns handled; ${measuredEvents.length} raw events of ${options.turns} turns loaded`,
    );

    const meterOf = (pid: number): Meter =>
      meterFor({
        servicePid: pid,
        redis: shared.redisClient,
        redisPid: shared.redis.pid,
        brokerPid: options.brokerPid,
        admin,
        prefix: prefixes.topicPrefix,
        kafkaLogDir: options.kafkaLogDir,
        hubspot,
        opencx,
      });

    const processorWindow = await measureDrain(
      'processor: raw events handled',
      processor,
      meterOf(processor.pid ?? 0),
      processorProgress,
      { pausedAt: processorPausedAt, backlog: measuredEvents.length },
      shared.brokerIdleMsPerS,
    );
    const emitted = sumOf(await scrape(processor.port), 'processor_domain_events_total');
    const processorIdleMsPerS = await idleCpu(processor.pid ?? 0, options.idleSeconds);
    progress(
      `round ${round} processor: ${fmt(processorWindow.perSecond)} events/s, CPU ${fmt(processorWindow.cpuMs, 3)} ms/event, Redis ${fmt(processorWindow.redisCommands, 2)} commands/event (${processorWindow.topCommands}), Kafka ${fmt(processorWindow.kafkaRecords, 2)} records and ${fmt(processorWindow.kafkaBytes)} bytes/event, HubSpot ${fmt(processorWindow.hubspotCalls, 2)} calls/event; idle ${fmt(processorIdleMsPerS, 1)} ms/s`,
    );
    await stop(processor);

    const outboundWindow = await measureDrain(
      'outbound: messages sent and AI answers handled',
      outbound,
      meterOf(outbound.pid ?? 0),
      outboundProgress,
      { pausedAt: outboundPausedAt, backlog: options.turns },
      shared.brokerIdleMsPerS,
    );
    const outboundSamples = await scrape(outbound.port);
    const outboundIdleMsPerS = await idleCpu(outbound.pid ?? 0, options.idleSeconds);
    progress(
      `round ${round} outbound: ${fmt(outboundWindow.perSecond)} turns/s, CPU ${fmt(outboundWindow.cpuMs, 3)} ms/turn, Redis ${fmt(outboundWindow.redisCommands, 2)} commands/turn (${outboundWindow.topCommands}), Kafka ${fmt(outboundWindow.kafkaRecords, 2)} records and ${fmt(outboundWindow.kafkaBytes)} bytes/turn, OpenCX ${fmt(outboundWindow.opencxCalls, 2)} and HubSpot ${fmt(outboundWindow.hubspotCalls, 2)} calls/turn; idle ${fmt(outboundIdleMsPerS, 1)} ms/s`,
    );
    await stop(outbound);

    const replyRecords = await recordsOn(topics.postedReplies.name);
    const linkRecords = await recordsOn(topics.sessionLinks.name);
    const tableCpuMsPerRecord = await tableReadCpu(shared.infra.kafkaBrokers, prefixes.topicPrefix, admin);
    const applied = sumOf(outboundSamples, 'outbound_events_applied_total', { type: 'customer-message' });
    const posted = sumOf(outboundSamples, 'outbound_ai_replies_posted_total');
    const skipped = sumOf(outboundSamples, 'outbound_events_skipped_total');
    const checks = `domain events ${emitted}/${all}, applied ${applied}/${all}, answers posted ${posted}/${all}, skipped ${skipped}, OpenCX violations ${opencx.violations.length}`;
    progress(
      `round ${round}: ${checks}; a table record costs a reader ${fmt(tableCpuMsPerRecord, 4)} CPU ms`,
    );
    return {
      processor: processorWindow,
      processorIdleMsPerS,
      outbound: outboundWindow,
      outboundIdleMsPerS,
      tableCpuMsPerRecord,
      outboundTableRecords: (replyRecords + linkRecords) / all,
      linkRecords: linkRecords / all,
      checks,
    };
  } finally {
    await Promise.allSettled([loader, processor, outbound].map(stop));
    await admin.disconnect().catch(() => undefined);
    await cleanUpRun(shared.infra, prefixes);
  }
};

// Report ------------------------------------------------------------------------------------------

/** "median [min–max]" of the rounds' values. */
const spread = (values: readonly number[], digits: number): string => {
  const finite = values.filter((value) => Number.isFinite(value));
  if (finite.length === 0) return 'n/a';
  if (finite.length === 1) return fmt(finite[0] ?? Number.NaN, digits);
  return `${fmt(median(finite), digits)} [${fmt(Math.min(...finite), digits)}–${fmt(Math.max(...finite), digits)}]`;
};

const report = (ingest: IngestResult[], pipeline: PipelineResult[], options: Options): void => {
  const ingestOf = (scenario: IngestScenario) => ingest.filter((result) => result.scenario === scenario);
  type Row = { what: string; unit: string; of: readonly Window[] };
  const rows: Row[] = [
    { what: 'ingest, 1-event requests', unit: 'event', of: ingestOf('single') },
    { what: 'ingest, 100-event batches', unit: 'event', of: ingestOf('batch') },
    { what: 'processor', unit: 'raw event', of: pipeline.map((result) => result.processor) },
    { what: 'outbound (+ its AI answer)', unit: 'turn', of: pipeline.map((result) => result.outbound) },
  ];
  printTable(
    `Per replica, one service at a time (median [min–max] of ${options.rounds} round(s)); a turn is two webhook events`,
    rows.map(({ what, unit, of }) => ({
      service: what,
      per: unit,
      'measured /s at saturation': spread(
        of.map((window) => window.perSecond),
        0,
      ),
      'CPU ms': spread(
        of.map((window) => window.cpuMs),
        4,
      ),
      '/s per core (1000 / CPU ms)': spread(
        of.map((window) => 1000 / window.cpuMs),
        0,
      ),
      'Redis commands': spread(
        of.map((window) => window.redisCommands),
        2,
      ),
      'Redis CPU ms': spread(
        of.map((window) => window.redisCpuMs),
        4,
      ),
      'Kafka records': spread(
        of.map((window) => window.kafkaRecords),
        2,
      ),
      'Kafka bytes': spread(
        of.map((window) => window.kafkaBytes),
        0,
      ),
      'broker CPU ms': spread(
        of.map((window) => window.brokerCpuMs),
        4,
      ),
      'HubSpot calls': spread(
        of.map((window) => window.hubspotCalls),
        2,
      ),
      'OpenCX calls': spread(
        of.map((window) => window.opencxCalls),
        2,
      ),
    })),
  );
  console.log(
    `\nidle CPU (ms per s): processor ${spread(
      pipeline.map((result) => result.processorIdleMsPerS),
      1,
    )}, outbound ${spread(
      pipeline.map((result) => result.outboundIdleMsPerS),
      1,
    )}; a table record read by another replica: ${spread(
      pipeline.map((result) => result.tableCpuMsPerRecord),
      4,
    )} CPU ms; table records per turn ${spread(
      pipeline.map((result) => result.outboundTableRecords),
      2,
    )} (session links ${spread(
      pipeline.map((result) => result.linkRecords),
      2,
    )})`,
  );
  console.log(`Redis commands per unit, round by round:`);
  for (const { what, of } of rows)
    console.log(`  ${what}: ${of.map((window) => window.topCommands).join(' | ')}`);
  for (const result of pipeline) console.log(`  checks: ${result.checks}`);

  // Per webhook event of the mix: a turn is two events; planning takes ingest's 1-event requests.
  const m = (values: readonly number[]): number => median(values.filter((value) => Number.isFinite(value)));
  const single = ingestOf('single');
  const processorOf = pipeline.map((result) => result.processor);
  const outboundOf = pipeline.map((result) => result.outbound);
  const sum = (pick: (window: Window) => number): number =>
    m(single.map(pick)) + m(processorOf.map(pick)) + m(outboundOf.map(pick)) / 2;
  const tableRecordsPerEvent = m(pipeline.map((result) => result.outboundTableRecords)) / 2;
  const costs: MeasuredCosts = {
    ingest: {
      cpuMsPerEvent: m(single.map((window) => window.cpuMs)),
      tableRecordsPerEvent: 0,
      hubspotCallsPerEvent: 0,
      opencxCallsPerEvent: 0,
    },
    processor: {
      cpuMsPerEvent: m(processorOf.map((window) => window.cpuMs)),
      tableRecordsPerEvent: m(pipeline.map((result) => result.linkRecords)) / 2,
      hubspotCallsPerEvent: m(processorOf.map((window) => window.hubspotCalls)),
      opencxCallsPerEvent: 0,
    },
    outbound: {
      cpuMsPerEvent: m(outboundOf.map((window) => window.cpuMs)) / 2,
      tableRecordsPerEvent,
      hubspotCallsPerEvent: m(outboundOf.map((window) => window.hubspotCalls)) / 2,
      opencxCallsPerEvent: m(outboundOf.map((window) => window.opencxCalls)) / 2,
    },
    tableCpuMsPerRecord: m(pipeline.map((result) => result.tableCpuMsPerRecord)),
    redisCommandsPerEvent: sum((window) => window.redisCommands),
    redisCpuMsPerEvent: sum((window) => window.redisCpuMs),
    kafkaRecordsPerEvent: sum((window) => window.kafkaRecords),
    kafkaBytesPerEvent: sum((window) => window.kafkaBytes),
  };
  const callsPerEvent = (pick: (cost: ServiceCost) => number): number =>
    pick(costs.ingest) + pick(costs.processor) + pick(costs.outbound);
  console.log(
    `\nper webhook event of the mix (ingest at 1-event requests, outbound per turn ÷ 2): CPU ms ingest ${fmt(costs.ingest.cpuMsPerEvent, 4)}, processor ${fmt(costs.processor.cpuMsPerEvent, 4)}, outbound ${fmt(costs.outbound.cpuMsPerEvent, 4)}; Redis ${fmt(costs.redisCommandsPerEvent, 2)} commands and ${fmt(costs.redisCpuMsPerEvent, 4)} CPU ms; Kafka ${fmt(costs.kafkaRecordsPerEvent, 2)} records, ${fmt(costs.kafkaBytesPerEvent)} bytes; HubSpot ${fmt(
      callsPerEvent((cost) => cost.hubspotCallsPerEvent),
      2,
    )} calls; OpenCX ${fmt(
      callsPerEvent((cost) => cost.opencxCallsPerEvent),
      2,
    )} calls`,
  );
  const plans: [string, DeploymentPlan][] = [
    ["the chart's CPU request (100m) at its HPA target (70 %): 0.07 core a replica", CHART_DEFAULT_PLAN],
    ['a CPU request of 1 core at 70 %: 0.7 core a replica', ONE_CORE_PLAN],
  ];
  for (const [title, plan] of plans) {
    printTable(
      `Sizing at ${title}; HubSpot answering in ${plan.hubspotLatencyS * 1000} ms and OpenCX in ${plan.opencxLatencyS * 1000} ms (assumed), ${plan.connectionsPerOrigin} connections each; partitions = 2 × consumer replicas (multiple of 6); Kafka ×${plan.replicationFactor} replicated`,
      RATES.map((rate) => {
        const size = sizeFor(rate, costs, plan);
        const replicas = ({ replicas: count, boundBy }: ServiceSizing): string =>
          count === null ? 'none suffices (tables)' : `${count} (${boundBy})`;
        return {
          'events/s': rate,
          ingest: replicas(size.services.ingest),
          processor: replicas(size.services.processor),
          outbound: replicas(size.services.outbound),
          partitions: size.partitions ?? 'n/a',
          'Redis commands/s': fmt(size.redisCommandsPerS),
          'Redis cores': fmt(size.redisCores, 2),
          'Redis servers': size.redisServers,
          'Kafka records/s': fmt(size.kafkaRecordsPerS),
          'Kafka MB/s (leaders / replicated)': `${fmt(size.kafkaLeaderMBPerS, 1)} / ${fmt(size.kafkaReplicatedMBPerS, 1)}`,
          'HubSpot calls/s': fmt(size.hubspotCallsPerS),
          'portals ≥': size.portalsAtLeast,
          'OpenCX calls/s': fmt(size.opencxCallsPerS),
          'orgs ≥': size.orgsAtLeast,
        };
      }),
    );
  }
};

const main = async (): Promise<void> => {
  const options = parseOptions();
  const logDir = mkdtempSync(join(tmpdir(), 'bench-capacity-'));
  const redis = await startRedis(options.redisPort ?? (await freePort()), logDir);
  // Interrupted: no service process or redis-server left behind (topics and keys under the run's
  // prefixes stay; the redis-server had nothing else).
  for (const signal of ['SIGINT', 'SIGTERM'] as const)
    process.once(signal, () => {
      killAllChildren();
      void redis.stop().finally(() => process.exit(1));
    });
  const infra = { ...benchInfra(), redisUrl: redis.url };
  process.env.REDIS_URL = redis.url;
  const redisClient = new Redis(redis.url, { maxRetriesPerRequest: 3 });
  const hubspot = await startFakeHubSpot({ defaultRateLimit: null });
  const opencx = await startFakeOpenCx();
  hubspot.setLatency(options.hubspotLatencyMs);
  opencx.setLatency(options.opencxLatencyMs);
  progress(
    `capacity bench: ${options.rounds} round(s); ingest ${options.ingestSeconds} s per scenario at ${options.connections} connections; ${options.warmTurns} + ${options.turns} turns on ${options.orgs} orgs; HubSpot ${options.hubspotLatencyMs} ms, OpenCX ${options.opencxLatencyMs} ms; Redis ${redis.url} (pid ${redis.pid}); broker pid ${options.brokerPid ?? 'not given'}, log dir ${options.kafkaLogDir ?? 'not given'}; logs in ${logDir}`,
  );
  const shared = { options, infra, redis, redisClient, hubspot, opencx, logDir };
  const ingest: IngestResult[] = [];
  const pipeline: PipelineResult[] = [];
  try {
    for (let round = 1; round <= options.rounds; round++) {
      const brokerIdleMsPerS =
        options.brokerPid === undefined ? Number.NaN : await idleCpu(options.brokerPid, options.idleSeconds);
      progress(`round ${round}: the broker at rest uses ${fmt(brokerIdleMsPerS, 1)} CPU ms/s`);
      const roundShared: Shared = { ...shared, brokerIdleMsPerS };
      ingest.push(...(await measureIngest(roundShared, round)));
      pipeline.push(await measurePipeline(roundShared, round));
    }
  } finally {
    redisClient.disconnect();
    await Promise.allSettled([hubspot.close(), opencx.close()]);
    await redis.stop();
  }
  report(ingest, pipeline, options);
  console.log(
    `\nload average at the end (1, 5, 15 min): ${readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}; ${existsSync('/proc/cpuinfo') ? readFileSync('/proc/cpuinfo', 'utf8').match(/^processor\s/gm)?.length : '?'} cores`,
  );
};

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(
      `capacity bench: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`,
    );
    process.exit(1);
  },
);
