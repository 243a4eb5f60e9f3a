import { z } from 'zod';
import { commonEnv, loadConfig, type ConfigSource } from '../../../lib/config.ts';

export const outboundEnv = {
  ...commonEnv,
  METRICS_PORT: z.coerce.number().int().min(0).max(65535).default(9466),
  OPENCX_TIMEOUT_MS: z.coerce.number().int().min(100).default(10000),
  /** Attempts of one OpenCX call (5xx, 429, timeouts) before the event is dead-lettered. */
  OPENCX_RETRY_ATTEMPTS: z.coerce.number().int().min(1).default(8),
  OPENCX_RETRY_INITIAL_MS: z.coerce.number().int().min(1).default(500),
  OPENCX_RETRY_MAX_MS: z.coerce.number().int().min(1).default(30000),
  /** Per organisation, across replicas. */
  OPENCX_RATE_LIMIT_MAX: z.coerce.number().int().min(1).default(50),
  OPENCX_RATE_LIMIT_WINDOW_MS: z.coerce.number().int().min(1).default(1000),
  HUBSPOT_RATE_LIMIT_MAX: z.coerce.number().int().min(1).default(100),
  HUBSPOT_RATE_LIMIT_WINDOW_MS: z.coerce.number().int().min(1).default(10000),
  HUBSPOT_TIMEOUT_MS: z.coerce.number().int().min(100).default(10000),
  DEDUP_CLAIM_LEASE_MS: z.coerce.number().int().min(100).default(30000),
  DEDUP_TTL_MS: z.coerce
    .number()
    .int()
    .min(1000)
    .default(48 * 60 * 60 * 1000),
  KAFKA_PARTITIONS: z.coerce.number().int().min(1).optional(),
  KAFKA_REPLICATION_FACTOR: z.coerce.number().int().min(1).optional(),
};

export type OutboundConfig = ReturnType<typeof loadOutboundConfig>;
export const loadOutboundConfig = (source: ConfigSource) => loadConfig(outboundEnv, source);
