/**
 * The arithmetic of `npm run bench:e2e -- --cpu` (issue 24): CPU per event of each service as a
 * multiple of a koa hello-world's CPU per request measured in the same round, and the medians of
 * the rounds. Pure: the bench measures windows, this turns them into figures (unit-tested in
 * test/unit/cpu-per-event.unit.spec.ts).
 */
import { median } from './support.ts';

/** What one process spent over a window of a phase, and how many units of work it did in it. */
export type CpuWindow = {
  /** The process's CPU time (user + system) over the window, ms. */
  readonly cpuMs: number;
  readonly seconds: number;
  /** Events (or requests) the figure is per. */
  readonly units: number;
};

export const SERVICES = ['ingest', 'processor', 'outbound'] as const;
export type Service = (typeof SERVICES)[number];

/** One round's measurements: a phase of each kind, and every process's CPU at rest. */
export type RoundCpu = {
  /** The hello-world, one request per event of the pipeline's rate. */
  readonly hello: CpuWindow;
  /**
   * The same hello-world at saturation (as many requests as it answers): its cheapest request,
   * the figure issue 10 compared with. Not the targets' denominator, which is `hello`.
   */
  readonly helloSaturated?: CpuWindow;
  /** Customer chat messages: units are ingest's accepted events, the processor's handled raw events, outbound's applied domain events. */
  readonly messages: Readonly<Record<Service, CpuWindow>> & { readonly customerMessages: number };
  /** Events the processor handles without a HubSpot call: units are the phase's events (outbound's too). */
  readonly noHubSpot: Readonly<Record<Service, CpuWindow>>;
  /** CPU ms per second of each process left idle. */
  readonly atRestMsPerS: Readonly<Record<Service | 'hello', number>>;
};

/** The targets, in multiples of the hello-world's CPU per request (at most). */
export const TARGET_TIMES_HELLO = {
  pipelinePerCustomerMessage: 10,
  processorNoHubSpot: 1.5,
  processorRefetched: 4,
  outboundPerApplied: 4,
} as const;

export const FIGURES = [
  'hello-world per request',
  'ingest per event (customer messages)',
  'processor per re-fetched customer message',
  'outbound per applied event',
  'pipeline per customer message',
  'ingest per event (no-HubSpot mix)',
  'processor per no-HubSpot event',
  'outbound per no-HubSpot event (nothing to apply)',
] as const;
export type FigureName = (typeof FIGURES)[number];

const TARGETS: Partial<Record<FigureName, number>> = {
  'pipeline per customer message': TARGET_TIMES_HELLO.pipelinePerCustomerMessage,
  'processor per re-fetched customer message': TARGET_TIMES_HELLO.processorRefetched,
  'outbound per applied event': TARGET_TIMES_HELLO.outboundPerApplied,
  'processor per no-HubSpot event': TARGET_TIMES_HELLO.processorNoHubSpot,
};

export type CpuFigure = {
  readonly name: FigureName;
  /** CPU ms per unit, all of the process's CPU over the window. */
  readonly msPerUnit: number;
  /** The same less what the process spends at rest over as long a window (kafkajs's fetch loop, timers). */
  readonly busyMsPerUnit: number;
  /** msPerUnit ÷ the hello-world's CPU ms per request, both of this round. */
  readonly timesHello: number;
  /** busyMsPerUnit ÷ the hello-world's busy CPU ms per request. */
  readonly busyTimesHello: number;
  /** msPerUnit ÷ the hello-world's CPU ms per request at saturation (NaN when not measured). */
  readonly timesSaturatedHello: number;
  /** The target for timesHello, if it sets one. */
  readonly target: number | undefined;
};

/** Several windows of one phase as one: their CPU summed over the given units. */
const summed = (windows: readonly CpuWindow[], restMsPerS: readonly number[], units: number) => {
  const cpuMs = windows.reduce((total, window) => total + window.cpuMs, 0);
  const restMs = windows.reduce(
    (total, window, index) => total + (restMsPerS[index] ?? 0) * window.seconds,
    0,
  );
  return {
    msPerUnit: units > 0 ? cpuMs / units : Number.NaN,
    busyMsPerUnit: units > 0 ? (cpuMs - restMs) / units : Number.NaN,
  };
};

/** Every figure of one round, each ratio against this round's hello-world. */
export const roundFigures = (round: RoundCpu): CpuFigure[] => {
  const rest = round.atRestMsPerS;
  const one = (window: CpuWindow, restMsPerS: number) => summed([window], [restMsPerS], window.units);
  const hello = one(round.hello, rest.hello);
  const saturated = round.helloSaturated ? one(round.helloSaturated, rest.hello).msPerUnit : Number.NaN;
  const costs: Record<FigureName, { msPerUnit: number; busyMsPerUnit: number }> = {
    'hello-world per request': hello,
    'ingest per event (customer messages)': one(round.messages.ingest, rest.ingest),
    'processor per re-fetched customer message': one(round.messages.processor, rest.processor),
    'outbound per applied event': one(round.messages.outbound, rest.outbound),
    'pipeline per customer message': summed(
      SERVICES.map((service) => round.messages[service]),
      SERVICES.map((service) => rest[service]),
      round.messages.customerMessages,
    ),
    'ingest per event (no-HubSpot mix)': one(round.noHubSpot.ingest, rest.ingest),
    'processor per no-HubSpot event': one(round.noHubSpot.processor, rest.processor),
    'outbound per no-HubSpot event (nothing to apply)': one(round.noHubSpot.outbound, rest.outbound),
  };
  return FIGURES.map((name) => ({
    name,
    ...costs[name],
    timesHello: costs[name].msPerUnit / hello.msPerUnit,
    busyTimesHello: costs[name].busyMsPerUnit / hello.busyMsPerUnit,
    timesSaturatedHello: costs[name].msPerUnit / saturated,
    target: TARGETS[name],
  }));
};

/** The median of each column over the rounds; the ratios are medians of each round's own ratio. */
export const medianFigures = (rounds: readonly (readonly CpuFigure[])[]): CpuFigure[] =>
  FIGURES.map((name) => {
    const of = (
      column: 'msPerUnit' | 'busyMsPerUnit' | 'timesHello' | 'busyTimesHello' | 'timesSaturatedHello',
    ): number =>
      median(rounds.map((figures) => figures.find((figure) => figure.name === name)?.[column] ?? Number.NaN));
    return {
      name,
      msPerUnit: of('msPerUnit'),
      busyMsPerUnit: of('busyMsPerUnit'),
      timesHello: of('timesHello'),
      busyTimesHello: of('busyTimesHello'),
      timesSaturatedHello: of('timesSaturatedHello'),
      target: TARGETS[name],
    };
  });

/** "met", "NOT met" or "" (no target), for a ratio against its target. */
export const targetVerdict = (figure: Pick<CpuFigure, 'timesHello' | 'target'>): string =>
  figure.target === undefined
    ? ''
    : figure.timesHello <= figure.target
      ? `<= ${figure.target}x: met`
      : `<= ${figure.target}x: NOT met`;
