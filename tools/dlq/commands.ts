import { SingleBar } from 'cli-progress';
import type { ArchivedDeadLetter } from '../../lib/dead-letters/index.ts';
import { createDurableProducer, type createKafka } from '../../lib/kafka/index.ts';
import { createLogger } from '../../lib/log.ts';
import { createRedis } from '../../lib/redis.ts';
import type { AvroCodec } from '../../lib/registry.ts';
import type { DlqCommand, DlqConfig } from './arguments.ts';
import { planReplay, replayAtRate } from './paced-replay.ts';
import {
  formatLetter,
  formatLetterDetail,
  formatReplaySummary,
  formatSummary,
  idOf,
  json,
  letterAsJson,
  oneLine,
  shortId,
  summaryAsJson,
  type DecodedPayload,
} from './render.ts';

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

export const runList = async (letters: readonly ArchivedDeadLetter[], asJson: boolean): Promise<number> => {
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

export const runShow = async (
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

export const runReplay = async (
  letters: readonly ArchivedDeadLetter[],
  command: Extract<DlqCommand, { command: 'replay' }>,
  config: DlqConfig,
  kafka: ReturnType<typeof createKafka>,
): Promise<number> => {
  // Connection trouble is reported by the failing command; the CLI's logger is silent.
  const redis = createRedis(config, createLogger('dlq', 'silent'));
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
