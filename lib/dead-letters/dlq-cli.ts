/**
 * The operator's dead-letter command (contract.md, "OpenCX calls"), for the letters of every service:
 *   npm run dlq -- list|replay [--org X] [--since T] [--reason R] [--limit N]
 * `list` prints one line per letter and a count by reason; `replay` puts each letter's original
 * record back on its source topic, once (a second replay produces nothing).
 * Exit codes: 0 done, 1 an outside system failed (or some letters did not replay), 2 bad usage.
 * Plain stdout/stderr, no JSON logs: a person reads this.
 */
import { parseArgs } from 'node:util';
import { SingleBar } from 'cli-progress';
import { z } from 'zod';
import { commonEnv, loadConfig } from '../config.ts';
import { createDurableProducer, createKafka, topicsFor } from '../kafka/index.ts';
import { createLogger } from '../log.ts';
import { createRedis } from '../redis.ts';
import { AvroCodec } from '../registry.ts';
import { isEntryPoint } from '../service.ts';
import {
  parseSince,
  readDeadLetters,
  replayDeadLetters,
  type ArchivedDeadLetter,
  type DeadLetterFilter,
  type ReplaySummary,
} from './archive.ts';

export const USAGE =
  'usage: npm run dlq -- list|replay [--org ORG_ID] [--since 2h|2024-05-01T00:00:00Z|EPOCH_MS] [--reason REASON] [--limit N]';

export type DlqCommand =
  { readonly command: 'list' | 'replay'; readonly filter: DeadLetterFilter } | { readonly command: 'help' };

class UsageError extends Error {}

/** argv (after the script name) → what to do; a UsageError names the first thing wrong. */
export const parseCommand = (argv: readonly string[], now: number): DlqCommand => {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      allowPositionals: true,
      strict: true,
      options: {
        org: { type: 'string' },
        since: { type: 'string' },
        reason: { type: 'string' },
        limit: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (error) {
    // node's own wording is long ("To specify a positional argument starting with a '-' ..."): keep its first sentence.
    const message = error instanceof Error ? error.message : String(error);
    throw new UsageError(message.split(/\. /)[0] ?? message);
  }
  const { values, positionals } = parsed;
  if (values.help) return { command: 'help' };
  const [command, ...extra] = positionals;
  if (command !== 'list' && command !== 'replay')
    throw new UsageError(
      command === undefined
        ? 'missing command: list or replay'
        : `unknown command "${command}": list or replay`,
    );
  if (extra.length > 0) throw new UsageError(`unexpected argument "${extra.join(' ')}"`);
  const since = values.since === undefined ? undefined : parseSince(values.since, now);
  if (values.since !== undefined && since === undefined)
    throw new UsageError(
      `--since "${values.since}" is not an ISO date, epoch milliseconds or a duration like 2h`,
    );
  if (values.limit !== undefined && !/^[1-9]\d*$/.test(values.limit))
    throw new UsageError(`--limit "${values.limit}" is not a positive whole number`);
  for (const name of ['org', 'reason'] as const) {
    if (values[name] === '') throw new UsageError(`--${name} needs a value`);
  }
  return {
    command,
    filter: {
      ...(values.org === undefined ? {} : { orgId: values.org }),
      ...(since === undefined ? {} : { since }),
      ...(values.reason === undefined ? {} : { reason: values.reason }),
      ...(values.limit === undefined ? {} : { limit: Number(values.limit) }),
    },
  };
};

const oneLine = (text: string, max: number): string => {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
};

export const formatLetter = ({ letter }: ArchivedDeadLetter): string =>
  [
    new Date(letter.failedAt).toISOString(),
    letter.service,
    letter.reason,
    `org=${letter.orgId ?? '-'}`,
    letter.eventType ?? '-',
    `event=${letter.eventId ?? '-'}`,
    `from=${letter.sourceTopic}/${letter.partition}@${letter.offset}`,
    oneLine(letter.error, 120),
  ].join('  ');

export const formatSummary = (letters: readonly ArchivedDeadLetter[]): string => {
  if (letters.length === 0) return 'no dead letters match';
  const byReason = new Map<string, number>();
  for (const { letter } of letters) byReason.set(letter.reason, (byReason.get(letter.reason) ?? 0) + 1);
  const counts = [...byReason]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([reason, count]) => `${reason} ${count}`);
  return `${letters.length} dead letter${letters.length === 1 ? '' : 's'}: ${counts.join(', ')}`;
};

export const formatReplaySummary = (summary: ReplaySummary): string =>
  `replayed ${summary.replayed}, already replayed ${summary.alreadyReplayed}, failed ${summary.failed}`;

/** A bar on a terminal; on a pipe or a log file, a plain line every 5 % (and at the end). */
const replayProgress = (total: number): { update: (done: number) => void; stop: () => void } => {
  if (process.stderr.isTTY) {
    const bar = new SingleBar({
      stream: process.stderr,
      format: 'replaying [{bar}] {value}/{total} ({eta_formatted} left)',
      hideCursor: null,
    });
    bar.start(total, 0);
    return { update: (done) => bar.update(done), stop: () => bar.stop() };
  }
  const step = Math.max(1, Math.ceil(total / 20));
  return {
    update: (done) => {
      if (done % step === 0 || done === total) process.stderr.write(`replayed ${done}/${total}\n`);
    },
    stop: () => undefined,
  };
};

export const dlqEnv = { ...commonEnv, METRICS_PORT: z.coerce.number().int().min(0).max(65535).optional() };
type DlqConfig = ReturnType<typeof loadConfig<typeof dlqEnv>>;

/** Turns a failure of an outside system into the one line an operator can act on. */
const explain = (error: unknown, config: DlqConfig): string => {
  const message = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
  if (/^Error: topic .* does not exist$/.test(message))
    return `${oneLine(message, 200).replace(/^Error: /, '')}; check KAFKA_TOPIC_PREFIX (the services create the topic when they start)`;
  if (/KafkaJS|ECONNREFUSED.*9092|broker/i.test(message)) {
    return `cannot reach Kafka at ${config.KAFKA_BROKERS.join(',')} (${oneLine(message, 160)}); check KAFKA_BROKERS and that the brokers are up`;
  }
  if (/registry|schema|ccompat|fetch failed/i.test(message))
    return `cannot read from the schema registry at ${config.SCHEMA_REGISTRY_URL} (${oneLine(message, 160)}); check SCHEMA_REGISTRY_URL`;
  if (/redis|MaxRetriesPerRequest/i.test(message))
    return `cannot reach Redis at ${config.REDIS_URL} (${oneLine(message, 160)}); check REDIS_URL`;
  return oneLine(message, 300);
};

const runList = async (letters: readonly ArchivedDeadLetter[]): Promise<number> => {
  for (const letter of letters) process.stdout.write(`${formatLetter(letter)}\n`);
  process.stdout.write(`${formatSummary(letters)}\n`);
  return 0;
};

const runReplay = async (
  letters: readonly ArchivedDeadLetter[],
  config: DlqConfig,
  kafka: ReturnType<typeof createKafka>,
): Promise<number> => {
  // Connection trouble is reported by the failing command; the CLI's logger is silent.
  const redis = createRedis(config.REDIS_URL, createLogger('dlq', 'silent'));
  const producer = createDurableProducer(kafka);
  try {
    await redis.ping();
    await producer.connect();
    const progress = replayProgress(letters.length);
    const summary = await replayDeadLetters({
      letters,
      producer,
      redis,
      keyPrefix: config.REDIS_KEY_PREFIX,
      onProgress: ({ done }) => progress.update(done),
    }).finally(() => progress.stop());
    for (const { letter, error } of summary.failures)
      process.stderr.write(
        `failed: ${letter.topic}/${letter.partition}@${letter.offset}: ${oneLine(error, 200)}\n`,
      );
    process.stdout.write(`${formatReplaySummary(summary)}\n`);
    return summary.failed > 0 ? 1 : 0;
  } finally {
    await producer.disconnect();
    redis.disconnect();
  }
};

export const runDlq = async (argv: readonly string[], env: NodeJS.ProcessEnv): Promise<number> => {
  let command: DlqCommand;
  try {
    command = parseCommand(argv, Date.now());
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    process.stderr.write(`dlq: ${error.message}\n${USAGE}\n`);
    return 2;
  }
  if (command.command === 'help') {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  let config: DlqConfig;
  try {
    config = loadConfig(dlqEnv, env);
  } catch (error) {
    process.stderr.write(`dlq: ${error instanceof Error ? error.message : String(error)}\n`);
    return 1;
  }
  // kafkajs logs its retries; the one line below says what matters.
  const kafka = createKafka({
    clientId: 'dlq-cli',
    brokers: config.KAFKA_BROKERS,
    logger: createLogger('dlq', 'silent'),
  });
  const codec = new AvroCodec({ url: config.SCHEMA_REGISTRY_URL, subjectPrefix: config.KAFKA_TOPIC_PREFIX });
  try {
    const { letters, undecodable, firstUndecodableError } = await readDeadLetters({
      kafka,
      codec,
      topic: topicsFor(config.KAFKA_TOPIC_PREFIX).deadLetters.name,
      filter: command.filter,
    });
    if (undecodable > 0)
      process.stderr.write(
        `dlq: ${undecodable} record(s) on the topic are not readable dead letters, skipped (first: ${oneLine(firstUndecodableError ?? '?', 200)}); is SCHEMA_REGISTRY_URL right?\n`,
      );
    return command.command === 'list' ? await runList(letters) : await runReplay(letters, config, kafka);
  } catch (error) {
    process.stderr.write(`dlq: ${explain(error, config)}\n`);
    return 1;
  }
};

if (isEntryPoint(import.meta.url)) {
  runDlq(process.argv.slice(2), process.env).then(
    (code) => {
      process.exitCode = code;
      // kafkajs or ioredis may keep a timer alive; the work is done and the output written.
      setTimeout(() => process.exit(code), 2000).unref();
    },
    (error: unknown) => {
      process.stderr.write(`dlq: ${error instanceof Error ? error.message : String(error)}\n`);
      process.exit(1);
    },
  );
}
