/**
 * The reconciler: per organisation, at an interval, HubSpot's own lists (threads by latest
 * activity, their recent messages) are compared with what the processor handled, and every
 * message it never received (its webhook lost) is written to the raw topic as the webhook
 * would have been. The processor then handles it like any webhook (dedup by organisation and
 * message id, re-fetch, rules), so a message that arrives both ways is applied once.
 */
import { createBudgetedPortalClients } from '../../../../lib/hubspot/index.ts';
import type { TenantGate } from '../../../../lib/kafka/index.ts';
import { createRecordWriter } from '../../../../lib/kafka/record-writer.ts';
import type { Logger } from '../../../../lib/log.ts';
import type { OrgDirectory } from '../../../../lib/orgs/index.ts';
import type { PipelineConnections } from '../../../../lib/pipeline-connections.ts';
import { ReconcileWatermarks } from '../../../../lib/reconcile-watermarks.ts';
import type { Redis } from '../../../../lib/redis.ts';
import type { Registry } from 'prom-client';
import type { ProcessorConfig } from '../config.ts';
import { createReconcileMetrics } from '../metrics.ts';
import { createRedisReconcileLease } from './lease.ts';
import { createReconciler, type Reconciler } from './reconciler.ts';
import { reconcileRunDeps } from './run-deps.ts';
import type { ReconcileTarget } from './run.ts';

export { createReconciler, ReconcileOutcome, type Reconciler, type ReconcilerDeps } from './reconciler.ts';
export {
  checkWindow,
  reconcileOrganisation,
  type ReconcileRunDeps,
  type ReconcileTarget,
  type WindowCheck,
} from './run.ts';
export { reconcileRunDeps, type ReconcileRunParts } from './run-deps.ts';
export {
  createRedisReconcileLease,
  reconcileLeaseHolder,
  reconcileLeaseKey,
  type ReconcileLease,
} from './lease.ts';
export { RECONCILED_HEADER, newMessageEventOf, reconciledRawEvent } from './raw-event.ts';
export { candidatesOf, gapsOf } from './gaps.ts';
export { reconcileWindow, inWindow, RECONCILE_OVERLAP_MS, type ReconcileWindow } from './window.ts';

/**
 * How long each of a run's HubSpot calls may wait for a spare bookkeeping slot of its portal: two
 * budget windows. A run needs one call per thread active in its window, all before its watermark
 * moves; taking a free slot or none (BOOKKEEPING_MAX_WAIT_MS), a run needing more calls than one
 * window's spare share (at most 80 of HubSpot's 100 per 10 s, less what customers took) would
 * fail at that call every time, from the same watermark, and a busy portal would never be
 * reconciled again. Two windows, not one: a run that took the share in a burst waits for its first slot to free, a
 * window later, and the limiter adds up to half a window of jitter to a wait and gives up at once
 * when that sum is over the limit (so a one-window limit would fail the run at that call, unwaited).
 * Waiting holds only this replica's reconciles; a call that finds no slot that long (customers
 * need them all) still defers the run.
 */
export const reconcileCallMaxWaitMs = (config: { readonly HUBSPOT_RATE_LIMIT_WINDOW_MS: number }): number =>
  2 * config.HUBSPOT_RATE_LIMIT_WINDOW_MS;

/**
 * The organisations a reconcile can run for: live, readable, with a token HubSpot still takes,
 * and not set to never (settings.reconcileIntervalMs 0).
 */
export const reconcileTargets = (orgs: Pick<OrgDirectory, 'all' | 'byId'>) =>
  function* (): Iterable<ReconcileTarget> {
    for (const org of orgs.all()) {
      if (orgs.byId(org.orgId) === undefined) continue;
      if (!org.hubspot.accessToken || org.hubspot.reconnectRequired) continue;
      if (org.settings.reconcileIntervalMs === 0) continue;
      yield {
        orgId: org.orgId,
        portalId: org.hubspot.portalId,
        aiActorId: org.hubspot.aiActorId,
        intervalMs: org.settings.reconcileIntervalMs,
      };
    }
  };

/**
 * Starts this replica's reconciler: its watermarks table (read whole), its writer (raw topic and
 * watermarks), its lease and its metrics. `stop` waits for a run under way.
 */
export const startReconciling = async (parts: {
  readonly config: ProcessorConfig;
  readonly connections: Pick<PipelineConnections, 'kafka' | 'topics' | 'codec' | 'orgs'>;
  readonly redis: Redis;
  readonly gate: TenantGate;
  readonly registry: Registry;
  /** Counts each HubSpot call by portal and purpose (processor_hubspot_calls_total). */
  readonly onHubSpotCall: (portalId: number, purpose: string) => void;
  readonly instance: string;
  readonly logger: Logger;
}): Promise<{ readonly reconciler: Reconciler; readonly stop: () => Promise<void> }> => {
  const { config, connections, redis, logger } = parts;
  const { kafka, topics, codec } = connections;
  const watermarks = new ReconcileWatermarks({
    kafka,
    topic: topics.reconcileWatermarks.name,
    groupPrefix: config.KAFKA_TOPIC_PREFIX,
    logger,
  });
  await watermarks.start();
  const writer = await createRecordWriter({
    kafka,
    topics: [topics.rawEvents.name, topics.reconcileWatermarks.name],
    logger,
  });
  const targets = reconcileTargets(connections.orgs);
  // Only organisations reconciled now: a deleted one, or one set to never, would otherwise show
  // its last state for good (an alert firing on an organisation that is gone).
  const metrics = createReconcileMetrics(parts.registry, () => {
    const live = new Set([...targets()].map((target) => target.orgId));
    return watermarks.entries().filter(([orgId]) => live.has(orgId));
  });
  const hubspotFor = createBudgetedPortalClients(redis, config, {
    onCall: parts.onHubSpotCall,
    bookkeepingMaxWaitMs: reconcileCallMaxWaitMs(config),
    // An organisation the processor waits for (its budget spent, HubSpot failing) is not
    // reconciled meanwhile: its calls fail at once and the run is made later.
    waitingUntil: (org) => parts.gate.waitingUntil(org.orgId),
  });
  const runDepsOf = reconcileRunDeps({
    redis,
    redisKeyPrefix: config.REDIS_KEY_PREFIX,
    codec,
    rawTopic: topics.rawEvents.name,
    writer,
    hubspotFor,
    now: Date.now,
  });
  const reconciler = createReconciler({
    targets,
    watermarks,
    writer,
    lease: createRedisReconcileLease(redis, {
      prefix: config.REDIS_KEY_PREFIX,
      owner: parts.instance,
      leaseMs: config.RECONCILE_LEASE_MS,
    }),
    leaseRenewMs: config.RECONCILE_LEASE_MS / 3,
    runDeps: (target) => {
      // The organisation as it is now (a token refreshed since the targets were listed).
      const org = connections.orgs.byId(target.orgId);
      if (!org) throw new Error(`organisation ${target.orgId} is gone`);
      return runDepsOf(org);
    },
    metrics,
    settings: {
      intervalMs: config.RECONCILE_INTERVAL_MS,
      settleMs: config.RECONCILE_SETTLE_MS,
      lookbackMs: config.RECONCILE_LOOKBACK_MS,
      concurrency: config.RECONCILE_CONCURRENCY,
    },
    logger,
    now: Date.now,
  });
  reconciler.start();
  return {
    reconciler,
    stop: async () => {
      await reconciler.stop();
      await writer.close();
      await watermarks.stop();
    },
  };
};
