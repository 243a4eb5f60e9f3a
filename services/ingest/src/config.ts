import { z } from 'zod';
import { commonEnv, loadConfig, topicCreationEnv, type ConfigSource } from '../../../lib/config.ts';

const flag = z.enum(['true', 'false']).transform((value) => value === 'true');

export const ingestEnv = {
  ...commonEnv,
  ...topicCreationEnv,
  PORT: z.coerce.number().int().min(0).max(65535).default(3000),
  METRICS_PORT: z.coerce.number().int().min(0).max(65535).default(3000),
  HUBSPOT_CLIENT_ID: z.string().min(1).optional(),
  HUBSPOT_CLIENT_SECRET: z.string().min(1).optional(),
  /** Not in the contract's table: v1/v2 signatures carry no timestamp, so they are off unless set. */
  HUBSPOT_ACCEPT_LEGACY_SIGNATURES: flag.default(false),
  PUBLIC_BASE_URL: z.url().optional(),
  /**
   * Trust X-Forwarded-Proto/Host (and -For) only behind a proxy that sets them: otherwise any
   * client could choose the URL the v3 signature covers and the OAuth redirect_uri.
   */
  TRUST_PROXY: flag.default(false),
  /** Not in the contract's table: a request body must arrive within this long (else 408). */
  HTTP_BODY_TIMEOUT_MS: z.coerce.number().int().min(10).max(300_000).default(10_000),
  /** Not in the contract's table: where the OAuth install sends the operator, and what it asks for. */
  HUBSPOT_AUTHORIZE_URL: z.url().default('https://app.hubspot.com/oauth/authorize'),
  HUBSPOT_OAUTH_SCOPES: z
    .string()
    .min(1)
    .default('conversations.read conversations.write tickets crm.objects.contacts.read'),
  /** Refresh access tokens this long before they expire (HubSpot's live 30 minutes). */
  OAUTH_REFRESH_MARGIN_MS: z.coerce
    .number()
    .int()
    .min(0)
    .default(5 * 60 * 1000),
  OAUTH_REFRESH_CHECK_MS: z.coerce
    .number()
    .int()
    .min(100)
    .default(60 * 1000),
  /** The OAuth install link opened without a signed grant (from the console) asks for it. */
  ADMIN_TOKEN: z.string().min(16, 'must be at least 16 characters').optional(),
};

export type IngestConfig = ReturnType<typeof loadIngestConfig>;
export const loadIngestConfig = (source: ConfigSource) => loadConfig(ingestEnv, source);
