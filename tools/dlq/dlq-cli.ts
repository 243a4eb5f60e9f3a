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
import { loadConfig } from '../../lib/config.ts';
import { readDeadLetters } from '../../lib/dead-letters/index.ts';
import { createKafka, topicsFor } from '../../lib/kafka/index.ts';
import { createLogger } from '../../lib/log.ts';
import { describeRedisTopology, redisTopologyOf } from '../../lib/redis-topology.ts';
import { AvroCodec } from '../../lib/registry.ts';
import { isEntryPoint } from '../../lib/service.ts';
import { exitWith } from '../command-line.ts';
import {
  REGISTRY_CHECK_TIMEOUT_MS,
  UpstreamUnavailable,
  checkSchemaRegistry,
  explainUnavailable,
} from '../upstreams.ts';
import { USAGE, UsageError, dlqEnv, parseCommand, type DlqCommand, type DlqConfig } from './arguments.ts';
import { runList, runReplay, runShow } from './commands.ts';
import { oneLine } from './render.ts';

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
    return `cannot reach Redis at ${describeRedisTopology(redisTopologyOf(config))} (${oneLine(message, 160)}); check REDIS_URL (or REDIS_SENTINELS, REDIS_CLUSTER_NODES)`;
  return oneLine(message, 300);
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

if (isEntryPoint(import.meta.url)) exitWith('dlq', runDlq(process.argv.slice(2), process.env));
