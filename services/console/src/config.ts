import { z } from 'zod';
import { commonEnv, loadConfig, topicCreationEnv, type ConfigSource } from '../../../lib/config.ts';

const flag = z.enum(['true', 'false']).transform((value) => value === 'true');

export const consoleEnv = {
  ...commonEnv,
  ...topicCreationEnv,
  /** The console, the admin API, /healthz, /readyz and /metrics. */
  PORT: z.coerce.number().int().min(0).max(65535).default(8090),
  METRICS_PORT: z.coerce.number().int().min(0).max(65535).default(8090),
  /** The admin API's Bearer token and the console's sign-in; unset: both answer 503. */
  ADMIN_TOKEN: z.string().min(16, 'must be at least 16 characters').optional(),
  /**
   * Where HubSpot and browsers reach ingest: the admin API's legacy webhook URL and the install
   * links point there.
   */
  INGEST_PUBLIC_URL: z.url().default('http://127.0.0.1:3000'),
  /** Ingest's HubSpot OAuth app, when it has one: then the admin API and the console hand out install links. */
  HUBSPOT_CLIENT_ID: z.string().min(1).optional(),
  /** Trust X-Forwarded-Proto/Host (and -For) only behind a proxy that sets them. */
  TRUST_PROXY: flag.default(false),
  /** A request body must arrive within this long (else 408). */
  HTTP_BODY_TIMEOUT_MS: z.coerce.number().int().min(10).max(300_000).default(10_000),
};

export type ConsoleConfig = ReturnType<typeof loadConsoleConfig>;
export const loadConsoleConfig = (source: ConfigSource) => loadConfig(consoleEnv, source);
