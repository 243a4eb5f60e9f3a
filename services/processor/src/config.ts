import { z } from 'zod';
import { commonEnv, loadConfig, type ConfigSource } from '../../../lib/config.ts';

export const processorEnv = {
  ...commonEnv,
  METRICS_PORT: z.coerce.number().int().min(0).max(65535).default(9465),
  EMAIL_DELAY_MS: z.coerce.number().int().min(0).default(5000),
  /** Not in the contract's table: how long a dedup claim holds before another replica may take over. */
  DEDUP_CLAIM_LEASE_MS: z.coerce.number().int().min(100).default(30000),
  /** Longer than HubSpot's 24 h retry window. */
  DEDUP_TTL_MS: z.coerce
    .number()
    .int()
    .min(1000)
    .default(48 * 60 * 60 * 1000),
  /** Per portal, across replicas: OAuth apps get 110 requests / 10 s; keep a margin. */
  HUBSPOT_RATE_LIMIT_MAX: z.coerce.number().int().min(1).default(100),
  HUBSPOT_RATE_LIMIT_WINDOW_MS: z.coerce.number().int().min(1).default(10000),
  HUBSPOT_TIMEOUT_MS: z.coerce.number().int().min(100).default(10000),
  /** Attempts of one HubSpot call (429/5xx/timeouts) before the event is dead-lettered. */
  HUBSPOT_RETRY_ATTEMPTS: z.coerce.number().int().min(1).default(6),
  HUBSPOT_RETRY_INITIAL_MS: z.coerce.number().int().min(1).default(500),
  KAFKA_PARTITIONS: z.coerce.number().int().min(1).optional(),
  KAFKA_REPLICATION_FACTOR: z.coerce.number().int().min(1).optional(),
};

export type ProcessorConfig = ReturnType<typeof loadProcessorConfig>;
export const loadProcessorConfig = (source: ConfigSource) => loadConfig(processorEnv, source);
