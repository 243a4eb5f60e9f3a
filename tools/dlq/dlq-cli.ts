/**
 * The operator's dead-letter command (contract.md, "OpenCX calls"), for the letters of every service:
 *   npm run dlq -- list|replay [--org X] [--since T] [--reason R] [--limit N] [--json]
 *   npm run dlq -- replay [...] [--dry-run] [--rate N]
 *   npm run dlq -- show <id> [--json]
 * `list` prints one line per letter and a count by reason; `show` one letter whole, its original
 * record decoded; `replay` puts each letter's original record back on its source topic, once (a
 * second replay produces nothing), at most --rate letters per second; `--dry-run` says what a
 * replay would do and writes nothing.
 * Exit codes: 0 done, 1 an outside system failed (or some letters did not replay, or no letter
 * has that id), 2 bad usage.
 * Plain stdout/stderr, no JSON logs: a person reads this (or a script, with --json).
 */
import { parseArgs } from 'node:util';
import { SingleBar } from 'cli-progress';
import { z } from 'zod';
import { commonEnv, loadConfig } from '../../lib/config.ts';
import { createDurableProducer, createKafka, topicsFor } from '../../lib/kafka/index.ts';
import { createLogger } from '../../lib/log.ts';
import { createRedis } from '../../lib/redis.ts';
import { AvroCodec } from '../../lib/registry.ts';
import { isEntryPoint } from '../../lib/service.ts';
import {
  deadLetterId,
  parseSince,
  readDeadLetters,
  type ArchivedDeadLetter,
  type DeadLetterFilter,
  type ReplaySummary,
} from '../../lib/dead-letters/index.ts';
import {
  REGISTRY_CHECK_TIMEOUT_MS,
  UpstreamUnavailable,
  checkSchemaRegistry,
  explainUnavailable,
} from '../upstreams.ts';
import { DEFAULT_REPLAY_RATE, planReplay, replayAtRate } from './paced-replay.ts';

export const USAGE = [
  'usage: npm run dlq -- list|replay [--org ORG_ID] [--since 2h|2024-05-01T00:00:00Z|EPOCH_MS] [--reason REASON] [--limit N] [--json]',
  `       npm run dlq -- replay [filters] [--dry-run] [--rate LETTERS_PER_SECOND (default ${DEFAULT_REPLAY_RATE})]`,
  '       npm run dlq -- show ID [--json]   (ID: the id= of a listed letter, or its first 8+ characters)',
].join('\n');

export type DlqCommand =
  | { readonly command: 'list'; readonly filter: DeadLetterFilter; readonly json: boolean }
  | {
      readonly command: 'replay';
      readonly filter: DeadLetterFilter;
      readonly json: boolean;
      readonly dryRun: boolean;
      readonly ratePerSecond: number;
    }
  | { readonly command: 'show'; readonly id: string; readonly json: boolean }
  | { readonly command: 'help' };

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
        json: { type: 'boolean' },
        'dry-run': { type: 'boolean' },
        rate: { type: 'string' },
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
  if (command !== 'list' && command !== 'replay' && command !== 'show')
    throw new UsageError(
      command === undefined
        ? 'missing command: list, replay or show'
        : `unknown command "${command}": list, replay or show`,
    );
  const json = values.json === true;
  if (command !== 'replay') {
    for (const name of ['dry-run', 'rate'] as const)
      if (values[name] !== undefined) throw new UsageError(`--${name} is for replay only`);
  }
  if (command === 'show') {
    const [id, ...more] = extra;
    if (id === undefined) throw new UsageError('show needs the id of a letter (the id= column of list)');
    if (more.length > 0) throw new UsageError(`unexpected argument "${more.join(' ')}"`);
    if (!/^[0-9a-f]{8,32}$/.test(id))
      throw new UsageError(`"${id}" is not a letter id: 8 to 32 hex characters, as list prints after id=`);
    for (const name of ['org', 'since', 'reason', 'limit'] as const)
      if (values[name] !== undefined) throw new UsageError(`--${name} is for list and replay, not show`);
    return { command, id, json };
  }
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
  if (values.rate !== undefined && !(/^\d+(\.\d+)?$/.test(values.rate) && Number(values.rate) > 0))
    throw new UsageError(`--rate "${values.rate}" is not a number of letters per second above 0`);
  const filter: DeadLetterFilter = {
    ...(values.org === undefined ? {} : { orgId: values.org }),
    ...(since === undefined ? {} : { since }),
    ...(values.reason === undefined ? {} : { reason: values.reason }),
    ...(values.limit === undefined ? {} : { limit: Number(values.limit) }),
  };
  if (command === 'list') return { command, filter, json };
  return {
    command,
    filter,
    json,
    dryRun: values['dry-run'] === true,
    ratePerSecond: values.rate === undefined ? DEFAULT_REPLAY_RATE : Number(values.rate),
  };
};

/** A letter's id: the `dead-letter-id` its writer gave it, derived from where its source record sits. */
export const idOf = ({ letter }: ArchivedDeadLetter): string =>
  deadLetterId(letter.service, letter.sourceTopic, letter.partition, letter.offset);

/** What `list` prints as id=: enough of the id to tell letters apart, and `show` takes it. */
const shortId = (letter: ArchivedDeadLetter): string => idOf(letter).slice(0, 12);

const oneLine = (text: string, max: number): string => {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
};

export const formatLetter = (archived: ArchivedDeadLetter): string => {
  const { letter } = archived;
  return [
    new Date(letter.failedAt).toISOString(),
    letter.service,
    letter.reason,
    `org=${letter.orgId ?? '-'}`,
    letter.eventType ?? '-',
    `event=${letter.eventId ?? '-'}`,
    `from=${letter.sourceTopic}/${letter.partition}@${letter.offset}`,
    `id=${shortId(archived)}`,
    oneLine(letter.error, 120),
  ].join('  ');
};

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

/** A letter as data (--json): ids and positions as text, times as ISO dates, bytes measured. */
export const letterAsJson = (archived: ArchivedDeadLetter): Record<string, unknown> => {
  const { letter } = archived;
  return {
    id: idOf(archived),
    deadLetter: { topic: archived.topic, partition: archived.partition, offset: archived.offset },
    failedAt: new Date(letter.failedAt).toISOString(),
    service: letter.service,
    reason: letter.reason,
    error: letter.error,
    attempts: letter.attempts,
    orgId: letter.orgId,
    eventType: letter.eventType,
    eventId: letter.eventId,
    source: { topic: letter.sourceTopic, partition: letter.partition, offset: letter.offset },
    key: letter.key?.toString('utf8') ?? null,
    headers: letter.headers,
    valueBytes: letter.value?.length ?? null,
  };
};

export const summaryAsJson = (letters: readonly ArchivedDeadLetter[]): Record<string, number> => {
  const byReason: Record<string, number> = {};
  for (const { letter } of letters) byReason[letter.reason] = (byReason[letter.reason] ?? 0) + 1;
  return byReason;
};

/** Bytes as base64, Dates as ISO text, bigints as text: JSON.stringify's replacer. */
const jsonSafe = (_key: string, value: unknown): unknown => {
  if (typeof value === 'bigint') return value.toString();
  if (value && typeof value === 'object' && (value as { type?: unknown }).type === 'Buffer')
    return { base64: Buffer.from((value as { data: number[] }).data).toString('base64') };
  return value;
};

export type DecodedPayload =
  | { readonly kind: 'absent'; readonly detail: string }
  | { readonly kind: 'avro'; readonly recordName: string; readonly record: Record<string, unknown> }
  | {
      readonly kind: 'undecodable';
      readonly error: string;
      readonly text: string | null;
      readonly base64: string;
    };

/**
 * The letter's original record, decoded: an Avro record (a raw HubSpot event's JSON text parsed,
 * so it reads as HubSpot sent it), or why it cannot be (an `undecodable` letter's value is the
 * very thing that could not be read), with its bytes.
 */
export const decodePayload = async (
  letter: ArchivedDeadLetter['letter'],
  codec: AvroCodec,
): Promise<DecodedPayload> => {
  if (!letter.value)
    return {
      kind: 'absent',
      detail: 'the letter keeps no value (it was over the record limit, or the record had none)',
    };
  try {
    const { recordName, record } = await codec.decodeRecord(letter.value);
    const event = record.event;
    if (typeof event === 'string') {
      try {
        return { kind: 'avro', recordName, record: { ...record, event: JSON.parse(event) as unknown } };
      } catch {
        // Not JSON after all: shown as the text it is.
      }
    }
    return { kind: 'avro', recordName, record };
  } catch (error) {
    const text = letter.value.toString('utf8');
    return {
      kind: 'undecodable',
      error: error instanceof Error ? error.message : String(error),
      // Shown as text only when it is text (no replacement characters, no control bytes).
      text: /[\uFFFD\u0000-\u0008\u000E-\u001F]/.test(text) ? null : text,
      base64: letter.value.toString('base64'),
    };
  }
};

/** `show`, for a person: one field a line, then the decoded original record. */
export const formatLetterDetail = (archived: ArchivedDeadLetter, payload: DecodedPayload): string => {
  const { letter } = archived;
  const rows: [string, string][] = [
    ['id', idOf(archived)],
    ['stored at', `${archived.topic}/${archived.partition}@${archived.offset}`],
    ['failed at', new Date(letter.failedAt).toISOString()],
    ['service', letter.service],
    ['reason', letter.reason],
    ['attempts', String(letter.attempts)],
    ['organisation', letter.orgId ?? '-'],
    ['event', `${letter.eventType ?? '-'} ${letter.eventId ?? ''}`.trim()],
    ['source', `${letter.sourceTopic}/${letter.partition}@${letter.offset}`],
    ['key', letter.key?.toString('utf8') ?? '-'],
    [
      'headers',
      Object.entries(letter.headers ?? {})
        .map(([name, value]) => `${name}=${value}`)
        .join(', ') || '-',
    ],
    ['error', letter.error],
  ];
  const width = Math.max(...rows.map(([name]) => name.length));
  const head = rows.map(([name, value]) => `${name.padEnd(width)}  ${value}`).join('\n');
  const body =
    payload.kind === 'avro'
      ? `payload (${payload.recordName}):\n${JSON.stringify(payload.record, jsonSafe, 2)}`
      : payload.kind === 'absent'
        ? `payload: none: ${payload.detail}`
        : `payload: not decodable (${payload.error}); ${payload.text === null ? `base64: ${payload.base64}` : `as text: ${payload.text}`}`;
  return `${head}\n${body}`;
};

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
  if (error instanceof UpstreamUnavailable) return explainUnavailable(error, config.SCHEMA_REGISTRY_URL);
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

const json = (value: unknown): string => `${JSON.stringify(value, jsonSafe)}\n`;

const runList = async (letters: readonly ArchivedDeadLetter[], asJson: boolean): Promise<number> => {
  if (asJson) {
    process.stdout.write(
      json({ count: letters.length, byReason: summaryAsJson(letters), letters: letters.map(letterAsJson) }),
    );
    return 0;
  }
  for (const letter of letters) process.stdout.write(`${formatLetter(letter)}\n`);
  process.stdout.write(`${formatSummary(letters)}\n`);
  return 0;
};

const runShow = async (
  letters: readonly ArchivedDeadLetter[],
  id: string,
  asJson: boolean,
  codec: AvroCodec,
): Promise<number> => {
  const matches = letters.filter((letter) => idOf(letter).startsWith(id));
  const [letter] = matches;
  if (!letter || matches.length > 1) {
    process.stderr.write(
      matches.length === 0
        ? `dlq: no dead letter has the id ${id}; npm run dlq -- list shows each letter's id=\n`
        : `dlq: ${matches.length} dead letters have ids starting ${id} (${matches.map(shortId).join(', ')}); give more of the id\n`,
    );
    return 1;
  }
  const payload = await decodePayload(letter.letter, codec);
  process.stdout.write(
    asJson ? json({ ...letterAsJson(letter), payload }) : `${formatLetterDetail(letter, payload)}\n`,
  );
  return 0;
};

const runReplay = async (
  letters: readonly ArchivedDeadLetter[],
  command: Extract<DlqCommand, { command: 'replay' }>,
  config: DlqConfig,
  kafka: ReturnType<typeof createKafka>,
): Promise<number> => {
  // Connection trouble is reported by the failing command; the CLI's logger is silent.
  const redis = createRedis(config.REDIS_URL, createLogger('dlq', 'silent'));
  try {
    await redis.ping();
    if (command.dryRun) {
      // Reads the replay markers and nothing else: no produce, no claim.
      const plan = await planReplay({ letters, redis, keyPrefix: config.REDIS_KEY_PREFIX });
      if (command.json) {
        process.stdout.write(
          json({
            dryRun: true,
            wouldReplay: plan.toReplay.map(letterAsJson),
            alreadyReplayed: plan.alreadyReplayed.map(letterAsJson),
          }),
        );
        return 0;
      }
      for (const letter of plan.toReplay)
        process.stdout.write(`would replay  ${formatLetter(letter)}  to=${letter.letter.sourceTopic}\n`);
      const seconds = plan.toReplay.length / command.ratePerSecond;
      process.stdout.write(
        `dry run: would replay ${plan.toReplay.length} (about ${seconds.toFixed(1)} s at ${command.ratePerSecond}/s), already replayed ${plan.alreadyReplayed.length}; nothing written\n`,
      );
      return 0;
    }
    const producer = createDurableProducer(kafka);
    try {
      await producer.connect();
      const progress = replayProgress(letters.length);
      const summary = await replayAtRate({
        letters,
        producer,
        redis,
        keyPrefix: config.REDIS_KEY_PREFIX,
        ratePerSecond: command.ratePerSecond,
        onProgress: ({ done }) => progress.update(done),
      }).finally(() => progress.stop());
      for (const { letter, error } of summary.failures)
        process.stderr.write(
          `failed: ${letter.topic}/${letter.partition}@${letter.offset}: ${oneLine(error, 200)}\n`,
        );
      process.stdout.write(
        command.json
          ? json({
              replayed: summary.replayed,
              alreadyReplayed: summary.alreadyReplayed,
              failed: summary.failed,
              failures: summary.failures.map(({ letter, error }) => ({ id: idOf(letter), error })),
            })
          : `${formatReplaySummary(summary)}\n`,
      );
      return summary.failed > 0 ? 1 : 0;
    } finally {
      await producer.disconnect();
    }
  } finally {
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
    // Without the registry every letter would read as undecodable: checked before the topic is read.
    await checkSchemaRegistry(config.SCHEMA_REGISTRY_URL, REGISTRY_CHECK_TIMEOUT_MS);
    const { letters, undecodable, firstUndecodableError } = await readDeadLetters({
      kafka,
      codec,
      topic: topicsFor(config.KAFKA_TOPIC_PREFIX).deadLetters.name,
      filter: command.command === 'show' ? {} : command.filter,
    });
    if (undecodable > 0)
      process.stderr.write(
        `dlq: ${undecodable} record(s) on the topic are not readable dead letters, skipped (first: ${oneLine(firstUndecodableError ?? '?', 200)}); is SCHEMA_REGISTRY_URL right?\n`,
      );
    switch (command.command) {
      case 'list':
        return await runList(letters, command.json);
      case 'show':
        return await runShow(letters, command.id, command.json, codec);
      case 'replay':
        return await runReplay(letters, command, config, kafka);
      default: {
        const unreachable: never = command;
        return unreachable;
      }
    }
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
