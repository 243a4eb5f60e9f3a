// The soak's faults on a Kafka cluster and Redis behind Sentinel, the parts without I/O: when a
// broker is killed and which, and what a fault did to the pipeline as seen from outside (how long
// OpenCX got nothing new, what ingest answered meanwhile). Unit-tested
// (test/unit/soak-cluster-faults.unit.spec.ts); run-soak.ts injects the faults.
import { seededRandom } from './load.ts';

export const FAULT_KINDS = ['kill', 'redis', 'flushall', 'opencx', 'hubspot', 'broker', 'drop'] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

/** One broker of the cluster killed -9 `offsetMs` into the load, started again `downMs` later. */
export interface BrokerKill {
  readonly offsetMs: number;
  /** 1-based: the broker `infra/local/broker.sh kill|start` names (node 1 is the first of KAFKA_CLUSTER_BROKERS). */
  readonly broker: number;
  readonly downMs: number;
}

/**
 * The broker kills of a run (--kafka-cluster), seeded by a sequence of their own so that they
 * move none of the other kinds' times for a seed: one in a short run, two in a long one, each
 * at another broker than the one before (the first one drawn). Their slots sit between the Redis
 * restarts' and FLUSHALLs' (0.15–0.45 and 0.55–0.8 of the load), so that in a long run a fault
 * is seen on its own, the service kills and the outage windows apart. Down 10–20 s: longer than
 * the controller's 9 s session timeout, so the broker is fenced and its partitions get new
 * leaders, and its restart has a backlog to catch up on.
 */
export const brokerKillPlan = (
  seed: number,
  loadMs: number,
  profile: 'short' | 'long',
  brokerCount: number,
): BrokerKill[] => {
  const random = seededRandom(seed ^ 0xb40c3);
  const between = (from: number, to: number): number => from + random() * (to - from);
  const slots: ReadonlyArray<readonly [number, number]> =
    profile === 'short'
      ? [[0.45, 0.55]]
      : [
          [0.46, 0.5],
          [0.82, 0.9],
        ];
  const first = Math.floor(random() * brokerCount);
  return slots.map(([from, to], index) => ({
    offsetMs: Math.round(between(from, to) * loadMs),
    broker: ((first + index) % brokerCount) + 1,
    downMs: Math.round(between(10_000, 20_000)),
  }));
};

/** One webhook request of the load as ingest answered it (status 0: no answer, e.g. a timeout). */
export interface IngestAnswer {
  readonly sentAt: number;
  readonly answeredAt: number;
  readonly status: number;
}

/** What a fault did, seen from outside the pipeline, over a window from its start. */
export interface FaultEffect {
  /** The longest time with no new effect at OpenCX (any kind, any organisation) in the window. */
  readonly pauseMs: number;
  /** When that pause began and ended, in ms after the window's start. */
  readonly pauseFromMs: number;
  readonly pauseToMs: number;
  /** False when that pause was not over by the window's end (nothing at OpenCX since). */
  readonly resumed: boolean;
  /** Ingest's answers in the window, by status ('0': no answer). */
  readonly statuses: Readonly<Record<string, number>>;
  /** The slowest answer in the window. */
  readonly slowestAnswerMs: number;
}

/**
 * The effect of a fault over `[from, to]`: the longest gap between consecutive OpenCX effects
 * from `from` on (the gap that runs past `to` counts whole, up to the first effect after it; with
 * none after it, up to `to`, not resumed), and ingest's answers given in the window.
 * `effectTimes` need not be sorted.
 */
export const faultEffect = (
  window: { readonly from: number; readonly to: number },
  effectTimes: readonly number[],
  answers: readonly IngestAnswer[],
): FaultEffect => {
  const later = effectTimes.filter((at) => at > window.from).sort((a, b) => a - b);
  const inWindow = later.filter((at) => at <= window.to);
  const firstAfter = later.find((at) => at > window.to);
  // The gaps from the start to each effect in the window, and from the last one on: to the first
  // effect after the window, or (none came) to the window's end, a pause not over.
  const times = [window.from, ...inWindow, firstAfter ?? window.to];
  let pause = { ms: 0, from: window.from, to: window.from, open: false };
  for (let index = 1; index < times.length; index++) {
    const [before, after] = [times[index - 1] as number, times[index] as number];
    const open = index === times.length - 1 && firstAfter === undefined;
    if (after - before > pause.ms) pause = { ms: after - before, from: before, to: after, open };
  }
  const resumed = !pause.open;
  const during = answers.filter(
    (answer) => answer.answeredAt >= window.from && answer.answeredAt <= window.to,
  );
  const statuses: Record<string, number> = {};
  for (const { status } of during) statuses[String(status)] = (statuses[String(status)] ?? 0) + 1;
  return {
    pauseMs: pause.ms,
    pauseFromMs: pause.from - window.from,
    pauseToMs: pause.to - window.from,
    resumed,
    statuses,
    slowestAnswerMs: Math.max(0, ...during.map((answer) => answer.answeredAt - answer.sentAt)),
  };
};

const seconds = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;

/** One line for the report: `effect` of a fault observed for `windowMs` from its start. */
export const describeFaultEffect = (effect: FaultEffect, windowMs: number): string => {
  // Integer keys iterate in numeric order: 'no answer' (0) goes last.
  const statuses = Object.entries(effect.statuses)
    .sort(([a], [b]) => (a === '0' ? 1 : b === '0' ? -1 : 0))
    .map(([status, count]) => `${status === '0' ? 'no answer' : status} ×${count}`)
    .join(', ');
  const pause = effect.resumed
    ? `OpenCX got nothing new for ${seconds(effect.pauseMs)} (from +${seconds(effect.pauseFromMs)} to +${seconds(effect.pauseToMs)})`
    : `OpenCX got nothing new from +${seconds(effect.pauseFromMs)} to the end (NOT resumed)`;
  return `in the ${seconds(windowMs)} from its start: ${pause}; ingest's answers by status ${statuses || 'none'}, the slowest in ${seconds(effect.slowestAnswerMs)}`;
};
