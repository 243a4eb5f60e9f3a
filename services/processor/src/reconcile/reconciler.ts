/**
 * When each organisation is reconciled, by which replica, and what is recorded after. Every
 * replica ticks; an organisation is due once its last completed run (on any replica: the
 * watermarks table) is an interval old; the replica that takes its lease runs it; the
 * watermark moves only once the run's gaps are on the raw topic.
 */
import { ErrorCode, PipelineError, describeError } from '../../../../lib/errors.ts';
import type { RecordWriter } from '../../../../lib/kafka/record-writer.ts';
import type { Logger } from '../../../../lib/log.ts';
import type { ReconcileLease } from './lease.ts';
import { reconcileOrganisation, type ReconcileRunDeps, type ReconcileTarget } from './run.ts';
import { createdAtOf } from './gaps.ts';
import type { ReconcileWatermarks } from '../../../../lib/reconcile-watermarks.ts';

/** How a run that started ended (the `outcome` label of processor_reconcile_runs_total). */
export const ReconcileOutcome = {
  /** Checked through its window: the watermark moved. */
  completed: 'completed',
  /** The portal's budget had no room (or the organisation is waited for): made later. */
  deferred: 'deferred',
  /** HubSpot, Kafka or Redis failed: made later. */
  failed: 'failed',
} as const;
export type ReconcileOutcome = (typeof ReconcileOutcome)[keyof typeof ReconcileOutcome];

export type ReconcileSettings = {
  readonly intervalMs: number;
  readonly settleMs: number;
  readonly lookbackMs: number;
  readonly overlapMs?: number;
  /** Organisations one replica reconciles at once (RECONCILE_CONCURRENCY). */
  readonly concurrency?: number;
};

export type ReconcilerDeps = {
  /** The organisations to reconcile now (live, with a HubSpot token). */
  readonly targets: () => Iterable<ReconcileTarget>;
  readonly watermarks: Pick<ReconcileWatermarks, 'get' | 'record' | 'catchUp'>;
  readonly writer: Pick<RecordWriter, 'write'>;
  readonly lease: ReconcileLease;
  /** How often the lease is renewed while a run lasts (a third of its length). */
  readonly leaseRenewMs: number;
  readonly runDeps: (org: ReconcileTarget) => ReconcileRunDeps;
  readonly metrics: {
    readonly runs: { inc: (labels: { outcome: ReconcileOutcome }) => void };
    readonly gapsFound: { inc: (labels: { org_id: string }, value: number) => void };
  };
  readonly settings: ReconcileSettings;
  readonly logger: Logger;
  readonly now: () => number;
};

/** A run that failed is tried again after this long (or the interval, if shorter). */
const RETRY_AFTER_FAILURE_MS = 30_000;

/** The replica is stopping: a run under way ends at its next HubSpot call, to be made later. */
class ReconcileStopping extends Error {}

const outcomeOf = (error: unknown): ReconcileOutcome =>
  error instanceof ReconcileStopping ||
  (error instanceof PipelineError &&
    (error.code === ErrorCode.upstreamRateLimited || error.code === ErrorCode.tenantWaiting))
    ? ReconcileOutcome.deferred
    : ReconcileOutcome.failed;

/**
 * A run's HubSpot, which refuses calls once the replica stops: a run waits for its portal's
 * spare slots (up to two budget windows a call), so it may last minutes, and a stop must not wait for it.
 */
const stoppable = (
  hubspot: ReconcileRunDeps['hubspot'],
  stopped: () => boolean,
): ReconcileRunDeps['hubspot'] => {
  const refuse = (): Promise<never> =>
    Promise.reject(new ReconcileStopping('the replica is stopping: the run is made later'));
  return {
    listThreadsSince: (since, after) => (stopped() ? refuse() : hubspot.listThreadsSince(since, after)),
    listThreadMessages: (threadId, after) =>
      stopped() ? refuse() : hubspot.listThreadMessages(threadId, after),
  };
};

export const createReconciler = (deps: ReconcilerDeps) => {
  const { settings, logger, metrics } = deps;
  /** This replica's failed runs: not tried again before then (other replicas may). */
  const retryAt = new Map<string, number>();
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;
  let stopped = false;

  const intervalOf = (org: ReconcileTarget): number => org.intervalMs ?? settings.intervalMs;
  const isDue = (org: ReconcileTarget, now: number): boolean => {
    if ((retryAt.get(org.orgId) ?? 0) > now) return false;
    const last = deps.watermarks.get(org.orgId);
    return last === undefined || now - last.lastRunAt >= intervalOf(org);
  };

  /** Runs one organisation if this replica takes its lease; the outcome, or why it did not run. */
  const reconcileOne = async (org: ReconcileTarget): Promise<ReconcileOutcome | 'not_due' | 'leased'> => {
    if (!(await deps.lease.take(org.orgId))) return 'leased';
    // Renewed while the run lasts: a long first run keeps its organisation, a dead replica's
    // lease runs out soon. A renewal that fails only lets another replica repeat the work.
    const renewal = setInterval(() => {
      deps.lease.renew(org.orgId).catch(() => false);
    }, deps.leaseRenewMs);
    renewal.unref();
    try {
      // Another replica may have finished a run a moment ago: its watermark decides.
      await deps.watermarks.catchUp();
      const startedAt = deps.now();
      if (!isDue(org, startedAt)) return 'not_due';
      const previous = deps.watermarks.get(org.orgId);
      let outcome: ReconcileOutcome;
      try {
        const run = deps.runDeps(org);
        const result = await reconcileOrganisation(org, previous?.checkedThrough, startedAt, settings, {
          ...run,
          hubspot: stoppable(run.hubspot, () => stopped),
        });
        const gapTimes = result.gaps.flatMap((gap) => createdAtOf(gap) ?? []);
        await deps.watermarks.record(deps.writer, org.orgId, {
          checkedThrough: result.checkedThrough,
          lastRunAt: startedAt,
          gapsFound: result.gaps.length,
          gapsTotal: (previous?.gapsTotal ?? 0) + result.gaps.length,
          oldestGapAt: gapTimes.length > 0 ? Math.min(...gapTimes) : null,
          runsWithGapsInARow: result.gaps.length > 0 ? (previous?.runsWithGapsInARow ?? 0) + 1 : 0,
        });
        retryAt.delete(org.orgId);
        if (result.gaps.length > 0) metrics.gapsFound.inc({ org_id: org.orgId }, result.gaps.length);
        (result.gaps.length > 0 ? logger.warn.bind(logger) : logger.debug.bind(logger))(
          {
            orgId: org.orgId,
            portalId: org.portalId,
            from: new Date(result.window.from).toISOString(),
            to: new Date(result.window.to).toISOString(),
            threads: result.threads,
            hubspotCalls: result.hubspotCalls,
            gaps: result.gaps.length,
          },
          result.gaps.length > 0
            ? 'reconcile found messages never delivered: written to the raw topic'
            : 'reconcile found no gap',
        );
        outcome = ReconcileOutcome.completed;
      } catch (error) {
        outcome = outcomeOf(error);
        retryAt.set(org.orgId, startedAt + Math.min(intervalOf(org), RETRY_AFTER_FAILURE_MS));
        logger.warn(
          { orgId: org.orgId, outcome, err: describeError(error) },
          'reconcile not completed: the watermark stays, the run is made again later',
        );
      }
      metrics.runs.inc({ outcome });
      return outcome;
    } finally {
      clearInterval(renewal);
      await deps.lease.release(org.orgId).catch(() => undefined);
    }
  };

  /**
   * Every due organisation, `concurrency` at a time: each run goes at the pace of its own
   * portal's spare budget, so one busy portal's long run must not hold up the others'. A tick
   * waits for its runs, so a replica's reconciles never pile up.
   */
  const runDue = async (): Promise<void> => {
    const due = [...deps.targets()].filter((org) => isDue(org, deps.now()));
    const worker = async (): Promise<void> => {
      for (let org = due.shift(); org !== undefined && !stopped; org = due.shift()) {
        if (!isDue(org, deps.now())) continue;
        try {
          await reconcileOne(org);
        } catch (error) {
          // Redis (the lease) or Kafka (catching up) unreachable: the next tick tries again.
          logger.warn({ orgId: org.orgId, err: describeError(error) }, 'reconcile not started');
        }
      }
    };
    await Promise.all(Array.from({ length: Math.max(1, settings.concurrency ?? 1) }, worker));
  };

  const tickMs = Math.max(100, Math.min(settings.intervalMs, 10_000));
  const schedule = (): void => {
    if (stopped) return;
    timer = setTimeout(() => {
      running = runDue().finally(() => {
        running = undefined;
        schedule();
      });
    }, tickMs);
    timer.unref();
  };

  return {
    reconcileOne,
    runDue,
    start: (): void => schedule(),
    /** Ends a run under way at its next HubSpot call (it is made later) and waits for it; none starts after. */
    stop: async (): Promise<void> => {
      stopped = true;
      if (timer) clearTimeout(timer);
      await running;
    },
  };
};
export type Reconciler = ReturnType<typeof createReconciler>;
