/**
 * The operator's reseal command, the last step of a SECRETS_KEY rotation:
 *   SECRETS_KEY=<new> SECRETS_KEY_PREVIOUS=<old> npm run orgs:reseal [-- --dry-run]
 * Reads the compacted orgs topic and writes again, sealed with SECRETS_KEY, every record with a
 * secret only SECRETS_KEY_PREVIOUS opens; prints progress and a summary. Idempotent: a second
 * run finds nothing to do. A record no key opens is reported, never written.
 * Exit codes: 0 every live organisation is readable with SECRETS_KEY alone afterwards;
 * 1 some are not (listed), or Kafka failed; 2 bad usage.
 * Plain stdout/stderr, no JSON logs: a person reads this.
 */
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { commonEnv, loadConfig, resolveSecretsKey } from '../../lib/config.ts';
import { createDurableProducer, createKafka, topicsFor } from '../../lib/kafka/index.ts';
import { createLogger } from '../../lib/log.ts';
import { isEntryPoint } from '../../lib/service.ts';
import { exitWith } from '../command-line.ts';
import {
  OrgDirectory,
  createOrgRepository,
  createSecretBox,
  openStoredOrg,
  type ResealResult,
} from '../../lib/orgs/index.ts';

export const USAGE = 'usage: npm run orgs:reseal [-- --dry-run]';

export const resealEnv = { ...commonEnv, METRICS_PORT: z.coerce.number().int().min(0).max(65535).optional() };

export type ResealSummary = {
  readonly total: number;
  readonly resealed: number;
  readonly current: number;
  /** Live records no configured key opens: their events are dead-lettered until fixed. */
  readonly unreadable: number;
  readonly deletedUnreadable: number;
};

export const formatSummary = (summary: ResealSummary, dryRun: boolean): string =>
  `${summary.total} organisation record${summary.total === 1 ? '' : 's'}: ` +
  `${dryRun ? 'would reseal' : 'resealed'} ${summary.resealed}, already current ${summary.current}, ` +
  `unreadable ${summary.unreadable}` +
  (summary.deletedUnreadable > 0
    ? ` (and ${summary.deletedUnreadable} deleted, unreadable, left as they are)`
    : '');

const explain = (orgId: string, result: ResealResult): string | undefined => {
  switch (result.kind) {
    case 'unreadable':
      return result.deleted
        ? undefined
        : `unreadable: ${orgId}: ${result.fields.join(', ')} open with neither SECRETS_KEY nor SECRETS_KEY_PREVIOUS; ` +
            `set SECRETS_KEY_PREVIOUS to the key that sealed them and run again, or PUT /admin/orgs/${orgId} with its secrets`;
    case 'resealed':
    case 'current':
      return result.webhookTokenUnreadable
        ? `note: ${orgId}: its webhook token opens with no configured key; kept as it is (the legacy URL still routes, it cannot be shown)`
        : undefined;
    case 'unknown':
      return undefined;
    default: {
      const unreachable: never = result;
      return unreachable;
    }
  }
};

/** A plain line every 5 % (and at the end): the command runs from terminals and from jobs alike. */
const progress = (total: number): ((done: number) => void) => {
  const step = Math.max(1, Math.ceil(total / 20));
  return (done) => {
    if (done % step === 0 || done === total) process.stderr.write(`resealing ${done}/${total}\n`);
  };
};

export const runReseal = async (argv: readonly string[], env: NodeJS.ProcessEnv): Promise<number> => {
  let dryRun: boolean;
  try {
    const { values } = parseArgs({
      args: [...argv],
      strict: true,
      options: { 'dry-run': { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
    });
    if (values.help) {
      process.stdout.write(`${USAGE}\n`);
      return 0;
    }
    dryRun = values['dry-run'] === true;
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    process.stderr.write(`orgs:reseal: ${message.split(/\. /)[0] ?? message}\n${USAGE}\n`);
    return 2;
  }

  let config: ReturnType<typeof loadConfig<typeof resealEnv>>;
  let keys: ReturnType<typeof resolveSecretsKey>;
  try {
    config = loadConfig(resealEnv, env);
    keys = resolveSecretsKey(config);
  } catch (error) {
    process.stderr.write(`orgs:reseal: ${error instanceof Error ? error.message : String(error)}\n`);
    return 1;
  }
  if (keys.insecure)
    process.stderr.write('orgs:reseal: SECRETS_KEY is not set: sealing with the development key\n');
  if (!keys.previous)
    process.stderr.write(
      'orgs:reseal: SECRETS_KEY_PREVIOUS is not set: only checks that every record opens with SECRETS_KEY\n',
    );

  const logger = createLogger('orgs-reseal', 'silent');
  const kafka = createKafka({ clientId: 'orgs-reseal', brokers: config.KAFKA_BROKERS, logger });
  const secrets = createSecretBox(keys.key, { previous: keys.previous });
  const topic = topicsFor(config.KAFKA_TOPIC_PREFIX).orgs.name;
  const directory = new OrgDirectory({
    kafka,
    topic,
    groupPrefix: config.KAFKA_TOPIC_PREFIX,
    secrets,
    logger,
  });
  const producer = createDurableProducer(kafka);
  try {
    const admin = kafka.admin();
    await admin.connect();
    const exists = await admin.listTopics().finally(() => admin.disconnect());
    if (!exists.includes(topic)) {
      process.stderr.write(
        `orgs:reseal: topic ${topic} does not exist; check KAFKA_TOPIC_PREFIX (the services create it when they start)\n`,
      );
      return 1;
    }
    await directory.start();
    await producer.connect();
    const repository = createOrgRepository({ directory, producer, secrets, now: Date.now });
    const records = directory.storedRecords();
    const report = progress(records.length);
    let resealed = 0;
    let current = 0;
    let unreadable = 0;
    let deletedUnreadable = 0;
    for (const [index, record] of records.entries()) {
      let result: ResealResult;
      if (dryRun) {
        const opened = openStoredOrg(record, secrets);
        result = !opened.readable
          ? { kind: 'unreadable', fields: opened.unreadable, deleted: record.deleted }
          : opened.sealedWithPrevious.length > 0
            ? {
                kind: 'resealed',
                fields: opened.sealedWithPrevious,
                webhookTokenUnreadable: opened.webhookTokenUnreadable,
              }
            : { kind: 'current', webhookTokenUnreadable: opened.webhookTokenUnreadable };
      } else result = await repository.reseal(record.orgId);
      if (result.kind === 'resealed') resealed += 1;
      if (result.kind === 'current') current += 1;
      if (result.kind === 'unreadable') {
        if (result.deleted) deletedUnreadable += 1;
        else unreadable += 1;
      }
      const line = explain(record.orgId, result);
      if (line) process.stdout.write(`${line}\n`);
      report(index + 1);
    }
    const summary = { total: records.length, resealed, current, unreadable, deletedUnreadable };
    process.stdout.write(`${formatSummary(summary, dryRun)}\n`);
    if (unreadable === 0 && !dryRun && keys.previous)
      process.stdout.write(
        'every organisation opens with SECRETS_KEY alone: SECRETS_KEY_PREVIOUS can be unset\n',
      );
    return unreadable > 0 ? 1 : 0;
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    process.stderr.write(
      `orgs:reseal: ${message}; check KAFKA_BROKERS (${config.KAFKA_BROKERS.join(',')}) and that the brokers are up\n`,
    );
    return 1;
  } finally {
    await producer.disconnect().catch(() => undefined);
    await directory.stop().catch(() => undefined);
  }
};

if (isEntryPoint(import.meta.url)) exitWith('orgs:reseal', runReseal(process.argv.slice(2), process.env));
