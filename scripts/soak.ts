/**
 * The chaos soak (issue 9): `npm run soak -- [--minutes N] [--rate R] [--seed S] [--orgs K (default: rate / 5, at least 5)]
 * [--short] [--kafka-restart] [--skip-faults kill,redis,flushall,opencx,hubspot]`. Needs KAFKA_BROKERS and SCHEMA_REGISTRY_URL (as the tests do);
 * starts its own Redis server, its own services as processes and the fakes. Prints one table and
 * exits 1 on any loss, duplicate or reordering (2 on bad usage).
 */
import { parseArgs } from 'node:util';
import { FAULT_KINDS, runSoak, type FaultKind } from '../test/support/soak/run-soak.ts';
import { killAllChildren } from '../test/support/soak/cluster.ts';

const USAGE =
  'usage: npm run soak -- [--minutes N] [--rate EVENTS_PER_S] [--seed S] [--orgs K (default: rate / 5, at least 5)] [--short] [--kafka-restart] [--skip-faults kill,redis,flushall,opencx,hubspot] [--claim-lease-ms MS]';

const fmtRate = (value: number): string => value.toFixed(1);

const main = async (): Promise<number> => {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        minutes: { type: 'string', default: '10' },
        rate: { type: 'string', default: '50' },
        seed: { type: 'string' },
        orgs: { type: 'string' },
        short: { type: 'boolean', default: false },
        'kafka-restart': { type: 'boolean', default: false },
        'skip-faults': { type: 'string', default: '' },
        'claim-lease-ms': { type: 'string', default: '5000' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (error) {
    process.stderr.write(`soak: ${error instanceof Error ? error.message : String(error)}\n${USAGE}\n`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const minutes = Number(values.minutes);
  const rate = Number(values.rate);
  // HubSpot allows each portal 100 calls per 10 s, and about one call per event is spent
  // (re-fetching a message, posting the AI's answer): by default one organisation per 5 events/s,
  // so the load stays within every portal's budget and what is measured is the pipeline.
  const orgs = values.orgs === undefined ? Math.max(5, Math.ceil(rate / 5)) : Number(values.orgs);
  if (Number.isFinite(orgs) && orgs > 0 && rate / orgs > 8)
    process.stderr.write(
      `soak: warning: ${fmtRate(rate / orgs)} events/s per portal is over HubSpot's budget (100 calls / 10 s per portal); ` +
        "the backlog then drains at HubSpot's pace and may not drain in time: raise --orgs\n",
    );
  const seed = values.seed === undefined ? Math.floor(Math.random() * 2 ** 31) : Number(values.seed);
  for (const [name, value] of [
    ['--minutes', minutes],
    ['--rate', rate],
    ['--orgs', orgs],
    ['--seed', seed + 1],
    ['--claim-lease-ms', Number(values['claim-lease-ms'])],
  ] as const) {
    if (!Number.isFinite(value) || value <= 0) {
      process.stderr.write(`soak: ${name} must be a positive number\n${USAGE}\n`);
      return 2;
    }
  }
  const skipFaults = values['skip-faults'].split(',').filter((kind) => kind !== '');
  const unknown = skipFaults.filter((kind) => !(FAULT_KINDS as readonly string[]).includes(kind));
  if (unknown.length > 0) {
    process.stderr.write(`soak: --skip-faults: unknown ${unknown.join(', ')} (${FAULT_KINDS.join(', ')})\n`);
    return 2;
  }
  const report = await runSoak({
    skipFaults: new Set(skipFaults as FaultKind[]),
    claimLeaseMs: Number(values['claim-lease-ms']),
    loadMs: Math.round(minutes * 60_000),
    rate,
    seed,
    orgs: Math.max(3, Math.round(orgs)),
    profile: values.short ? 'short' : 'long',
    kafkaRestart: values['kafka-restart'],
    drainTimeoutMs: Math.max(180_000, minutes * 30_000),
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
