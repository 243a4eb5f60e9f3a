import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { createConsumerMetrics, type TenantGate } from '../../../lib/kafka/index.ts';

/** `tenantsWaiting`: the tenants the service's gate waits for now (a gauge read at scrape time). */
export const createProcessorMetrics = (
  registry: Registry,
  tenantsWaiting: TenantGate['waiting'] = () => [],
) => ({
  ...createConsumerMetrics(
    registry,
    'processor',
    {
      messages: 'Raw events',
      tenants: 'portals or organisations',
      transient: "Kafka, Redis or another replica's claim",
    },
    tenantsWaiting,
  ),
  events: new Counter({
    name: 'processor_events_total',
    help: 'Raw HubSpot events handled, by subscription type and outcome (emitted, ignored, dead_lettered)',
    labelNames: ['subscription_type', 'outcome'] as const,
    registers: [registry],
  }),
  ignored: new Counter({
    name: 'processor_ignored_total',
    help: 'Raw events that produced nothing, by reason (duplicate, automated_sender, unknown_portal, ...)',
    labelNames: ['reason', 'subscription_type'] as const,
    registers: [registry],
  }),
  emitted: new Counter({
    name: 'processor_domain_events_total',
    help: 'Domain events written, by type',
    labelNames: ['type'] as const,
    registers: [registry],
  }),
  hubspotRetries: new Counter({
    name: 'processor_hubspot_retries_total',
    help: 'HubSpot calls retried, by error code',
    labelNames: ['code'] as const,
    registers: [registry],
  }),
  hubspotThrottled: new Counter({
    name: 'processor_hubspot_throttled_total',
    help: 'Times a HubSpot call waited for the per-portal rate limit',
    labelNames: ['portal_id'] as const,
    registers: [registry],
  }),
  hubspotCalls: new Counter({
    name: 'processor_hubspot_calls_total',
    help: 'HubSpot calls sent (each took a slot of the portal rate limit), by portal and purpose (refetch_message, original_content, note; reconcile_threads, reconcile_messages of the reconciler)',
    labelNames: ['portal_id', 'purpose'] as const,
    registers: [registry],
  }),
  reconnectRequired: new Counter({
    name: 'processor_hubspot_reconnect_required_total',
    help: 'HubSpot answered 401 for an organisation: its app must be reconnected',
    labelNames: ['org_id'] as const,
    registers: [registry],
  }),
  endToEndDelay: new Histogram({
    name: 'processor_event_delay_seconds',
    help: 'From ingest accepting an event to the processor finishing it',
    buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers: [registry],
  }),
});
export type ProcessorMetrics = ReturnType<typeof createProcessorMetrics>;

/**
 * The reconciler's metrics (README, "Reconciling with HubSpot"). `watermarks`: each
 * organisation's reconcile state (the shared table), read at scrape time: every replica shows
 * every organisation, so dashboards and alerts take `max by (org_id)`.
 */
export const createReconcileMetrics = (
  registry: Registry,
  watermarks: () => Iterable<
    readonly [
      orgId: string,
      watermark: { readonly checkedThrough: number; readonly runsWithGapsInARow: number },
    ]
  >,
  now: () => number = Date.now,
) => ({
  runs: new Counter({
    name: 'processor_reconcile_runs_total',
    help: 'Reconcile runs against HubSpot, by outcome (completed; deferred: no budget, made later; failed: made later)',
    labelNames: ['outcome'] as const,
    registers: [registry],
  }),
  gapsFound: new Counter({
    name: 'processor_reconcile_gaps_found_total',
    help: 'Messages HubSpot has that the pipeline never received (their webhook was lost), written to the raw topic by the reconciler, by organisation',
    labelNames: ['org_id'] as const,
    registers: [registry],
  }),
  watermarkAge: new Gauge({
    name: 'processor_reconcile_watermark_age_seconds',
    help: "How far behind now each organisation's reconcile watermark is (every message before it was checked against HubSpot)",
    labelNames: ['org_id'] as const,
    registers: [registry],
    collect() {
      this.reset();
      const at = now();
      for (const [orgId, { checkedThrough }] of watermarks())
        this.set({ org_id: orgId }, Math.max(0, (at - checkedThrough) / 1000));
    },
  }),
  runsWithGapsInARow: new Gauge({
    name: 'processor_reconcile_runs_with_gaps_in_a_row',
    help: "Completed reconcile runs in a row, up to the last, that found messages HubSpot never delivered, by organisation (2 or more: the organisation's webhook delivery is broken)",
    labelNames: ['org_id'] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const [orgId, { runsWithGapsInARow }] of watermarks())
        this.set({ org_id: orgId }, runsWithGapsInARow);
    },
  }),
});
export type ReconcileMetrics = ReturnType<typeof createReconcileMetrics>;
