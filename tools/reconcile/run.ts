/**
 * One organisation reconciled now, over the operator's window: the reconciler's own check
 * (checkWindow) with the dependencies the reconciler builds (reconcileRunDeps), under the
 * organisation's lease, each HubSpot call tried again as the processor tries one, and progress
 * reported as it goes. The watermark is left alone: the operator's window need not join the
 * one the scheduled runs checked, and a watermark moved past a stretch never checked would make
 * the reconciler skip it for good.
 */
import type { HubSpotApi, HubSpotMessage } from '../../lib/hubspot/index.ts';
import { sleep as realSleep, withRetry, type RetryPolicy } from '../../lib/retry.ts';
import {
  checkWindow,
  type ReconcileLease,
  type ReconcileRunDeps,
  type ReconcileTarget,
  type ReconcileWindow,
} from '../../services/processor/src/reconcile/index.ts';

/** What the run has done so far (each count grows as it goes). */
export type ReconcileProgress = {
  /** Threads HubSpot listed as active in the window. */
  readonly threads: number;
  /** Messages of those threads read back to the window's start. */
  readonly messages: number;
  /** Messages the rules would act on that the processor never handled. */
  readonly gaps: number;
  /** Gaps written to the raw topic (acknowledged by Kafka); 0 in a dry run. */
  readonly written: number;
  readonly hubspotCalls: number;
};

export type LeaseHolder = { readonly owner: string; readonly remainingMs: number };

export type ReconcileNowDeps = {
  readonly run: ReconcileRunDeps;
  readonly lease: ReconcileLease;
  /** How often the lease is renewed while the run lasts (a third of its length). */
  readonly leaseRenewMs: number;
  readonly leaseHolder: (orgId: string) => Promise<LeaseHolder | undefined>;
  /** How often one HubSpot call is tried (the processor's HUBSPOT_RETRY_*). */
  readonly retry: RetryPolicy;
  readonly sleep?: (ms: number) => Promise<void>;
};

export type ReconcileNowOptions = {
  readonly target: ReconcileTarget;
  readonly window: ReconcileWindow;
  readonly dryRun: boolean;
  readonly onProgress?: (progress: ReconcileProgress) => void;
};

export type ReconcileNowResult =
  | (ReconcileProgress & {
      readonly kind: 'checked';
      readonly window: ReconcileWindow;
      readonly dryRun: boolean;
      /** Oldest first. */
      readonly gapMessages: readonly HubSpotMessage[];
    })
  /** Another run (a replica's, or another operator's) holds the organisation: nothing was read. */
  | { readonly kind: 'leased'; readonly holder: LeaseHolder | undefined };

/** Thrown when the run fails part way: how far it got (what it wrote stays written). */
export class ReconcileStopped extends Error {
  override readonly name = 'ReconcileStopped';
  readonly progress: ReconcileProgress;
  constructor(cause: unknown, progress: ReconcileProgress) {
    super(cause instanceof Error ? cause.message : String(cause), { cause });
    this.progress = progress;
  }
}

const createdAt = (message: HubSpotMessage): number => Date.parse(message.createdAt ?? '') || 0;

export const reconcileNow = async (
  deps: ReconcileNowDeps,
  options: ReconcileNowOptions,
): Promise<ReconcileNowResult> => {
  const { orgId } = options.target;
  // A dry run writes nothing, so it neither waits for nor holds up a replica's run.
  if (!options.dryRun && !(await deps.lease.take(orgId)))
    return { kind: 'leased', holder: await deps.leaseHolder(orgId) };
  // Renewed while the run lasts; a renewal that fails only lets a replica repeat the work.
  const renewal = options.dryRun
    ? undefined
    : setInterval(() => {
        deps.lease.renew(orgId).catch(() => false);
      }, deps.leaseRenewMs);
  renewal?.unref();

  let progress: ReconcileProgress = { threads: 0, messages: 0, gaps: 0, written: 0, hubspotCalls: 0 };
  const advance = (by: Partial<ReconcileProgress>): void => {
    progress = {
      threads: progress.threads + (by.threads ?? 0),
      messages: progress.messages + (by.messages ?? 0),
      gaps: progress.gaps + (by.gaps ?? 0),
      written: progress.written + (by.written ?? 0),
      hubspotCalls: progress.hubspotCalls + (by.hubspotCalls ?? 0),
    };
    options.onProgress?.(progress);
  };
  const patiently = <R>(call: () => Promise<R>): Promise<R> =>
    withRetry(deps.retry, call, { sleep: deps.sleep ?? realSleep });
  const hubspot: Pick<HubSpotApi, 'listThreadsSince' | 'listThreadMessages'> = {
    listThreadsSince: async (since, after) => {
      const page = await patiently(() => deps.run.hubspot.listThreadsSince(since, after));
      advance({ threads: page.results.length, hubspotCalls: 1 });
      return page;
    },
    listThreadMessages: async (threadId, after) => {
      const page = await patiently(() => deps.run.hubspot.listThreadMessages(threadId, after));
      advance({ messages: page.results.length, hubspotCalls: 1 });
      return page;
    },
  };
  const found: HubSpotMessage[] = [];
  try {
    const check = await checkWindow(options.target, options.window, {
      hubspot,
      handled: deps.run.handled,
      emit: async (gaps) => {
        if (!options.dryRun) await deps.run.emit(gaps);
        found.push(...gaps);
        advance({ gaps: gaps.length, written: options.dryRun ? 0 : gaps.length });
      },
    });
    return {
      kind: 'checked',
      window: options.window,
      dryRun: options.dryRun,
      ...progress,
      // Distinct threads: a thread that moved on while the list was paged is listed twice.
      threads: check.threads,
      gapMessages: found.sort((a, b) => createdAt(a) - createdAt(b)),
    };
  } catch (error) {
    throw new ReconcileStopped(error, progress);
  } finally {
    if (renewal) clearInterval(renewal);
    if (!options.dryRun) await deps.lease.release(orgId).catch(() => undefined);
  }
};
