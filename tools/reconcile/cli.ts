/**
 * `npm run reconcile -- --org X [--since 2h] [--until T] [--dry-run]`
 * Reconciles one organisation with HubSpot now, over the window named, with the processor's
 * reconciler's own code (services/processor/src/reconcile: the check, the dedup look-up, the raw
 * record): every message the rules would act on that the processor never handled is written to
 * the raw topic; `--dry-run` lists them and writes nothing. arguments.ts holds the --help text.
 * It reads the processor's configuration: run it where the processor runs, with its environment
 * (every service's image holds tools/: `node tools/reconcile/cli.ts`).
 * Exit codes: 0 done, 1 an outside system failed (or the organisation cannot be reconciled),
 * 2 bad usage, 75 (EX_TEMPFAIL) another run holds the organisation's lease: try again later.
 */
import { hostname } from 'node:os';
import { resolveSecretsKey } from '../../lib/config.ts';
import { ErrorCode, PipelineError } from '../../lib/errors.ts';
import { createBudgetedPortalClients } from '../../lib/hubspot/index.ts';
import { createKafka, topicsFor } from '../../lib/kafka/index.ts';
import { createRecordWriter, type RecordWriter } from '../../lib/kafka/record-writer.ts';
import { createLogger } from '../../lib/log.ts';
import { OrgDirectory, createSecretBox } from '../../lib/orgs/index.ts';
import { createRedis } from '../../lib/redis.ts';
import { AvroCodec } from '../../lib/registry.ts';
import { isEntryPoint } from '../../lib/service.ts';
import {
  handlerSettings,
  loadProcessorConfig,
  type ProcessorConfig,
} from '../../services/processor/src/config.ts';
import {
  createRedisReconcileLease,
  reconcileLeaseHolder,
  reconcileRunDeps,
} from '../../services/processor/src/reconcile/index.ts';
import { exitWith, processOutput, startCommand } from '../command-line.ts';
import { explainOutage } from '../outage-line.ts';
import { REGISTRY_CHECK_TIMEOUT_MS, checkHubSpot, checkSchemaRegistry } from '../upstreams.ts';
import { HELP, USAGE, parseCommand } from './arguments.ts';
import { CannotReconcile, reconcilableOrg } from './organisation.ts';
import { progressReporter, type ProgressOutput } from './progress.ts';
import { formatReport, leasedLine } from './report.ts';
import { ReconcileStopped, reconcileNow } from './run.ts';

/** sysexits.h's EX_TEMPFAIL: a temporary failure, the same command may succeed later. */
export const EXIT_LEASED = 75;

export type Output = ProgressOutput & { readonly out: (text: string) => void };

/** A HubSpot call that kept failing, as the line an operator acts on. */
const explainHubSpot = (error: PipelineError, config: ProcessorConfig): string => {
  const attempts = `${config.HUBSPOT_RETRY_ATTEMPTS} attempts`;
  switch (error.code) {
    case ErrorCode.upstreamRateLimited:
      return `the portal's HubSpot budget had no room through ${attempts} of one call (${error.message}): customers' calls come first; run this again in a minute`;
    case ErrorCode.upstreamUnavailable:
      return `HubSpot at ${config.HUBSPOT_API_BASE_URL} kept failing through ${attempts} of one call (${error.message}); check HUBSPOT_API_BASE_URL`;
    default:
      return error.message;
  }
};

const explain = (error: unknown, config: ProcessorConfig): string => {
  const cause = error instanceof ReconcileStopped ? error.cause : error;
  const line =
    cause instanceof CannotReconcile
      ? cause.message
      : cause instanceof PipelineError &&
          (cause.upstream === 'hubspot' || cause.code === ErrorCode.upstreamRateLimited)
        ? explainHubSpot(cause, config)
        : explainOutage(cause, config);
  const written = error instanceof ReconcileStopped ? error.progress.written : 0;
  // What was written stays: the processor handles it, and a run again finds it handled.
  return written > 0 ? `${line}; ${written} gap(s) were written before it stopped` : line;
};

export const runReconcile = async (
  argv: readonly string[],
  env: NodeJS.ProcessEnv,
  output: Output = processOutput,
): Promise<number> => {
  const started = startCommand('reconcile', argv, env, output, {
    parse: parseCommand,
    usage: USAGE,
    help: HELP,
    loadConfig: loadProcessorConfig,
  });
  if (typeof started === 'number') return started;
  const { command, config } = started;

  // The adapters the processor builds for its reconciler (services/processor/src/reconcile),
  // without its schedule, watermarks or metrics: silent, since the report says what matters.
  const logger = createLogger('reconcile', 'silent');
  const topics = topicsFor(config.KAFKA_TOPIC_PREFIX);
  const kafka = createKafka({ clientId: 'reconcile', brokers: config.KAFKA_BROKERS, logger });
  const codec = new AvroCodec({ url: config.SCHEMA_REGISTRY_URL, subjectPrefix: config.KAFKA_TOPIC_PREFIX });
  const redis = createRedis(config, logger);
  const stops: (() => Promise<void>)[] = [];
  const progress = progressReporter(output);
  try {
    // HubSpot (and, to write, the registry) checked before anything is read.
    await Promise.all([
      checkHubSpot(config.HUBSPOT_API_BASE_URL, config.HUBSPOT_TIMEOUT_MS),
      command.dryRun ? undefined : checkSchemaRegistry(config.SCHEMA_REGISTRY_URL, REGISTRY_CHECK_TIMEOUT_MS),
    ]);
    const admin = kafka.admin();
    await admin.connect();
    const existing = await admin.listTopics().finally(() => admin.disconnect());
    for (const topic of [topics.rawEvents, topics.orgs])
      if (!existing.includes(topic.name))
        throw new CannotReconcile(
          `topic ${topic.name} does not exist; check KAFKA_TOPIC_PREFIX (the services create it when they start)`,
        );
    await redis.ping();
    const secretsKey = resolveSecretsKey(config);
    const orgs = new OrgDirectory({
      kafka,
      topic: topics.orgs.name,
      groupPrefix: `${config.KAFKA_TOPIC_PREFIX}reconcile-`,
      secrets: createSecretBox(secretsKey.key, { previous: secretsKey.previous }),
      logger,
    });
    await orgs.start();
    stops.push(() => orgs.stop());
    const org = reconcilableOrg(orgs, command.orgId);

    let writer: Pick<RecordWriter, 'write'> = {
      write: () => Promise.reject(new Error('a dry run writes nothing')),
    };
    if (!command.dryRun) {
      await codec.registerAll();
      const recordWriter = await createRecordWriter({ kafka, topics: [topics.rawEvents.name], logger });
      stops.push(() => recordWriter.close());
      writer = recordWriter;
    }
    const runDepsOf = reconcileRunDeps({
      redis,
      redisKeyPrefix: config.REDIS_KEY_PREFIX,
      codec,
      rawTopic: topics.rawEvents.name,
      writer,
      // The portal's budget, shared through Redis: this run's calls are bookkeeping, as the
      // reconciler's, and never hold up a customer's.
      hubspotFor: createBudgetedPortalClients(redis, config),
      now: Date.now,
    });
    const result = await reconcileNow(
      {
        run: runDepsOf(org),
        lease: createRedisReconcileLease(redis, {
          prefix: config.REDIS_KEY_PREFIX,
          owner: `npm run reconcile on ${hostname()} (pid ${process.pid})`,
          leaseMs: config.RECONCILE_LEASE_MS,
        }),
        leaseRenewMs: config.RECONCILE_LEASE_MS / 3,
        leaseHolder: (orgId) => reconcileLeaseHolder(redis, config.REDIS_KEY_PREFIX, orgId),
        retry: handlerSettings(config).retry,
      },
      {
        target: { orgId: org.orgId, portalId: org.hubspot.portalId, aiActorId: org.hubspot.aiActorId },
        window: command.window,
        dryRun: command.dryRun,
        onProgress: progress.update,
      },
    );
    progress.stop();
    if (result.kind === 'leased') {
      output.err(`reconcile: ${leasedLine(org.orgId, result.holder)}\n`);
      return EXIT_LEASED;
    }
    output.out(
      formatReport(result, { orgId: org.orgId, portalId: org.hubspot.portalId }, topics.rawEvents.name),
    );
    return 0;
  } catch (error) {
    progress.stop();
    output.err(`reconcile: ${explain(error, config)}\n`);
    return 1;
  } finally {
    for (const stop of stops.reverse()) await stop().catch(() => undefined);
    redis.disconnect();
  }
};

if (isEntryPoint(import.meta.url)) exitWith('reconcile', runReconcile(process.argv.slice(2), process.env));
