// The chaos soak (issue 9): its own pipeline as OS processes (1 ingest, 2 processors, 2 outbounds)
// and its own Redis server, on the shared broker and registry, against the HubSpot and OpenCX
// fakes; a steady signed-webhook load; seeded faults; a bounded drain; then the verdict. With
// --kafka-cluster it runs on the 3 brokers of infra/local/up.sh --brokers 3 (and kills them one at
// a time), with --redis-sentinel on infra/local/redis-sentinel.sh's Redis (and fails it over).
// Used by scripts/soak.ts (long runs) and test/integration/soak.int.spec.ts (the short variant).
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { postSignedWebhook } from '../signed-delivery.ts';
import { runCommand } from '../processes.ts';
import { Kafka, logLevel } from 'kafkajs';
import { consumerGroupsFor, topicsFor } from '../../../lib/kafka/topics.ts';
import { AvroCodec } from '../../../lib/registry.ts';
import { readTopicToEnd } from '../topic-reader.ts';
import { startFakeHubSpot, type FakeHubSpot } from '../../fakes/hubspot.ts';
import { startFakeOpenCx, type FakeOpenCx } from '../../fakes/opencx.ts';
import { ADMIN_TOKEN, CLIENT_SECRET, registerTestOrg, sleep, waitFor, type TestOrg } from '../pipeline.ts';
import { killBroker, replicationHealth, startBroker } from '../kafka-cluster.ts';
import { Replica, SentinelRedis, SoakRedis } from './cluster.ts';
import {
  brokerKillPlan,
  describeFaultEffect,
  faultEffect,
  type FaultKind,
  type IngestAnswer,
} from './fault-plan.ts';
import {
  DROP_SHARE,
  SOAK_RECONCILE,
  dropsWebhook,
  furthestWatermarks,
  reconcileDrainAllowanceMs,
  reconcileRunsFromMetrics,
  uncoveredDrops,
  watermarksFromMetrics,
} from './dropped-webhooks.ts';
import { soakTopology, type SoakKafka } from './options.ts';
import { LoadGenerator, seededRandom, type OfferedEvent } from './load.ts';
import { failed, verify, type Verdict } from './verify.ts';

const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));

export interface SoakOptions {
  readonly loadMs: number;
  /** Events per second offered (duplicates and ignored events included). */
  readonly rate: number;
  readonly seed: number;
  readonly orgs: number;
  /** short: one kill -9 of each service kind, one Redis restart, one FLUSHALL, short outage windows. */
  readonly profile: 'short' | 'long';
  readonly kafkaRestart: boolean;
  /** On KAFKA_CLUSTER_BROKERS, topics with 3 replicas, one broker killed -9 and restarted at a time. */
  readonly kafkaCluster?: boolean;
  /** On REDIS_SENTINELS / REDIS_SENTINEL_NAME instead of a Redis of its own; its master failed over. */
  readonly redisSentinel?: boolean;
  /** DEDUP_CLAIM_LEASE_MS of the services: short (5 s) so a killed replica's claims free up fast. */
  readonly claimLeaseMs?: number;
  /** Fault kinds left out (to tell which one a finding needs); none when absent. */
  readonly skipFaults?: ReadonlySet<FaultKind>;
  readonly drainTimeoutMs: number;
  readonly say: (line: string) => void;
}

export { FAULT_KINDS, type FaultKind } from './fault-plan.ts';

export interface FaultRecord {
  readonly at: number;
  readonly what: string;
  /** The fault could not be injected (e.g. the broker did not come back): the run proves less. */
  failed?: string;
  /** When it was over (the broker serving again, the old master back): its effect is measured. */
  endedAt?: number;
  /** Its own timings (how long the failover took, when the broker served again). */
  detail?: string;
  /** What it did to the pipeline as seen from outside (OpenCX's pause, ingest's answers). */
  effect?: string;
}

/** A fault's effect is observed from its start until this long after it ended. */
const EFFECT_TAIL_MS = 15_000;

export interface DeadLetterLine {
  readonly line: string;
  readonly reason: string;
  readonly orgId: string;
  readonly failedAt: number;
  readonly expected: boolean;
}

export interface SoakReport {
  readonly runId: string;
  readonly seed: number;
  readonly logDir: string;
  readonly verdict: Verdict;
  readonly deadLetters: readonly DeadLetterLine[];
  readonly replayed: string | undefined;
  readonly drainMs: number;
  readonly drained: boolean;
  readonly faults: readonly FaultRecord[];
  readonly ok: boolean;
  readonly table: string;
}

export const runSoak = async (options: SoakOptions): Promise<SoakReport> => {
  const { say } = options;
  const runId = randomBytes(4).toString('hex');
  const logDir = `${tmpdir()}/soak-${runId}`;
  mkdirSync(logDir, { recursive: true });
  const topology = soakTopology(options, process.env);
  const brokers =
    topology.kafka.kind === 'cluster' ? topology.kafka.brokers.join(',') : topology.kafka.brokers;
  if (options.kafkaRestart) assertLocalKafka(brokers);
  if (topology.kafka.kind === 'cluster') await assertLocalCluster(topology.kafka.brokers);
  const sentinel = topology.redis.kind === 'sentinel' ? new SentinelRedis(topology.redis, logDir) : undefined;
  await sentinel?.check();
  say(
    `soak ${runId}: seed ${options.seed}, ${options.loadMs / 1000} s at ${options.rate}/s, ${options.orgs} orgs, profile ${options.profile}; logs in ${logDir}`,
  );
  if (topology.kafka.kind === 'cluster')
    say(
      `soak ${runId}: Kafka cluster ${brokers}, topics with 3 replicas (min.insync.replicas 2); a broker is killed -9 and restarted (fault kind broker)`,
    );
  if (sentinel !== undefined)
    say(
      `soak ${runId}: Redis behind ${sentinel.description}. Its faults: redis = the master killed -9 and failed over, the old master back as a replica (a restart of a master behind Sentinel; what the replica had not got yet is lost, not every key); flushall = every key of the run (soak:${runId}:*) deleted at once on the master, not a FLUSHALL (the Sentinel set is the operator's and may hold others' keys; for the pipeline, whose keys all carry the run's prefix, it is the same loss)`,
    );

  const started = Date.now();
  const clock = (): string => `[t+${((Date.now() - started) / 1000).toFixed(1)}s]`;
  const faults: FaultRecord[] = [];
  const fault = (what: string): FaultRecord => {
    const record: FaultRecord = { at: Date.now(), what };
    faults.push(record);
    say(`${clock()} FAULT ${what}`);
    return record;
  };

  const hubspot: FakeHubSpot = await startFakeHubSpot({ defaultRateLimit: null });
  const opencx: FakeOpenCx = await startFakeOpenCx();
  const redis = sentinel ?? new SoakRedis(logDir);
  if (redis instanceof SoakRedis) await redis.start();
  const prefix = `soak-${runId}-`;
  const redisKeyPrefix = `soak:${runId}:`;
  const env: Record<string, string | undefined> = {
    NODE_ENV: 'test',
    LOG_LEVEL: 'info',
    KAFKA_BROKERS: brokers,
    SCHEMA_REGISTRY_URL: required('SCHEMA_REGISTRY_URL'),
    // Only the topology asked for: a REDIS_SENTINELS or REDIS_CLUSTER_NODES exported in the
    // operator's shell would otherwise take the services elsewhere than the faults act on.
    ...(topology.redis.kind === 'sentinel'
      ? {
          REDIS_URL: undefined,
          REDIS_SENTINELS: topology.redis.sentinels.join(','),
          REDIS_SENTINEL_NAME: topology.redis.name,
          REDIS_SENTINEL_PASSWORD: topology.redis.sentinelPassword,
        }
      : {
          REDIS_URL: (redis as SoakRedis).url,
          REDIS_SENTINELS: undefined,
          REDIS_SENTINEL_NAME: undefined,
          REDIS_SENTINEL_PASSWORD: undefined,
        }),
    REDIS_CLUSTER_NODES: undefined,
    KAFKA_TOPIC_PREFIX: prefix,
    REDIS_KEY_PREFIX: redisKeyPrefix,
    KAFKA_PARTITIONS: '4',
    KAFKA_REPLICATION_FACTOR: topology.kafka.kind === 'cluster' ? '3' : '1',
    KAFKA_SESSION_TIMEOUT_MS: '6000',
    HUBSPOT_API_BASE_URL: hubspot.url,
    OPENCX_API_BASE_URL: opencx.url,
    HUBSPOT_CLIENT_SECRET: CLIENT_SECRET,
    ADMIN_TOKEN,
    SECRETS_KEY: randomBytes(32).toString('base64'),
    EMAIL_DELAY_MS: '500',
    DEDUP_CLAIM_LEASE_MS: String(options.claimLeaseMs ?? 5000),
    // The reconciler on, at a soak's pace (dropped-webhooks.ts says why these values), whether
    // or not webhooks are dropped: what it writes must never show at OpenCX as a second effect.
    RECONCILE_INTERVAL_MS: String(SOAK_RECONCILE.intervalMs),
    RECONCILE_SETTLE_MS: String(SOAK_RECONCILE.settleMs),
  };
  const ingest = new Replica('ingest', 1, env, logDir);
  const processors = [1, 2].map((index) => new Replica('processor', index, env, logDir));
  const outbounds = [1, 2].map((index) => new Replica('outbound', index, env, logDir));
  // The admin API the organisations are registered through; never killed.
  const consoleReplica = new Replica('console', 1, env, logDir);
  const replicas = [ingest, ...processors, ...outbounds, consoleReplica];
  const kafka = new Kafka({
    clientId: `soak-${runId}`,
    brokers: brokers.split(','),
    logLevel: logLevel.NOTHING,
  });
  const admin = kafka.admin();

  try {
    say(
      `${clock()} starting ingest, 2 processors, 2 outbounds, the console (redis ${redis instanceof SoakRedis ? redis.url : redis.description}, topics ${prefix}*)`,
    );
    await ingest.start();
    await Promise.all([...processors, ...outbounds, consoleReplica].map((replica) => replica.start()));
    await admin.connect();
    const ingestUrl = `http://127.0.0.1:${ingest.port}`;
    const consoleUrl = `http://127.0.0.1:${consoleReplica.port}`;
    const orgs: TestOrg[] = [];
    for (let index = 0; index < options.orgs; index++)
      orgs.push(
        await createOrg(
          consoleUrl,
          hubspot,
          `soak-${runId}-org${index + 1}`,
          31_000_000 + index + 1 + (parseInt(runId.slice(0, 4), 16) % 1000) * 10,
        ),
      );
    const random = seededRandom(options.seed);
    // Fault kind drop: from the load's start, HubSpot never delivers some customer messages'
    // webhooks (dropped-webhooks.ts says which); their messages are in the fake HubSpot all the same.
    let dropping = false;
    const load = new LoadGenerator({
      runId,
      orgs,
      hubspot,
      opencx,
      random,
      settleMs: 3000,
      dropsWebhook: (event) =>
        dropping && !(options.skipFaults?.has('drop') ?? false) && dropsWebhook(options.seed, event),
    });

    let acceptedIndex = 0;
    const answers: IngestAnswer[] = [];
    /** Posts a batch without its dropped webhooks; a batch of dropped ones only is not posted. */
    const post = async (events: readonly OfferedEvent[]): Promise<number> => {
      const delivered = events.filter((event) => event.webhookDropped !== true);
      let status = 200;
      if (delivered.length > 0) {
        const sentAt = Date.now();
        status = await postSigned(
          ingestUrl,
          delivered.map((event) => event.body),
        ).catch(() => 0);
        answers.push({ sentAt, answeredAt: Date.now(), status });
      }
      if (status === 200) {
        const at = Date.now();
        for (const event of events)
          if (event.webhookDropped === true) load.markDropped(event, (acceptedIndex += 1), at);
          else load.markAccepted(event, (acceptedIndex += 1), at);
      }
      return status;
    };

    // Warm-up: one conversation per org through the whole pipeline before the clock starts.
    const warmUp = orgs.map((org) => load.newConversation(org));
    await waitFor('the warm-up batch to be accepted', async () => (await post(warmUp)) === 200, 60000, 1000);
    await waitFor(
      'the warm-up messages at OpenCX',
      () => opencx.effects.filter((effect) => effect.kind === 'message-sent').length >= orgs.length,
      90000,
      250,
    );
    say(`${clock()} warm-up done: every org reaches OpenCX`);

    // The load: one batch every 200 ms, one in flight (acceptance order = generation order).
    const loadStart = Date.now();
    const loadEnd = loadStart + options.loadMs;
    dropping = true;
    const dropFault = options.skipFaults?.has('drop')
      ? undefined
      : fault(
          `HubSpot drops the webhooks of ${DROP_SHARE * 100} % of the customer messages on running conversations for the whole load (never posted to ingest; the messages stay in HubSpot, for the reconciler: every ${SOAK_RECONCILE.intervalMs / 1000} s, settle ${SOAK_RECONCILE.settleMs / 1000} s)`,
        );
    const faultRun = runFaults({
      options,
      // Its own sequence: the schedule does not depend on how many events the load drew.
      random: seededRandom(options.seed ^ 0x5eed),
      loadStart,
      processors,
      outbounds,
      redis,
      redisKeyPrefix,
      kafka: topology.kafka,
      admin,
      opencx,
      hubspot,
      orgs,
      fault,
      clock,
      say,
    });
    let due = 0;
    let pending: OfferedEvent[] = [];
    let rejected = 0;
    let lastProgress = Date.now();
    while (Date.now() < loadEnd || pending.length > 0) {
      const tickStart = Date.now();
      if (tickStart < loadEnd) {
        due += (options.rate * 200) / 1000;
        for (; due >= 1; due -= 1) pending.push(load.next());
      }
      // At most 100 events a request, as HubSpot sends them: what a refused request held is
      // redelivered first, then what came due meanwhile (a backlog never becomes one request
      // over the limit, which ingest would rightly refuse with 400).
      while (pending.length > 0) {
        const batch = pending.slice(0, MAX_EVENTS_PER_REQUEST);
        const status = await post(batch).catch(() => 0);
        if (status === 200) {
          pending = pending.slice(batch.length);
          continue;
        }
        rejected += 1;
        say(
          `${clock()} ingest answered ${status || 'nothing'} to a batch of ${batch.length} (${pending.length} waiting): redelivering, as HubSpot does`,
        );
        if (Date.now() > loadEnd + 120_000) throw new Error('ingest refused the last batch for 2 minutes');
        break;
      }
      if (Date.now() - lastProgress >= 5000) {
        lastProgress = Date.now();
        say(
          `${clock()} load: offered ${load.offered.length}, accepted ${load.acceptedCount}, webhooks dropped ${load.droppedCount} (${droppedAtOpenCx(load, opencx)} at OpenCX), OpenCX effects ${opencx.effects.length}, AI replies ${hubspot.posted.length}`,
        );
      }
      await sleep(Math.max(0, 200 - (Date.now() - tickStart)));
    }
    dropping = false;
    say(
      `${clock()} load stopped: offered ${load.offered.length}, accepted ${load.acceptedCount}, webhooks dropped ${load.droppedCount}; waiting for the faults to end`,
    );
    await faultRun;
    // Per organisation, when its last dropped message was written: the drain waits for a
    // reconcile of each that checked past it (its watermark, as the processors report it).
    const lastDropAt = new Map<string, number>();
    for (const event of load.offered)
      if (event.droppedIndex !== undefined)
        lastDropAt.set(
          event.orgId,
          Math.max(lastDropAt.get(event.orgId) ?? 0, Number(event.body.occurredAt)),
        );
    const reconcileWaitMs = lastDropAt.size > 0 ? reconcileDrainAllowanceMs(SOAK_RECONCILE) : 0;
    if (dropFault !== undefined) dropFault.detail = `${load.droppedCount} webhook(s) dropped`;

    // Drain: every consumer group at the end of its topic with no tenant parked, no ticket
    // holding events for its session link (those wait in a table of their own, not in a group's
    // lag: an event held for a look-up still to come is not done yet), and every organisation
    // with dropped webhooks reconciled past the last of them (what that run wrote to the raw
    // topic is then in the processor's lag), three checks in a row. The drain's bound is then
    // at least the time a last reconcile needs (reconcileDrainAllowanceMs).
    const groups: ReadonlyArray<readonly [string, string]> = Object.values(consumerGroupsFor(prefix)).map(
      ({ groupId, topic }) => [groupId, topic] as const,
    );
    const drain = async (label: string): Promise<{ ms: number; drained: boolean }> => {
      const from = Date.now();
      let quiet = 0;
      let lastSaid = 0;
      while (Date.now() - from < Math.max(options.drainTimeoutMs, reconcileWaitMs)) {
        const lags = await Promise.all(
          groups.map(([group, topic]) =>
            lag(admin, group, topic).catch(() => ({ records: -1, parkedTenants: -1 })),
          ),
        );
        const held = await heldTickets(outbounds);
        const watermarks = lastDropAt.size > 0 ? await reconcileWatermarks(processors) : new Map();
        const uncovered = uncoveredDrops(lastDropAt, watermarks);
        quiet =
          lags.every((each) => each.records === 0 && each.parkedTenants === 0) &&
          held === 0 &&
          uncovered.length === 0
            ? quiet + 1
            : 0;
        if (quiet >= 3) return { ms: Date.now() - from - 2000, drained: true };
        if (Date.now() - lastSaid >= 5000) {
          lastSaid = Date.now();
          const show = (each: { records: number; parkedTenants: number } | undefined) =>
            `${each?.records ?? '?'}${each?.parkedTenants ? ` (+${each.parkedTenants} parked tenant(s))` : ''}`;
          const behind = uncovered.map(
            (orgId) =>
              `${orgId} ${watermarks.has(orgId) ? `${(((lastDropAt.get(orgId) ?? 0) - (watermarks.get(orgId) ?? 0)) / 1000).toFixed(0)} s short` : 'no run yet'}`,
          );
          say(
            `${clock()} ${label}: lag processor ${show(lags[0])}, outbound ${show(lags[1])}, ai-replies ${show(lags[2])}; tickets holding events ${held < 0 ? '?' : held}; OpenCX effects ${opencx.effects.length}${lastDropAt.size > 0 ? `; dropped webhooks at OpenCX ${droppedAtOpenCx(load, opencx)} of ${load.droppedCount}, reconciled past the last drop: ${lastDropAt.size - uncovered.length} of ${lastDropAt.size} org(s)${behind.length > 0 ? ` (waiting for ${behind.join(', ')})` : ''}` : ''}`,
          );
        }
        await sleep(1000);
      }
      return { ms: Date.now() - from, drained: false };
    };
    const drained = await drain('draining');
    say(
      `${clock()} ${drained.drained ? 'drained' : 'NOT drained'} after ${(drained.ms / 1000).toFixed(1)} s`,
    );

    // Dead letters: only retries exhausted during an outage of that org's OpenCX or HubSpot, each replayable.
    const listed = await dlq(env, ['list']);
    const deadLetters = parseDeadLetters(listed.stdout);
    let replayed: string | undefined;
    let replayStartedAt: number | undefined;
    if (deadLetters.length > 0) {
      say(`${clock()} ${deadLetters.length} dead letter(s); replaying them (npm run dlq -- replay)`);
      replayStartedAt = Date.now();
      const replay = await dlq(env, ['replay']);
      replayed = `${replay.stdout.trim().split('\n').pop() ?? ''} (exit ${replay.code})`;
      say(`${clock()} replay: ${replayed}`);
      const again = await drain('draining the replay');
      say(
        `${clock()} ${again.drained ? 'drained' : 'NOT drained'} after the replay (${(again.ms / 1000).toFixed(1)} s)`,
      );
    }

    const deadLetteredEventIds = new Set(
      deadLetters.map((letter) => /event=(\S+)/.exec(letter.line)?.[1] ?? '').filter((id) => id !== '-'),
    );
    const skips = await skipCounts([...processors, ...outbounds]);
    const reconciled = await reconcileFigures(
      kafka,
      prefix,
      required('SCHEMA_REGISTRY_URL'),
      load,
      processors,
    ).catch((error: unknown) => {
      say(`the reconciler's records not counted: ${String(error)}`);
      return undefined;
    });
    await dumpMetrics(logDir, [ingest, ...processors, ...outbounds]);
    dumpRecords(logDir, load, opencx, hubspot);
    const verdict = verify({ load, opencx, hubspot, replayStartedAt, deadLetteredEventIds });
    const effectTimes = opencx.effects.map((effect) => effect.at);
    for (const record of faults)
      if (record.endedAt !== undefined) {
        const windowMs = record.endedAt + EFFECT_TAIL_MS - record.at;
        record.effect = describeFaultEffect(
          faultEffect({ from: record.at, to: record.at + windowMs }, effectTimes, answers),
          windowMs,
        );
      }
    const unexpectedLetters = deadLetters.filter((letter) => !letter.expected).length;
    const replayFailed = replayed !== undefined && !/failed 0 \(exit 0\)$/.test(replayed);
    const crashes = replicas.flatMap((replica) => replica.unplannedExits);
    const faultsFailed = faults.filter((record) => record.failed !== undefined).length;
    const ok =
      !failed(verdict) &&
      drained.drained &&
      unexpectedLetters === 0 &&
      !replayFailed &&
      crashes.length === 0 &&
      faultsFailed === 0;
    say(`skips and ignores counted by the live replicas (restarted ones lost theirs): ${skips}`);
    const table = formatTable({
      verdict,
      reconciled,
      deadLetters,
      replayed,
      drainMs: drained.ms,
      drained: drained.drained,
      faults,
      rejected,
      answers,
      crashes,
      ok,
    });
    return {
      runId,
      seed: options.seed,
      logDir,
      verdict,
      deadLetters,
      replayed,
      drainMs: drained.ms,
      drained: drained.drained,
      faults,
      ok,
      table,
    };
  } finally {
    await admin.disconnect().catch(() => undefined);
    await Promise.allSettled(replicas.map((replica) => replica.stop()));
    // The Sentinel set is the operator's: the run's keys go with the run.
    if (sentinel !== undefined)
      await sentinel
        .deleteKeys(redisKeyPrefix)
        .catch((error: unknown) => say(`the run's keys (${redisKeyPrefix}*) not deleted: ${String(error)}`));
    await redis.stop();
    await Promise.allSettled([hubspot.close(), opencx.close()]);
  }
};

/** Why events were skipped or ignored, summed over the replicas' /metrics (for the findings). */
const skipCounts = async (replicas: readonly Replica[]): Promise<string> => {
  const counts = new Map<string, number>();
  for (const replica of replicas) {
    for (const line of (await replica.metrics()).split('\n')) {
      const match = /^(processor_ignored_total|outbound_events_skipped_total)\{([^}]*)\} (\d+)/.exec(line);
      if (match === null || Number(match[3]) === 0) continue;
      const name = `${match[1]}{${match[2]}}`;
      counts.set(name, (counts.get(name) ?? 0) + Number(match[3]));
    }
  }
  return [...counts].map(([name, count]) => `${name} ${count}`).join(', ') || 'none';
};

/**
 * Tickets holding events for their session link, as the outbound replicas see them (each reads
 * the held-ticket-events table whole): the most any live replica reports; -1 when none answers.
 */
const heldTickets = async (outbounds: readonly Replica[]): Promise<number> => {
  let most = -1;
  for (const replica of outbounds) {
    const value = /^outbound_held_tickets(?:\{[^}]*\})? (\d+)/m.exec(await replica.metrics())?.[1];
    if (value !== undefined) most = Math.max(most, Number(value));
  }
  return most;
};

/** How many dropped webhooks' messages OpenCX has now (each counted once, however often it came). */
const droppedAtOpenCx = (load: LoadGenerator, opencx: FakeOpenCx): number => {
  const sent = new Set<string>();
  for (const effect of opencx.effects)
    if (effect.kind === 'message-sent')
      sent.add(String(((effect.body as Record<string, unknown>).message as Record<string, unknown>).text));
  return load.offered.filter(
    (event) =>
      event.droppedIndex !== undefined && event.customerText !== undefined && sent.has(event.customerText),
  ).length;
};

/** Each organisation's reconcile watermark, the furthest the live processor replicas report. */
const reconcileWatermarks = async (processors: readonly Replica[]): Promise<Map<string, number>> =>
  furthestWatermarks(
    await Promise.all(
      processors.map(async (replica) => {
        const metrics = await replica.metrics();
        return watermarksFromMetrics(metrics, Date.now());
      }),
    ),
  );

/** What the reconciler did in a run, counted at the end (ReconcileFigures in the table). */
export interface ReconcileFigures {
  /** Records it wrote to the raw topic (header `reconciled: 1`). */
  readonly records: number;
  /** Distinct dropped messages among them. */
  readonly ofDropped: number;
  /** Records of messages whose webhook was delivered (their dedup key not set yet, or lost). */
  readonly ofDelivered: number;
  /** Completed runs (records of the watermarks topic) and the gaps they wrote by its own count. */
  readonly completedRuns: number;
  readonly gapsTotal: number;
  /** Runs not completed, as the live processor replicas count them (a restarted one lost its counts). */
  readonly deferred: number;
  readonly failed: number;
}

const reconcileFigures = async (
  kafka: Kafka,
  prefix: string,
  registryUrl: string,
  load: LoadGenerator,
  processors: readonly Replica[],
): Promise<ReconcileFigures> => {
  const topics = topicsFor(prefix);
  const droppedIds = new Set(
    load.offered
      .filter((event) => event.droppedIndex !== undefined)
      .map((event) => String(event.body.messageId)),
  );
  const codec = new AvroCodec({ url: registryUrl, subjectPrefix: prefix });
  let records = 0;
  let ofDelivered = 0;
  const recovered = new Set<string>();
  for (const record of await readTopicToEnd(kafka, topics.rawEvents.name, 120_000)) {
    if (String(record.headers?.reconciled ?? '') !== '1' || record.value === null) continue;
    records += 1;
    const { record: raw } = await codec.decodeRecord(record.value);
    const messageId = String((JSON.parse(String(raw.event)) as { messageId?: unknown }).messageId);
    if (droppedIds.has(messageId)) recovered.add(messageId);
    else ofDelivered += 1;
  }
  const watermarks = await readTopicToEnd(kafka, topics.reconcileWatermarks.name, 60_000);
  const gapsByOrg = new Map<string, number>();
  for (const record of watermarks)
    if (record.key !== null && record.value !== null)
      gapsByOrg.set(
        record.key.toString(),
        Number((JSON.parse(record.value.toString('utf8')) as { gapsTotal?: unknown }).gapsTotal ?? 0),
      );
  let deferred = 0;
  let failed = 0;
  for (const replica of processors) {
    const runs = reconcileRunsFromMetrics(await replica.metrics());
    deferred += runs.deferred;
    failed += runs.failed;
  }
  return {
    records,
    ofDropped: recovered.size,
    ofDelivered,
    completedRuns: watermarks.length,
    gapsTotal: [...gapsByOrg.values()].reduce((sum, each) => sum + each, 0),
    deferred,
    failed,
  };
};

/** Each live replica's /metrics at the end (look-up outcomes, held events...), next to its log. */
const dumpMetrics = async (logDir: string, replicas: readonly Replica[]): Promise<void> => {
  for (const replica of replicas)
    writeFileSync(`${logDir}/${replica.name}.metrics.txt`, await replica.metrics());
};

/** The ledger and what the fakes recorded, as JSON lines next to the logs, to trace a finding. */
const dumpRecords = (logDir: string, load: LoadGenerator, opencx: FakeOpenCx, hubspot: FakeHubSpot): void => {
  const lines = (items: readonly unknown[]): string => items.map((item) => JSON.stringify(item)).join('\n');
  writeFileSync(`${logDir}/ledger.jsonl`, lines(load.offered));
  writeFileSync(`${logDir}/opencx-effects.jsonl`, lines(opencx.effects));
  writeFileSync(
    `${logDir}/hubspot-posted.jsonl`,
    lines(hubspot.posted.map(({ threadId, portalId, body, at }) => ({ threadId, portalId, body, at }))),
  );
};

const required = (name: string): string => {
  const value = process.env[name];
  if (!value)
    throw new Error(`${name} is not set (export KAFKA_BROKERS and SCHEMA_REGISTRY_URL, as for the tests)`);
  return value;
};

/** Restarting Kafka is allowed only for the broker infra/local started from this checkout. */
const assertLocalKafka = (brokers: string): void => {
  const portFile = `${repoRoot}.local/run/kafka.port`;
  const pidFile = `${repoRoot}.local/run/kafka.pid`;
  if (!existsSync(portFile) || !existsSync(pidFile))
    throw new Error(
      `--kafka-restart: no broker started by infra/local in ${repoRoot} (.local/run/kafka.pid): refusing to restart a broker others may share`,
    );
  const port = readFileSync(portFile, 'utf8').trim();
  if (brokers !== `127.0.0.1:${port}` && brokers !== `localhost:${port}`)
    throw new Error(
      `--kafka-restart: KAFKA_BROKERS=${brokers} is not this checkout's infra/local broker (127.0.0.1:${port})`,
    );
};

/**
 * Killing brokers is allowed only on the cluster infra/local started from this checkout: broker i
 * of KAFKA_CLUSTER_BROKERS must be its broker i (infra/local/broker.sh i), running.
 */
const assertLocalCluster = async (brokers: readonly string[]): Promise<void> => {
  for (const [index, address] of brokers.entries()) {
    const portFile = `${repoRoot}.local/run/kafka-${index + 1}.port`;
    const port = existsSync(portFile) ? readFileSync(portFile, 'utf8').trim() : undefined;
    if (address !== `127.0.0.1:${port}` && address !== `localhost:${port}`)
      throw new Error(
        `--kafka-cluster: ${address} (broker ${index + 1} of KAFKA_CLUSTER_BROKERS) is not broker ${index + 1} of the cluster infra/local/up.sh --brokers N started in ${repoRoot} (${portFile}: ${port ?? 'none'}): refusing to kill brokers others may share`,
      );
    const pid = await run('bash', [`${repoRoot}infra/local/broker.sh`, 'pid', String(index + 1)]);
    if (pid.code !== 0)
      throw new Error(`--kafka-cluster: broker ${index + 1} (${address}) does not run: ${pid.stderr.trim()}`);
  }
};

/**
 * The ports this checkout's broker and registry run on (up.sh records them), so that up.sh brings
 * the broker back where it was even when it was started on other ports than the defaults.
 */
const localKafkaPorts = (): Record<string, string> => {
  const read = (file: string): string | undefined =>
    existsSync(`${repoRoot}.local/run/${file}`)
      ? readFileSync(`${repoRoot}.local/run/${file}`, 'utf8')
      : undefined;
  const ports: Record<string, string> = {};
  const kafka = read('kafka.port')?.trim();
  if (kafka) ports.KAFKA_PORT = kafka;
  const controller = /CONTROLLER:\/\/[^:,\s]+:(\d+)/.exec(read('kafka-server.properties') ?? '')?.[1];
  if (controller) ports.KAFKA_CONTROLLER_PORT = controller;
  const registry = read('apicurio.port')?.trim();
  if (registry) ports.REGISTRY_PORT = registry;
  return ports;
};

const run = async (
  command: string,
  args: readonly string[],
  env: Record<string, string | undefined> = {},
) => {
  const { code, stdout, stderr } = await runCommand(command, args, env, { cwd: repoRoot });
  return { code: code ?? 1, stdout, stderr };
};

const dlq = (env: Record<string, string | undefined>, args: readonly string[]) =>
  run(process.execPath, [`${repoRoot}tools/dlq/dlq-cli.ts`, ...args], {
    ...env,
    LOG_LEVEL: 'silent',
  });

const createOrg = (
  consoleUrl: string,
  hubspot: FakeHubSpot,
  orgId: string,
  portalId: number,
): Promise<TestOrg> => registerTestOrg(consoleUrl, hubspot, { orgId, portalId });

/** A batch signed (v3) with HubSpot's own SDK; the status. */
const postSigned = async (ingestUrl: string, events: readonly object[]): Promise<number> => {
  const response = await postSignedWebhook(
    `${ingestUrl}/webhooks/hubspot`,
    JSON.stringify(events),
    CLIENT_SECRET,
    {
      signal: AbortSignal.timeout(15000),
    },
  );
  await response.arrayBuffer();
  return response.status;
};

/** Records not yet committed by the group (every partition from its start when it never committed). */
/**
 * What a consumer group has still to do on its topic: records past its committed offsets, and
 * parked tenants (their cursors ride in the commit's metadata, behind the committed offset: a
 * tenant waiting out its HubSpot budget leaves lag 0 with its messages still to be handled).
 */
export const lag = async (
  admin: Pick<ReturnType<Kafka['admin']>, 'fetchTopicOffsets' | 'fetchOffsets'>,
  groupId: string,
  topic: string,
): Promise<{ records: number; parkedTenants: number }> => {
  const [ends, [committed]] = await Promise.all([
    admin.fetchTopicOffsets(topic),
    admin.fetchOffsets({ groupId, topics: [topic] }),
  ]);
  let records = 0;
  let parkedTenants = 0;
  for (const { partition, high, low } of ends) {
    const commit = committed?.partitions.find((each) => each.partition === partition);
    const offset = Number(commit?.offset ?? -1);
    records += offset < 0 ? Number(high) - Number(low) : Number(high) - offset;
    parkedTenants += parkedIn(commit?.metadata ?? null);
  }
  return { records, parkedTenants };
};

/** How many parked tenants' cursors a commit's metadata holds (lib/kafka/keyed-consumer/parking-cursors.ts). */
const parkedIn = (metadata: string | null): number => {
  if (!metadata) return 0;
  try {
    const cursors = (JSON.parse(metadata) as { p?: unknown }).p;
    return Array.isArray(cursors) ? cursors.length : 0;
  } catch {
    return 0;
  }
};

/** HubSpot's own limit on events per webhook request. */
const MAX_EVENTS_PER_REQUEST = 100;

const parseDeadLetters = (stdout: string): DeadLetterLine[] =>
  stdout
    .split('\n')
    .filter((line) => /^\d{4}-\d{2}-\d{2}T/.test(line))
    .map((line) => {
      const [failedAtText = '', , reason = ''] = line.split(/\s{2,}/);
      const orgId = /org=(\S+)/.exec(line)?.[1] ?? '-';
      const failedAt = Date.parse(failedAtText);
      // The load holds no event the rules dead-letter, and an outage parks its organisation
      // (issue 8): it is waited out, never dead-lettered. So every letter is a finding.
      const expected = false;
      return { line, reason, orgId, failedAt, expected };
    });

interface FaultContext {
  readonly options: SoakOptions;
  readonly random: () => number;
  readonly loadStart: number;
  readonly processors: readonly Replica[];
  readonly outbounds: readonly Replica[];
  readonly redis: SoakRedis | SentinelRedis;
  readonly redisKeyPrefix: string;
  readonly kafka: SoakKafka;
  readonly admin: ReturnType<Kafka['admin']>;
  readonly opencx: FakeOpenCx;
  readonly hubspot: FakeHubSpot;
  readonly orgs: readonly TestOrg[];
  readonly fault: (what: string) => FaultRecord;
  readonly clock: () => string;
  readonly say: (line: string) => void;
}

/**
 * The fault plan, seeded: kill -9 of processor/outbound replicas (restarted after a few seconds,
 * one at a time), Redis restarts, FLUSHALLs of the soak's Redis, one org's OpenCX answering 503
 * for a window, one portal's HubSpot answering 429 for a window, and (only with --kafka-restart)
 * a broker restart, or (only with --kafka-cluster) kill -9s of one broker of the cluster. Behind
 * Sentinel, a Redis restart is a failover of the master and a FLUSHALL deletes the run's keys.
 */
const runFaults = async (context: FaultContext): Promise<void> => {
  const {
    options,
    random,
    loadStart,
    processors,
    outbounds,
    redis,
    redisKeyPrefix,
    kafka,
    admin,
    opencx,
    hubspot,
    orgs,
    fault,
    clock,
    say,
  } = context;
  const load = options.loadMs;
  const skipped = (kind: FaultKind): boolean => options.skipFaults?.has(kind) ?? false;
  const between = (from: number, to: number): number => from + random() * (to - from);
  const jobs: Array<Promise<void>> = [];
  const at = (offsetMs: number, action: () => Promise<void>): void => {
    jobs.push(sleep(Math.max(0, loadStart + offsetMs - Date.now())).then(action));
  };

  // Kills run one after another on one chain, so a kind always keeps a replica up.
  const killOffsets: Array<{ offset: number; replica: Replica }> = [];
  if (options.profile === 'short') {
    killOffsets.push({
      offset: between(0.15, 0.25) * load,
      replica: processors[Math.floor(random() * 2)] as Replica,
    });
    killOffsets.push({
      offset: between(0.45, 0.55) * load,
      replica: outbounds[Math.floor(random() * 2)] as Replica,
    });
  } else {
    for (let offset = between(15_000, 30_000); offset < load - 20_000; offset += between(20_000, 40_000)) {
      const pool = random() < 0.5 ? processors : outbounds;
      killOffsets.push({ offset, replica: pool[Math.floor(random() * pool.length)] as Replica });
    }
  }
  const killChain = (async () => {
    for (const { offset, replica } of skipped('kill') ? [] : killOffsets) {
      await sleep(Math.max(0, loadStart + offset - Date.now()));
      const downMs = between(2000, 6000);
      fault(
        `kill -9 ${replica.name} (pid ${replica.pid ?? '?'}); restart in ${(downMs / 1000).toFixed(1)} s`,
      );
      await replica.kill();
      await sleep(downMs);
      // As a supervisor does: a replica that exits while starting (its exit is recorded as
      // unplanned, a finding) is started again, rather than ending the soak with no verdict.
      for (let attempt = 1; ; attempt++) {
        try {
          await replica.start();
          break;
        } catch (error) {
          if (attempt >= 5) throw error;
          say(`${clock()} ${replica.name} did not start (${String(error)}); starting it again in 5 s`);
          await sleep(5000);
        }
      }
      say(`${clock()} ${replica.name} restarted (pid ${replica.pid ?? '?'})`);
    }
  })();
  jobs.push(killChain);

  const redisOffsets =
    options.profile === 'short'
      ? [between(0.65, 0.75) * load]
      : [between(0.3, 0.45) * load, between(0.7, 0.8) * load];
  for (const offset of skipped('redis') ? [] : redisOffsets)
    at(offset, async () => {
      // Drawn either way, so the kinds after it keep their times for a seed.
      const downMs = between(1000, 3000);
      if (redis instanceof SentinelRedis) {
        const record = fault(
          'kill -9 of the Redis master the sentinels name (redis-sentinel.sh kill-master)',
        );
        try {
          const { oldPort, newPort, failoverMs, backMs } = await redis.failover();
          record.detail = `master :${oldPort} killed; the sentinels named :${newPort} master ${(failoverMs / 1000).toFixed(1)} s after the kill; :${oldPort} back as its replica ${(backMs / 1000).toFixed(1)} s after the kill`;
          say(`${clock()} Redis failed over: ${record.detail}`);
        } catch (error) {
          record.failed = error instanceof Error ? error.message : String(error);
          say(`${clock()} Redis failover not done: ${record.failed}`);
        } finally {
          record.endedAt = Date.now();
        }
        return;
      }
      fault(`restart of the soak's Redis (SIGKILL, every key lost, down ${(downMs / 1000).toFixed(1)} s)`);
      await redis.restart(downMs);
      say(`${clock()} Redis back`);
    });

  // FLUSHALL of the soak's own Redis (the server stays up, every key is gone at once): its own
  // seeded sequence, so adding it moved none of the other kinds' times for a given seed. Apart
  // from the restarts' windows, so each fault is seen on its own.
  const flushRandom = seededRandom(options.seed ^ 0xf1005);
  const flushBetween = (from: number, to: number): number => from + flushRandom() * (to - from);
  const flushOffsets =
    options.profile === 'short'
      ? [flushBetween(0.35, 0.45) * load]
      : [flushBetween(0.15, 0.28) * load, flushBetween(0.55, 0.68) * load];
  for (const offset of skipped('flushall') ? [] : flushOffsets)
    at(offset, async () => {
      if (redis instanceof SentinelRedis) {
        const record = fault(
          `every key of the run (${redisKeyPrefix}*) deleted at once on the Sentinel master (server up; in place of FLUSHALL)`,
        );
        try {
          record.detail = `${await redis.deleteKeys(redisKeyPrefix)} key(s) deleted`;
          say(`${clock()} Redis keys deleted: ${record.detail}`);
        } catch (error) {
          record.failed = error instanceof Error ? error.message : String(error);
          say(`${clock()} keys not deleted: ${record.failed}`);
        }
        return;
      }
      const record = fault(`FLUSHALL of the soak's Redis (${redis.url}; every key lost, server up)`);
      try {
        await redis.flushAll();
        say(`${clock()} Redis flushed`);
      } catch (error) {
        // Not flushed is not injected: the run then proves less than it says.
        record.failed = error instanceof Error ? error.message : String(error);
        say(`${clock()} FLUSHALL not done: ${record.failed}`);
      }
    });

  const victim = orgs[1 % orgs.length] as TestOrg;
  const outageMs = options.profile === 'short' ? Math.min(15_000, 0.2 * load) : Math.min(120_000, 0.4 * load);
  const outageAt = between(0.2, Math.max(0.2, 0.85 - outageMs / load)) * load;
  if (!skipped('opencx'))
    at(outageAt, async () => {
      const from = Date.now();
      fault(`OpenCX answers 503 to ${victim.orgId} for ${(outageMs / 1000).toFixed(0)} s`);
      opencx.failApiKeyUntil(victim.apiKey, from + outageMs, 503);
      await sleep(outageMs);
      say(`${clock()} OpenCX answers ${victim.orgId} again`);
    });

  const throttled = orgs[2 % orgs.length] as TestOrg;
  const throttleMs =
    options.profile === 'short' ? Math.min(10_000, 0.12 * load) : Math.min(120_000, 0.2 * load);
  const throttleAt = between(0.3, Math.max(0.3, 0.85 - throttleMs / load)) * load;
  if (!skipped('hubspot'))
    at(throttleAt, async () => {
      fault(
        `HubSpot answers 429 to portal ${throttled.portalId} (${throttled.orgId}) for ${(throttleMs / 1000).toFixed(0)} s`,
      );
      hubspot.setRateLimit(throttled.portalId, { max: 0, intervalMs: 10_000 });
      await sleep(throttleMs);
      hubspot.setRateLimit(throttled.portalId, null);
      say(`${clock()} HubSpot serves portal ${throttled.portalId} again`);
    });

  if (options.kafkaRestart)
    at(between(0.45, 0.6) * load, async () => {
      const record = fault('Kafka broker restart (infra/local/down.sh kafka; infra/local/up.sh)');
      const ports = localKafkaPorts();
      const down = await run('bash', [`${repoRoot}infra/local/down.sh`, 'kafka']);
      const up = await run('bash', [`${repoRoot}infra/local/up.sh`], ports);
      say(`${clock()} Kafka restarted (down exit ${down.code}, up exit ${up.code})`);
      // A restart that did not happen must not pass for one (the soak then proves less than it says).
      if (down.code !== 0 || up.code !== 0)
        record.failed = `down.sh exit ${down.code}, up.sh exit ${up.code}: ${`${(up.code !== 0 ? up : down).stdout}${(up.code !== 0 ? up : down).stderr}`.trim().split('\n').slice(-2).join(' / ')}`;
    });

  if (kafka.kind === 'cluster' && !skipped('broker'))
    for (const { offsetMs, broker, downMs } of brokerKillPlan(
      options.seed,
      load,
      options.profile,
      kafka.brokers.length,
    ))
      at(offsetMs, async () => {
        const record = fault(
          `kill -9 of Kafka broker ${broker} (${kafka.brokers[broker - 1] ?? '?'}; infra/local/broker.sh kill ${broker}); restart in ${(downMs / 1000).toFixed(1)} s`,
        );
        try {
          await killBroker(broker);
          await sleep(downMs);
          const startAt = Date.now();
          await startBroker(broker);
          const servingMs = Date.now() - startAt;
          // Every partition's replicas in sync again (the restarted broker caught up): not a step of
          // the fault, a timing of it; given up after 2 minutes.
          const syncedMs = await waitFor(
            'every partition in sync',
            async () => {
              const health = await replicationHealth(admin).catch(() => undefined);
              return health !== undefined && health.underReplicated === 0 && health.offline === 0
                ? Date.now() - startAt
                : undefined;
            },
            120_000,
            500,
          ).catch(() => undefined);
          record.detail = `down ${((startAt - record.at) / 1000).toFixed(1)} s; serving ${(servingMs / 1000).toFixed(1)} s after broker.sh start; ${syncedMs === undefined ? 'partitions NOT all in sync 2 min after the start' : `every partition in sync ${(syncedMs / 1000).toFixed(1)} s after the start`}`;
          say(`${clock()} broker ${broker} back: ${record.detail}`);
        } catch (error) {
          record.failed = error instanceof Error ? error.message : String(error);
          say(`${clock()} broker fault not done: ${record.failed}`);
          // A broker left down would fail every later step for a reason the run did not mean.
          await startBroker(broker).catch(() => undefined);
        } finally {
          record.endedAt = Date.now();
        }
      });

  await Promise.all(jobs);
};

const formatTable = (input: {
  verdict: Verdict;
  reconciled: ReconcileFigures | undefined;
  deadLetters: readonly DeadLetterLine[];
  replayed: string | undefined;
  drainMs: number;
  drained: boolean;
  faults: readonly FaultRecord[];
  rejected: number;
  answers: readonly IngestAnswer[];
  crashes: readonly string[];
  ok: boolean;
}): string => {
  const { verdict } = input;
  const failedFaults = input.faults.filter((record) => record.failed !== undefined).length;
  const expectedLetters = input.deadLetters.filter((letter) => letter.expected).length;
  const rows: Array<[string, string]> = [
    ['offered', String(verdict.offered)],
    [
      'accepted (200)',
      `${verdict.accepted}${input.rejected > 0 ? ` (${input.rejected} batch(es) refused, redelivered)` : ''}`,
    ],
    ['effects expected', String(verdict.effectsExpected)],
    ['applied', String(verdict.applied)],
    ['superseded (ticket change, newer value applied)', String(verdict.superseded)],
    ['lost', String(verdict.lost)],
    ['duplicated', String(verdict.duplicated)],
    [
      'out of order',
      `${verdict.outOfOrder}${verdict.orderUnchecked > 0 ? ` (${verdict.orderUnchecked} conversation(s) with replayed letters not checked)` : ''}`,
    ],
    ['unexpected effects', String(verdict.unexpected)],
    [
      'webhooks dropped (fault drop)',
      `${verdict.dropped.webhooks}; their messages at OpenCX (only the reconciler could bring them) ${verdict.dropped.atOpenCx}, lost ${verdict.dropped.lost}, twice ${verdict.dropped.duplicated}, out of order among themselves ${verdict.dropped.outOfOrder} (counted in the rows above too); their AI replies posted ${verdict.dropped.aiRepliesPosted}, not posted because a later message of the thread was answered first ${verdict.dropped.aiRepliesNotPostedNewerFirst} (lib/posted-replies.ts; not counted lost); ${verdict.dropped.onHandedOffThreads} on threads handed off`,
    ],
    [
      'reconciler',
      input.reconciled === undefined
        ? 'not counted (see the log)'
        : `${input.reconciled.records} raw record(s) written: ${input.reconciled.ofDropped} dropped message(s), ${input.reconciled.ofDelivered} record(s) of delivered ones (dedup key not set yet, or lost); ${input.reconciled.completedRuns} run(s) completed, gaps by its own count ${input.reconciled.gapsTotal}; runs deferred ${input.reconciled.deferred}, failed ${input.reconciled.failed} (live replicas' counts)`,
    ],
    ['sessions (twice)', `${verdict.sessionsExpected} (${verdict.sessionsTwice})`],
    [
      'AI replies posted',
      `${verdict.aiRepliesPosted} (lost ${verdict.aiRepliesLost}, twice ${verdict.aiRepliesTwice}, after handoff ${verdict.aiRepliesAfterHandoff})`,
    ],
    [
      'dead-lettered',
      `${input.deadLetters.length} (expected ${expectedLetters}, unexpected ${input.deadLetters.length - expectedLetters})${input.replayed ? `; replay: ${input.replayed}` : ''}`,
    ],
    ['OpenCX contract violations', String(verdict.contractViolations)],
    ['ingest answers (the load, by status)', answersByStatus(input.answers)],
    [
      'drain time',
      `${(input.drainMs / 1000).toFixed(1)} s${input.drained ? '' : ' (NOT drained: timed out)'}`,
    ],
    [
      'faults injected',
      `${input.faults.length}${failedFaults > 0 ? ` (${failedFaults} NOT injected: see faults)` : ''}`,
    ],
    ['unplanned exits', [String(input.crashes.length), ...input.crashes].join('; ')],
    ['verdict', input.ok ? 'PASS' : 'FAIL'],
  ];
  const width = Math.max(...rows.map(([name]) => name.length));
  const lines = rows.map(([name, value]) => `| ${name.padEnd(width)} | ${value}`);
  const findings = verdict.findings.slice(0, 40).map((finding) => `  ${finding.what}: ${finding.detail}`);
  const more = verdict.findings.length > 40 ? [`  … and ${verdict.findings.length - 40} more`] : [];
  const letters = input.deadLetters.map(
    (letter) => `  dead letter (${letter.expected ? 'expected' : 'UNEXPECTED'}): ${letter.line}`,
  );
  const faultLines = input.faults.flatMap((record) => [
    `  ${new Date(record.at).toISOString()} ${record.what}${record.detail === undefined ? '' : `: ${record.detail}`}${record.failed === undefined ? '' : ` FAILED: ${record.failed}`}`,
    ...(record.effect === undefined ? [] : [`      ${record.effect}`]),
  ]);
  return [
    ...lines,
    'faults:',
    ...faultLines,
    ...(letters.length ? ['dead letters:', ...letters] : []),
    ...(findings.length ? ['findings:', ...findings, ...more] : []),
  ].join('\n');
};

const answersByStatus = (answers: readonly IngestAnswer[]): string => {
  const counts = new Map<number, number>();
  for (const { status } of answers) counts.set(status, (counts.get(status) ?? 0) + 1);
  return (
    [...counts]
      .sort(([a], [b]) => a - b)
      .map(([status, count]) => `${status === 0 ? 'no answer' : status} ×${count}`)
      .join(', ') || 'none'
  );
};
