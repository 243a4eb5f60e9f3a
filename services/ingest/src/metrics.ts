import { Counter, Histogram, type Registry } from 'prom-client';

export const createIngestMetrics = (registry: Registry) => ({
  requests: new Counter({
    name: 'ingest_webhook_requests_total',
    help: 'Webhook requests answered, by endpoint route and HTTP status',
    labelNames: ['route', 'status'] as const,
    registers: [registry],
  }),
  rejections: new Counter({
    name: 'ingest_webhook_rejections_total',
    help: 'Webhook requests refused, by reason (signature_mismatch, stale_timestamp, malformed_body, ...)',
    labelNames: ['reason'] as const,
    registers: [registry],
  }),
  events: new Counter({
    name: 'ingest_events_accepted_total',
    help: 'HubSpot events durably written to the raw topic, by subscription type',
    labelNames: ['subscription_type'] as const,
    registers: [registry],
  }),
  unroutedEvents: new Counter({
    name: 'ingest_events_unrouted_total',
    help: 'Events accepted from a portal that maps to no organisation (the processor drops them)',
    registers: [registry],
  }),
  tokenRefreshes: new Counter({
    name: 'ingest_oauth_token_refreshes_total',
    help: 'OAuth access token refreshes, by outcome (refreshed, reconnect_required, failed)',
    labelNames: ['outcome'] as const,
    registers: [registry],
  }),
  producerRebuilds: new Counter({
    name: 'ingest_kafka_producer_rebuilds_total',
    help: 'Kafka producers replaced after a failed send that may have left idempotent sequence numbers out of step',
    registers: [registry],
  }),
  durableLatency: new Histogram({
    name: 'ingest_durable_write_seconds',
    help: 'Time from a batch being parsed to Kafka acknowledging it (acks=all)',
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [registry],
  }),
});
export type IngestMetrics = ReturnType<typeof createIngestMetrics>;
