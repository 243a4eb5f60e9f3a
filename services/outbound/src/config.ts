import { z } from 'zod';
import { loadConfig, pipelineServiceEnv, type ConfigSource } from '../../../lib/config.ts';

export const outboundEnv = {
  ...pipelineServiceEnv,
  METRICS_PORT: z.coerce.number().int().min(0).max(65535).default(9466),
  OPENCX_TIMEOUT_MS: z.coerce.number().int().min(100).default(10000),
  /** Attempts of one OpenCX call (5xx, 429, timeouts) before the event is dead-lettered. */
  OPENCX_RETRY_ATTEMPTS: z.coerce.number().int().min(1).default(8),
  OPENCX_RETRY_INITIAL_MS: z.coerce.number().int().min(1).default(500),
  OPENCX_RETRY_MAX_MS: z.coerce.number().int().min(1).default(30000),
  /** Per organisation, across replicas. */
  OPENCX_RATE_LIMIT_MAX: z.coerce.number().int().min(1).default(50),
  OPENCX_RATE_LIMIT_WINDOW_MS: z.coerce.number().int().min(1).default(1000),
  /**
   * How long a ticket's events wait for a session link before they are skipped (no_linked_session):
   * HubSpot's own retry window, past which nothing about the ticket is still on its way.
   */
  TICKET_HOLD_MS: z.coerce
    .number()
    .int()
    .min(1000)
    .default(24 * 60 * 60 * 1000),
};

export type OutboundConfig = ReturnType<typeof loadOutboundConfig>;
export const loadOutboundConfig = (source: ConfigSource) => loadConfig(outboundEnv, source);
