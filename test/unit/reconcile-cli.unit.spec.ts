/**
 * `npm run reconcile` without infrastructure: its options, one run under the lease (or not, for
 * a dry run), HubSpot calls tried again, what it prints. The integration spec
 * (test/integration/reconcile-cli.int.spec.ts) runs it on Kafka, Redis and the fake HubSpot.
 */
import assert from 'node:assert/strict';
import { ErrorCode, PipelineError } from '../../lib/errors.ts';
import type { HubSpotMessage } from '../../lib/hubspot/index.ts';
import { UsageError, parseCommand } from '../../tools/reconcile/arguments.ts';
import { PROGRESS_LINE_MS, progressReporter } from '../../tools/reconcile/progress.ts';
import { formatReport, gapLine, leasedLine, textPreview } from '../../tools/reconcile/report.ts';
import {
  ReconcileStopped,
  reconcileNow,
  type ReconcileNowDeps,
  type ReconcileProgress,
} from '../../tools/reconcile/run.ts';
import * as fixtures from '../fakes/hubspot-fixtures.ts';

const T0 = Date.parse('2026-12-07T12:00:00Z');
const iso = (ms: number) => new Date(ms).toISOString();
const ORG = { orgId: 'org-r', portalId: 4242, aiActorId: 'A-111' };
const WINDOW = { from: T0 - 3_600_000, to: T0 };
const listed = (spec: fixtures.MessageSpec) => fixtures.message(spec) as unknown as HubSpotMessage;

/** One thread of three customer messages in the window, the first one handled by the processor. */
const setup = (options: { leaseFree?: boolean; listFailures?: Error[]; emitFails?: boolean } = {}) => {
  const messages = [3, 2, 1].map((minutes) =>
    listed({
      kind: 'customer-chat',
      threadId: '7',
      text: `message ${minutes} minutes old`,
      createdAt: iso(T0 - minutes * 60_000),
    }),
  );
  const failures = [...(options.listFailures ?? [])];
  const log: string[] = [];
  const emitted: string[] = [];
  const slept: number[] = [];
  const deps: ReconcileNowDeps = {
    run: {
      hubspot: {
        listThreadsSince: async () => {
          log.push('list threads');
          const failure = failures.shift();
          if (failure) throw failure;
          return { results: [{ id: '7', latestMessageTimestamp: iso(T0) }], after: undefined };
        },
        listThreadMessages: async () => {
          log.push('list messages');
          return { results: [...messages].reverse(), after: undefined };
        },
      },
      handled: async (_orgId, ids) => new Set(ids.filter((id) => id === messages[0]?.id)),
      emit: async (gaps) => {
        if (options.emitFails) throw new Error('KafkaJSNumberOfRetriesExceeded: broker gone');
        log.push('emit');
        emitted.push(...gaps.map((gap) => gap.id));
      },
    },
    lease: {
      take: async () => (log.push('take'), options.leaseFree ?? true),
      renew: async () => true,
      release: async () => void log.push('release'),
    },
    leaseRenewMs: 20_000,
    leaseHolder: async () => ({ owner: 'replica-a', remainingMs: 41_500 }),
    retry: { attempts: 3, initialDelayMs: 10, maxDelayMs: 100 },
    sleep: async (ms) => void slept.push(ms),
  };
  return { deps, messages, log, emitted, slept };
};

describe('npm run reconcile: its options', () => {
  it('given only --org, when parsed, then the window is the last hour up to now, and it writes', () => {
    assert.deepEqual(parseCommand(['--org', 'acme'], T0), {
      orgId: 'acme',
      window: { from: T0 - 3_600_000, to: T0 },
      dryRun: false,
    });
  });

  it('given --since, --until and --dry-run, when parsed, then the window is theirs and nothing is written', () => {
    assert.deepEqual(
      parseCommand(['--org', 'acme', '--since', '2026-12-07T08:00:00Z', '--until', '3h', '--dry-run'], T0),
      {
        orgId: 'acme',
        window: { from: Date.parse('2026-12-07T08:00:00Z'), to: T0 - 3 * 3_600_000 },
        dryRun: true,
      },
    );
  });

  it('given bad options, when parsed, then a UsageError names the first thing wrong', () => {
    for (const [args, error] of [
      [['--since', '2h'], /^--org is required/],
      [['--org', 'acme', '--since', 'soon'], /^--since "soon" is not an ISO date/],
      [['--org', 'acme', '--since', '1h', '--until', '2h'], /^--until .* is not after --since/],
      [['--org', 'acme', '--window', '2h'], /^Unknown option '--window'/],
      [['--org', 'acme', 'extra'], /^Unexpected argument 'extra'/],
    ] as const)
      assert.throws(
        () => parseCommand(args, T0),
        (thrown: unknown) => thrown instanceof UsageError && error.test(thrown.message),
        args.join(' '),
      );
    assert.equal(parseCommand(['--help'], T0), 'help');
  });
});

describe('npm run reconcile: one run', () => {
  it('given a dry run, when it runs, then it lists the gaps, takes no lease and writes nothing', async () => {
    const { deps, messages, log, emitted } = setup();

    const result = await reconcileNow(deps, { target: ORG, window: WINDOW, dryRun: true });

    assert.equal(result.kind, 'checked');
    assert.ok(result.kind === 'checked');
    assert.deepEqual(
      result.gapMessages.map((gap) => gap.id),
      [messages[1]?.id, messages[2]?.id],
      'the two unhandled ones, oldest first',
    );
    assert.deepEqual(
      { threads: result.threads, messages: result.messages, gaps: result.gaps, written: result.written },
      { threads: 1, messages: 3, gaps: 2, written: 0 },
    );
    assert.deepEqual(log, ['list threads', 'list messages']);
    assert.deepEqual(emitted, []);
  });

  it('given a real run, when it runs, then it holds the lease from before the first call to after the last write', async () => {
    const { deps, messages, log, emitted } = setup();

    const result = await reconcileNow(deps, { target: ORG, window: WINDOW, dryRun: false });

    assert.ok(result.kind === 'checked');
    assert.equal(result.written, 2);
    assert.deepEqual(log, ['take', 'list threads', 'list messages', 'emit', 'release']);
    assert.deepEqual(
      emitted,
      [messages[1]?.id, messages[2]?.id],
      'oldest first, as their webhooks would have come',
    );
  });

  it("given another run's lease, when a real run starts, then it reads nothing and says who holds it", async () => {
    const { deps, log } = setup({ leaseFree: false });

    const result = await reconcileNow(deps, { target: ORG, window: WINDOW, dryRun: false });

    assert.deepEqual(result, { kind: 'leased', holder: { owner: 'replica-a', remainingMs: 41_500 } });
    assert.deepEqual(log, ['take'], 'no HubSpot call, nothing written, nothing released');
    assert.equal(
      leasedLine('org-r', { owner: 'replica-a', remainingMs: 41_500 }),
      'organisation org-r is being reconciled now by replica-a (its lease runs out in 42 s unless that run renews it): wait for that run to end, then run this again',
    );
  });

  it("given a portal budget without a slot twice, when a call is made, then it is tried again after the limiter's wait, as the processor tries one", async () => {
    const busy = new PipelineError(ErrorCode.upstreamRateLimited, 'no bookkeeping slot', {
      retriable: true,
      retryAfterMs: 700,
    });
    const { deps, log, slept } = setup({ listFailures: [busy, busy] });

    const result = await reconcileNow(deps, { target: ORG, window: WINDOW, dryRun: true });

    assert.equal(result.kind, 'checked');
    assert.deepEqual(log.slice(0, 3), ['list threads', 'list threads', 'list threads']);
    assert.deepEqual(slept, [700, 700]);
  });

  it('given a write that fails, when the run stops, then it says how far it got and lets go of the lease', async () => {
    const { deps, log } = setup({ emitFails: true });

    await assert.rejects(
      reconcileNow(deps, { target: ORG, window: WINDOW, dryRun: false }),
      (error: unknown) =>
        error instanceof ReconcileStopped &&
        /broker gone/.test(error.message) &&
        error.progress.gaps === 0 &&
        error.progress.messages === 3,
    );
    assert.equal(log.at(-1), 'release');
  });
});

describe('npm run reconcile: what it prints', () => {
  it('given gaps, when reported, then one line per gap with its message, thread, time and the start of its text', () => {
    const message = listed({
      kind: 'customer-chat',
      threadId: '7',
      text: `Hello,\n\n"quoted" ${'x'.repeat(80)}`,
      createdAt: iso(T0),
    });
    assert.equal(textPreview(message.text), `"Hello, \\"quoted\\" ${'x'.repeat(43)}…"`);
    assert.equal(
      gapLine(message, true),
      `would write  message ${message.id}  thread 7  created ${iso(T0)}  ${textPreview(message.text)}`,
    );
    const report = formatReport(
      {
        kind: 'checked',
        window: WINDOW,
        dryRun: true,
        threads: 1,
        messages: 3,
        gaps: 1,
        written: 0,
        hubspotCalls: 2,
        gapMessages: [message],
      },
      ORG,
      'raw',
    );
    assert.equal(
      report,
      [
        `organisation org-r (portal 4242): messages created after ${iso(WINDOW.from)} up to ${iso(T0)}`,
        gapLine(message, true),
        '1 thread, 3 messages read, 1 gap (HubSpot calls: 2)',
        'dry run: would write 1 record(s) to raw; nothing written',
        '',
      ].join('\n'),
    );
  });

  it('given no terminal, when a long run goes on, then a progress line comes every few seconds and one at the end', () => {
    let now = 0;
    const lines: string[] = [];
    const reporter = progressReporter({ err: (text) => void lines.push(text), isTTY: false }, () => now);
    const at = (threads: number): ReconcileProgress => ({
      threads,
      messages: threads * 10,
      gaps: 0,
      written: 0,
      hubspotCalls: threads + 1,
    });

    for (let step = 1; step <= 12; step++) {
      now += 1000;
      reporter.update(at(step));
    }
    reporter.stop();

    assert.deepEqual(lines, [
      'reconcile: 5 threads, 50 messages read, 0 gaps (HubSpot calls: 6)\n',
      'reconcile: 10 threads, 100 messages read, 0 gaps (HubSpot calls: 11)\n',
      'reconcile: 12 threads, 120 messages read, 0 gaps (HubSpot calls: 13)\n',
    ]);
    assert.equal(PROGRESS_LINE_MS, 5000);
  });
});
