// What `npm run soak` is asked to do, read from its arguments and environment without side
// effects (unit-tested in test/unit/soak-cluster-faults.unit.spec.ts): the run's settings, or one
// line saying what is wrong and what to do.
import { parseArgs } from 'node:util';
import { FAULT_KINDS, type FaultKind } from './fault-plan.ts';

export const USAGE =
  'usage: npm run soak -- [--minutes N] [--rate EVENTS_PER_S] [--seed S] [--orgs K (default: rate / 5, at least 5)] [--short] [--kafka-restart | --kafka-cluster] [--redis-sentinel] [--skip-faults kill,redis,flushall,opencx,hubspot,broker,drop] [--claim-lease-ms MS]';

export interface SoakArgs {
  readonly minutes: number;
  readonly rate: number;
  /** Absent: the script draws one (and prints it). */
  readonly seed: number | undefined;
  readonly orgs: number;
  readonly short: boolean;
  readonly kafkaRestart: boolean;
  readonly kafkaCluster: boolean;
  readonly redisSentinel: boolean;
  readonly skipFaults: ReadonlySet<FaultKind>;
  readonly claimLeaseMs: number;
}

export type SoakCommand =
  | { readonly kind: 'help' }
  /** Bad usage: the message, then USAGE; exit 2. */
  | { readonly kind: 'refused'; readonly message: string }
  | { readonly kind: 'run'; readonly args: SoakArgs; readonly warnings: readonly string[] };

const fmtRate = (value: number): string => value.toFixed(1);

export const parseSoakArgs = (argv: readonly string[]): SoakCommand => {
  let values;
  try {
    ({ values } = parseArgs({
      args: [...argv],
      options: {
        minutes: { type: 'string', default: '10' },
        rate: { type: 'string', default: '50' },
        seed: { type: 'string' },
        orgs: { type: 'string' },
        short: { type: 'boolean', default: false },
        'kafka-restart': { type: 'boolean', default: false },
        'kafka-cluster': { type: 'boolean', default: false },
        'redis-sentinel': { type: 'boolean', default: false },
        'skip-faults': { type: 'string', default: '' },
        'claim-lease-ms': { type: 'string', default: '5000' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (error) {
    return { kind: 'refused', message: error instanceof Error ? error.message : String(error) };
  }
  if (values.help) return { kind: 'help' };
  const minutes = Number(values.minutes);
  const rate = Number(values.rate);
  // HubSpot allows each portal 100 calls per 10 s, and about one call per event is spent
  // (re-fetching a message, posting the AI's answer): by default one organisation per 5 events/s,
  // so the load stays within every portal's budget and what is measured is the pipeline.
  const orgs = values.orgs === undefined ? Math.max(5, Math.ceil(rate / 5)) : Number(values.orgs);
  const warnings =
    Number.isFinite(orgs) && orgs > 0 && rate / orgs > 8
      ? [
          `${fmtRate(rate / orgs)} events/s per portal is over HubSpot's budget (100 calls / 10 s per portal); ` +
            "the backlog then drains at HubSpot's pace and may not drain in time: raise --orgs",
        ]
      : [];
  const seed = values.seed === undefined ? undefined : Number(values.seed);
  const claimLeaseMs = Number(values['claim-lease-ms']);
  for (const [name, value] of [
    ['--minutes', minutes],
    ['--rate', rate],
    ['--orgs', orgs],
    ['--seed', (seed ?? 0) + 1],
    ['--claim-lease-ms', claimLeaseMs],
  ] as const)
    if (!Number.isFinite(value) || value <= 0)
      return { kind: 'refused', message: `${name} must be a positive number` };
  const skipFaults = values['skip-faults'].split(',').filter((kind) => kind !== '');
  const unknown = skipFaults.filter((kind) => !(FAULT_KINDS as readonly string[]).includes(kind));
  if (unknown.length > 0)
    return {
      kind: 'refused',
      message: `--skip-faults: unknown ${unknown.join(', ')} (${FAULT_KINDS.join(', ')})`,
    };
  if (values['kafka-restart'] && values['kafka-cluster'])
    return {
      kind: 'refused',
      message:
        '--kafka-restart restarts the single broker of infra/local (down.sh kafka, up.sh); with --kafka-cluster the faults kill -9 and restart one broker of the cluster instead: leave --kafka-restart out',
    };
  return {
    kind: 'run',
    args: {
      minutes,
      rate,
      seed,
      orgs: Math.max(3, Math.round(orgs)),
      short: values.short,
      kafkaRestart: values['kafka-restart'],
      kafkaCluster: values['kafka-cluster'],
      redisSentinel: values['redis-sentinel'],
      skipFaults: new Set(skipFaults as FaultKind[]),
      claimLeaseMs,
    },
    warnings,
  };
};

/** Where the soak's services find Kafka. */
export type SoakKafka =
  | { readonly kind: 'single'; readonly brokers: string }
  /** A cluster infra/local/up.sh --brokers N started; broker i of the list is broker.sh's i. */
  | { readonly kind: 'cluster'; readonly brokers: readonly string[] };

/** Where the soak's services find Redis. */
export type SoakRedisTopology =
  /** A redis-server the soak starts for itself (SoakRedis): restarts and FLUSHALLs act on it. */
  | { readonly kind: 'own' }
  | {
      readonly kind: 'sentinel';
      readonly sentinels: readonly string[];
      readonly name: string;
      readonly sentinelPassword: string | undefined;
    };

const list = (value: string | undefined): string[] =>
  (value ?? '')
    .split(',')
    .map((each) => each.trim())
    .filter((each) => each !== '');

/**
 * The topology a run asks for, from the environment: throws one line that says what to start
 * and export when a variable the mode needs is missing.
 */
export const soakTopology = (
  mode: { readonly kafkaCluster?: boolean; readonly redisSentinel?: boolean },
  env: Readonly<Record<string, string | undefined>>,
): { readonly kafka: SoakKafka; readonly redis: SoakRedisTopology } => {
  let kafka: SoakKafka;
  if (mode.kafkaCluster) {
    const brokers = list(env.KAFKA_CLUSTER_BROKERS);
    if (brokers.length === 0)
      throw new Error(
        '--kafka-cluster needs KAFKA_CLUSTER_BROKERS: start a cluster with `infra/local/up.sh --brokers 3` and export its .local/env (set -a; . .local/env; set +a)',
      );
    // Replication factor 3 needs three brokers, and a broker kill must leave two of them in sync.
    if (brokers.length < 3)
      throw new Error(
        `--kafka-cluster needs 3 brokers or more (topics with 3 replicas); KAFKA_CLUSTER_BROKERS names ${brokers.length}: start the cluster with \`infra/local/up.sh --brokers 3\``,
      );
    kafka = { kind: 'cluster', brokers };
  } else {
    if (!env.KAFKA_BROKERS)
      throw new Error(
        'KAFKA_BROKERS is not set (export KAFKA_BROKERS and SCHEMA_REGISTRY_URL, as for the tests)',
      );
    kafka = { kind: 'single', brokers: env.KAFKA_BROKERS };
  }
  if (!mode.redisSentinel) return { kafka, redis: { kind: 'own' } };
  const sentinels = list(env.REDIS_SENTINELS);
  const name = env.REDIS_SENTINEL_NAME?.trim() ?? '';
  const missing = [sentinels.length === 0 ? 'REDIS_SENTINELS' : '', name === '' ? 'REDIS_SENTINEL_NAME' : '']
    .filter((each) => each !== '')
    .join(' and ');
  if (missing !== '')
    throw new Error(
      `--redis-sentinel needs REDIS_SENTINELS and REDIS_SENTINEL_NAME (${missing} not set): start them with \`infra/local/redis-sentinel.sh up\` and export the two lines it prints`,
    );
  return {
    kafka,
    redis: { kind: 'sentinel', sentinels, name, sentinelPassword: env.REDIS_SENTINEL_PASSWORD || undefined },
  };
};
