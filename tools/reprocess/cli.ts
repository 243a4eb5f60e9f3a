/**
 * `npm run reprocess -- --org X --since 2h [--until T] [--dry-run] [--max-records N]`
 * Re-runs an organisation's raw HubSpot events of a time window through the processor's current
 * rules, prints what changed against the domain topic (new effects, newly skipped, ...) and, unless
 * --dry-run, writes the missing domain events (run.ts says why that is safe).
 * It reads the processor's configuration (KAFKA_*, SCHEMA_REGISTRY_URL, REDIS_*, SECRETS_KEY,
 * HUBSPOT_*, EMAIL_DELAY_MS): run it where the processor runs, with its environment (every
 * service's image holds tools/: `node tools/reprocess/cli.ts`).
 * Exit codes: 0 done, 1 an outside system failed or some events could not be decided, 2 bad usage.
 */
import { parseArgs } from 'node:util';
import { SingleBar } from 'cli-progress';
import { resolveSecretsKey } from '../../lib/config.ts';
import { createDomainEventPublisher } from '../../lib/domain-event-publisher.ts';
import type { DomainEvent } from '../../lib/domain-events.ts';
import { createBudgetedPortalClients } from '../../lib/hubspot/index.ts';
import { createKafka, topicsFor } from '../../lib/kafka/index.ts';
import { createLogger } from '../../lib/log.ts';
import { OrgDirectory, createSecretBox } from '../../lib/orgs/index.ts';
import { createRedisPropertyClock } from '../../lib/property-clock.ts';
import { createRedis } from '../../lib/redis.ts';
import { AvroCodec } from '../../lib/registry.ts';
import {
  Change,
  ReprocessError,
  formatReport,
  parseWindow,
  reprocessWindow,
  type ReprocessPhase,
  type TimeWindow,
} from './index.ts';
import { sleep } from '../../lib/retry.ts';
import { isEntryPoint } from '../../lib/service.ts';
import { UsageError, exitWith, processOutput, startCommand, type CommandOutput } from '../command-line.ts';
import { SessionLinks } from '../../lib/session-links.ts';
import { explainOutage } from '../outage-line.ts';
import { REGISTRY_CHECK_TIMEOUT_MS, checkHubSpot, checkSchemaRegistry } from '../upstreams.ts';
import {
  handlerSettings,
  loadProcessorConfig,
  type ProcessorConfig,
} from '../../services/processor/src/config.ts';

export const USAGE =
  'usage: npm run reprocess -- --org ORG_ID --since 2h|2026-11-30T10:00:00Z|EPOCH_MS [--until ...] [--dry-run] [--max-records N (default 200000)]';

const DEFAULT_MAX_RECORDS = 200_000;

export type ReprocessCommand = {
  readonly orgId: string;
  readonly window: TimeWindow;
  readonly dryRun: boolean;
  readonly maxRecords: number;
};

export const parseCommand = (argv: readonly string[], now: number): ReprocessCommand | 'help' => {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      strict: true,
      allowPositionals: false,
      options: {
        org: { type: 'string' },
        since: { type: 'string' },
        until: { type: 'string' },
        'dry-run': { type: 'boolean' },
        'max-records': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    throw new UsageError(message.split(/\. /)[0] ?? message);
  }
  const { values } = parsed;
  if (values.help) return 'help';
  if (!values.org) throw new UsageError('--org is required: the organisation whose events to reprocess');
  if (!values.since) throw new UsageError('--since is required: where the window starts (e.g. 2h)');
  const maxRecords = values['max-records'] ?? String(DEFAULT_MAX_RECORDS);
  if (!/^[1-9]\d*$/.test(maxRecords))
    throw new UsageError(`--max-records "${maxRecords}" is not a positive whole number`);
  let window: TimeWindow;
  try {
    window = parseWindow(values.since, values.until, now);
  } catch (error) {
    if (error instanceof ReprocessError) throw new UsageError(error.message);
    throw error;
  }
  return { orgId: values.org, window, dryRun: values['dry-run'] === true, maxRecords: Number(maxRecords) };
};

export type Output = CommandOutput;

/** One bar (or, on a pipe, a line every 10 %) per phase. */
const progressReporter = (
  output: Output,
): { update: (phase: ReprocessPhase, done: number, total: number) => void; stop: () => void } => {
  let current: { phase: ReprocessPhase; bar?: SingleBar; step: number } | undefined;
  const stop = (): void => {
    current?.bar?.stop();
    current = undefined;
  };
  return {
    update: (phase, done, total) => {
      if (current?.phase !== phase) {
        stop();
        current = { phase, step: Math.max(1, Math.ceil(total / 10)) };
        if (output.isTTY) {
          current.bar = new SingleBar({
            stream: process.stderr,
            format: `${phase.padEnd(14)} [{bar}] {value}/{total} ({eta_formatted} left)`,
            hideCursor: null,
          });
          current.bar.start(total, 0);
        }
      }
      if (current.bar) current.bar.update(done);
      else if (done % current.step === 0 || done === total) output.err(`${phase}: ${done}/${total}\n`);
    },
    stop,
  };
};

/** A failure as the one line an operator can act on. */
const explain = (error: unknown, config: ProcessorConfig): string =>
  error instanceof ReprocessError ? error.message : explainOutage(error, config);

export const runReprocess = async (
  argv: readonly string[],
  env: NodeJS.ProcessEnv,
  output: Output = processOutput,
): Promise<number> => {
  const started = startCommand('reprocess', argv, env, output, {
    parse: parseCommand,
    usage: USAGE,
    help: USAGE,
    loadConfig: loadProcessorConfig,
  });
  if (typeof started === 'number') return started;
  const { command, config } = started;

  // The adapters the processor builds (services/processor/src/main.ts), without its consumer:
  // silent, since the summary says what matters.
  const logger = createLogger('reprocess', 'silent');
  const topics = topicsFor(config.KAFKA_TOPIC_PREFIX);
  const kafka = createKafka({ clientId: 'reprocess', brokers: config.KAFKA_BROKERS, logger });
  const codec = new AvroCodec({ url: config.SCHEMA_REGISTRY_URL, subjectPrefix: config.KAFKA_TOPIC_PREFIX });
  const redis = createRedis(config, logger);
  const stops: (() => Promise<void>)[] = [];
  const progress = progressReporter(output);
  try {
    // Without HubSpot or the registry no event can be decided: checked before the topics are read.
    await Promise.all([
      checkHubSpot(config.HUBSPOT_API_BASE_URL, config.HUBSPOT_TIMEOUT_MS),
      checkSchemaRegistry(config.SCHEMA_REGISTRY_URL, REGISTRY_CHECK_TIMEOUT_MS),
    ]);
    const admin = kafka.admin();
    await admin.connect();
    const existing = await admin.listTopics().finally(() => admin.disconnect());
    for (const topic of [topics.rawEvents, topics.domainEvents, topics.orgs, topics.sessionLinks])
      if (!existing.includes(topic.name))
        throw new ReprocessError(
          `topic ${topic.name} does not exist; check KAFKA_TOPIC_PREFIX (the services create it when they start)`,
        );
    await redis.ping();
    const secretsKey = resolveSecretsKey(config);
    const orgs = new OrgDirectory({
      kafka,
      topic: topics.orgs.name,
      groupPrefix: `${config.KAFKA_TOPIC_PREFIX}reprocess-`,
      secrets: createSecretBox(secretsKey.key, { previous: secretsKey.previous }),
      logger,
    });
    const links = new SessionLinks({
      kafka,
      topic: topics.sessionLinks.name,
      groupPrefix: `${config.KAFKA_TOPIC_PREFIX}reprocess-`,
      logger,
    });
    await Promise.all([orgs.start(), links.start()]);
    stops.push(() => Promise.all([orgs.stop(), links.stop()]).then(() => undefined));

    let publish = async (_events: readonly DomainEvent[]): Promise<void> => {
      throw new Error('a dry run writes nothing');
    };
    if (!command.dryRun) {
      await codec.registerAll();
      const publisher = await createDomainEventPublisher({
        kafka,
        codec,
        topics: [topics.domainEvents.name],
        logger,
      });
      stops.push(() => publisher.drain());
      publish = (events) => publisher.publish(topics.domainEvents.name, events);
    }

    const report = await reprocessWindow(
      {
        kafka,
        codec,
        rawTopic: topics.rawEvents.name,
        domainTopic: topics.domainEvents.name,
        orgs,
        links,
        propertyClock: createRedisPropertyClock(redis, {
          prefix: config.REDIS_KEY_PREFIX,
          ttlMs: config.DEDUP_TTL_MS,
        }),
        // The processor's per-portal budget, shared through Redis: a reprocess re-fetches each
        // message from HubSpot and must not starve live traffic of its calls.
        hubspotFor: createBudgetedPortalClients(redis, config),
        publish,
        settings: handlerSettings(config),
        now: Date.now,
        sleep,
      },
      {
        orgId: command.orgId,
        window: command.window,
        dryRun: command.dryRun,
        maxRecords: command.maxRecords,
        onProgress: progress.update,
      },
    );
    progress.stop();
    output.out(formatReport(report, topics.domainEvents.name));
    return report.counts[Change.failed] > 0 ? 1 : 0;
  } catch (error) {
    progress.stop();
    output.err(`reprocess: ${explain(error, config)}\n`);
    return 1;
  } finally {
    for (const stop of stops.reverse()) await stop().catch(() => undefined);
    redis.disconnect();
  }
};

if (isEntryPoint(import.meta.url)) exitWith('reprocess', runReprocess(process.argv.slice(2), process.env));
