import { z } from 'zod';
import { loadConfig, pipelineServiceEnv, type ConfigSource } from '../../../lib/config.ts';

export const processorEnv = {
  ...pipelineServiceEnv,
  METRICS_PORT: z.coerce.number().int().min(0).max(65535).default(9465),
  EMAIL_DELAY_MS: z.coerce.number().int().min(0).default(5000),
  /** Attempts of one HubSpot call (429/5xx/timeouts) before the event is dead-lettered. */
  HUBSPOT_RETRY_ATTEMPTS: z.coerce.number().int().min(1).default(6),
  HUBSPOT_RETRY_INITIAL_MS: z.coerce.number().int().min(1).default(500),
  /** How often each organisation is reconciled against HubSpot's own lists; 0 turns reconciling off. */
  RECONCILE_INTERVAL_MS: z.coerce.number().int().min(0).default(300_000),
  /** Messages younger than this are left to their webhook (normally in flight) until the next run. */
  RECONCILE_SETTLE_MS: z.coerce.number().int().min(0).default(60_000),
  /** How far back an organisation's first reconcile looks. */
  RECONCILE_LOOKBACK_MS: z.coerce.number().int().min(1).default(3_600_000),
  /**
   * How long an organisation's reconcile lease lasts unless renewed (a third of it, while the run
   * lasts): how long a replica killed mid-run keeps others from repeating its run.
   */
  RECONCILE_LEASE_MS: z.coerce.number().int().min(1000).default(60_000),
  /** Organisations one replica reconciles at once (each at its own portal's spare budget). */
  RECONCILE_CONCURRENCY: z.coerce.number().int().min(1).max(64).default(4),
};

export type ProcessorConfig = ReturnType<typeof loadProcessorConfig>;
export const loadProcessorConfig = (source: ConfigSource) => loadConfig(processorEnv, source);

/** The raw-event handler's settings from the configuration: one place for the processor and reprocess. */
export const handlerSettings = (config: ProcessorConfig) => ({
  emailDelayMs: config.EMAIL_DELAY_MS,
  claimLeaseMs: config.DEDUP_CLAIM_LEASE_MS,
  retry: {
    attempts: config.HUBSPOT_RETRY_ATTEMPTS,
    initialDelayMs: config.HUBSPOT_RETRY_INITIAL_MS,
    maxDelayMs: 30000,
  },
  transientRetryMs: 1000,
});
