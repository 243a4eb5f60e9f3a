/**
 * The chaos soak (issue 9): `npm run soak -- [--minutes N] [--rate R] [--seed S] [--orgs K (default: rate / 5, at least 5)]
 * [--short] [--kafka-restart | --kafka-cluster] [--redis-sentinel] [--skip-faults kill,redis,flushall,opencx,hubspot,broker,drop]`.
 * Needs KAFKA_BROKERS and SCHEMA_REGISTRY_URL (as the tests do); --kafka-cluster needs
 * KAFKA_CLUSTER_BROKERS (infra/local/up.sh --brokers 3), --redis-sentinel REDIS_SENTINELS and
 * REDIS_SENTINEL_NAME (infra/local/redis-sentinel.sh up). Starts its own services as processes,
 * the fakes and (without --redis-sentinel) its own Redis server. Prints one table and exits 1 on
 * any loss, duplicate or reordering (2 on bad usage).
 */
import { runSoak } from '../test/support/soak/run-soak.ts';
import { killAllChildren } from '../test/support/soak/cluster.ts';
import { parseSoakArgs, USAGE } from '../test/support/soak/options.ts';

const main = async (): Promise<number> => {
  const command = parseSoakArgs(process.argv.slice(2));
  if (command.kind === 'help') {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  if (command.kind === 'refused') {
    process.stderr.write(`soak: ${command.message}\n${USAGE}\n`);
    return 2;
  }
  const { args } = command;
  for (const warning of command.warnings) process.stderr.write(`soak: warning: ${warning}\n`);
  const report = await runSoak({
    skipFaults: args.skipFaults,
    claimLeaseMs: args.claimLeaseMs,
    loadMs: Math.round(args.minutes * 60_000),
    rate: args.rate,
    seed: args.seed ?? Math.floor(Math.random() * 2 ** 31),
    orgs: args.orgs,
    profile: args.short ? 'short' : 'long',
    kafkaRestart: args.kafkaRestart,
    kafkaCluster: args.kafkaCluster,
    redisSentinel: args.redisSentinel,
    drainTimeoutMs: Math.max(180_000, args.minutes * 30_000),
    say: (line) => process.stderr.write(`${line}\n`),
  });
  process.stdout.write(
    `\nsoak ${report.runId} (seed ${report.seed}; logs ${report.logDir})\n${report.table}\n`,
  );
  return report.ok ? 0 : 1;
};

// Interrupted (Ctrl-C, SIGTERM, a CI timeout): stop what the soak started, leave no orphans.
for (const signal of ['SIGINT', 'SIGTERM'] as const)
  process.once(signal, () => {
    const killed = killAllChildren();
    process.stderr.write(`\nsoak: ${signal}: stopped ${killed} process(es) it had started; no verdict\n`);
    process.exit(130);
  });

// A failure of the harness itself (a throw outside the run's own handling): no orphans either.
for (const event of ['uncaughtException', 'unhandledRejection'] as const)
  process.once(event, (error: unknown) => {
    const killed = killAllChildren();
    process.stderr.write(
      `soak: ${event}: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\nsoak: stopped ${killed} process(es) it had started; no verdict\n`,
    );
    process.exit(1);
  });

main().then(
  (code) => {
    process.exitCode = code;
    // kafkajs or a fake's keep-alive socket may hold the loop open: the verdict is printed.
    setTimeout(() => process.exit(code), 2000).unref();
  },
  (error: unknown) => {
    // A refusal or a start-up failure: its message says what to do; SOAK_DEBUG=1 adds the stack.
    const detail = error instanceof Error && process.env.SOAK_DEBUG ? error.stack : undefined;
    process.stderr.write(`soak: ${detail ?? (error instanceof Error ? error.message : String(error))}\n`);
    killAllChildren();
    process.exit(1);
  },
);
