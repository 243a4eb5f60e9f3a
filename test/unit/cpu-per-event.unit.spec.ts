/**
 * bench/cpu-per-event.ts, the arithmetic behind `npm run bench:e2e -- --cpu`: CPU per unit, the
 * same less the CPU at rest, multiples of the hello-world, and medians of rounds. Round figures,
 * so each expectation can be checked by hand.
 */
import assert from 'node:assert/strict';
import {
  FIGURES,
  medianFigures,
  roundFigures,
  targetVerdict,
  type CpuFigure,
  type FigureName,
  type RoundCpu,
} from '../../bench/cpu-per-event.ts';

/** A round of 10 s phases: the hello-world 0.05 ms a request, 1,000 events a phase. */
const round = (overrides: Partial<RoundCpu> = {}): RoundCpu => ({
  hello: { cpuMs: 50, seconds: 10, units: 1000 },
  messages: {
    ingest: { cpuMs: 100, seconds: 10, units: 1000 },
    processor: { cpuMs: 200, seconds: 10, units: 1000 },
    outbound: { cpuMs: 300, seconds: 10, units: 1000 },
    customerMessages: 1000,
  },
  noHubSpot: {
    ingest: { cpuMs: 100, seconds: 10, units: 1000 },
    processor: { cpuMs: 60, seconds: 10, units: 1000 },
    outbound: { cpuMs: 10, seconds: 10, units: 1000 },
  },
  atRestMsPerS: { hello: 0, ingest: 1, processor: 2, outbound: 1 },
  ...overrides,
});

const figure = (figures: readonly CpuFigure[], name: FigureName): CpuFigure => {
  const found = figures.find((each) => each.name === name);
  assert.ok(found, `no figure "${name}"`);
  return found;
};

const close = (actual: number, expected: number): void =>
  assert.ok(Math.abs(actual - expected) < 1e-9, `expected ${expected}, got ${actual}`);

describe('bench/cpu-per-event', () => {
  describe('roundFigures', () => {
    it('given a round, when its figures are made, then each is CPU per unit and a multiple of the hello-world', () => {
      const figures = roundFigures(round());
      assert.deepEqual(
        figures.map((each) => each.name),
        [...FIGURES],
      );
      close(figure(figures, 'hello-world per request').msPerUnit, 0.05);
      close(figure(figures, 'hello-world per request').timesHello, 1);
      const processor = figure(figures, 'processor per re-fetched customer message');
      close(processor.msPerUnit, 0.2);
      close(processor.timesHello, 4);
      assert.equal(processor.target, 4);
      close(figure(figures, 'processor per no-HubSpot event').timesHello, 1.2);
      close(figure(figures, 'outbound per applied event').timesHello, 6);
    });

    it('given a process busy at rest, when its busy figure is made, then its CPU at rest over the window is taken off', () => {
      const figures = roundFigures(round());
      // 200 ms less 2 ms/s × 10 s, over 1,000 messages.
      const processor = figure(figures, 'processor per re-fetched customer message');
      close(processor.busyMsPerUnit, 0.18);
      close(processor.busyTimesHello, 3.6);
    });

    it('given the three services, when the pipeline figure is made, then their CPU is summed per customer message', () => {
      // 100 + 200 + 300 ms over 1,000 messages; at rest (1 + 2 + 1) ms/s × 10 s.
      const pipeline = figure(roundFigures(round()), 'pipeline per customer message');
      close(pipeline.msPerUnit, 0.6);
      close(pipeline.timesHello, 12);
      close(pipeline.busyMsPerUnit, 0.56);
      assert.equal(pipeline.target, 10);
    });

    it('given outbound applied fewer events than messages arrived, when its figure is made, then it is per applied event', () => {
      const base = round();
      const figures = roundFigures(
        round({ messages: { ...base.messages, outbound: { cpuMs: 300, seconds: 10, units: 500 } } }),
      );
      close(figure(figures, 'outbound per applied event').msPerUnit, 0.6);
    });

    it('given the hello-world measured at saturation too, when the figures are made, then each has its multiple of that as well', () => {
      const figures = roundFigures(round({ helloSaturated: { cpuMs: 200, seconds: 5, units: 10_000 } }));
      // 0.6 ms a message over 0.02 ms a saturated request; the targets' ratio stays the rate's own.
      const pipeline = figure(figures, 'pipeline per customer message');
      close(pipeline.timesSaturatedHello, 30);
      close(pipeline.timesHello, 12);
      assert.ok(
        Number.isNaN(figure(roundFigures(round()), 'pipeline per customer message').timesSaturatedHello),
      );
    });

    it('given a window with no units, when its figure is made, then it is not a number rather than infinite', () => {
      const base = round();
      const figures = roundFigures(
        round({ noHubSpot: { ...base.noHubSpot, processor: { cpuMs: 60, seconds: 10, units: 0 } } }),
      );
      assert.ok(Number.isNaN(figure(figures, 'processor per no-HubSpot event').msPerUnit));
    });
  });

  describe('medianFigures', () => {
    it('given three rounds, when their medians are taken, then each ratio is the median of the rounds’ own ratios', () => {
      // The hello-world and the processor both slower in round 2: its ratio holds.
      const slow = round({
        hello: { cpuMs: 100, seconds: 10, units: 1000 },
        noHubSpot: { ...round().noHubSpot, processor: { cpuMs: 120, seconds: 10, units: 1000 } },
      });
      const fast = round({
        noHubSpot: { ...round().noHubSpot, processor: { cpuMs: 40, seconds: 10, units: 1000 } },
      });
      const medians = medianFigures([round(), slow, fast].map(roundFigures));
      const processor = figure(medians, 'processor per no-HubSpot event');
      close(processor.msPerUnit, 0.06);
      // Rounds: 1.2, 1.2, 0.8.
      close(processor.timesHello, 1.2);
      close(figure(medians, 'hello-world per request').msPerUnit, 0.05);
    });
  });

  describe('targetVerdict', () => {
    it('given ratios at, under and over their target, when judged, then at or under is met', () => {
      assert.equal(targetVerdict({ timesHello: 4, target: 4 }), '<= 4x: met');
      assert.equal(targetVerdict({ timesHello: 4.01, target: 4 }), '<= 4x: NOT met');
      assert.equal(targetVerdict({ timesHello: 7, target: undefined }), '');
    });
  });
});
