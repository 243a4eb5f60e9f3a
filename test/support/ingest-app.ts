import type { Server } from 'node:http';
import { Signature } from '@hubspot/api-client';
import { pino } from 'pino';
import { OrgId, PortalId } from '../../lib/ids.ts';
import { listen } from '../../lib/http-server.ts';
import { createMetricsRegistry } from '../../lib/metrics.ts';
import type { Org, OrgDirectory, OrgLookup } from '../../lib/orgs/index.ts';
import { createOAuthTokens } from '../../lib/signed-tokens.ts';
import { createIngestApp, type IngestDeps, type RawEventSink } from '../../services/ingest/src/app.ts';
import { loadIngestConfig } from '../../services/ingest/src/config.ts';
import { createIngestMetrics } from '../../services/ingest/src/metrics.ts';
import { signV3 } from '../../services/ingest/src/signature.ts';

export const OAUTH_SECRET = 'oauth-secret';
export const PRIVATE_SECRET = 'private-app-secret';
export const ADMIN = 'admin-token-0123456789abcdef';

export const acme: Org = {
  orgId: OrgId('acme'),
  deleted: false,
  updatedAt: 0,
  hubspot: {
    portalId: PortalId(77),
    aiActorId: 'A-1',
    defaultOwnerActorId: undefined,
    accessToken: 't',
    refreshToken: undefined,
    tokenExpiresAt: undefined,
    privateAppClientSecret: PRIVATE_SECRET,
    reconnectRequired: false,
  },
  opencx: { apiKey: 'k' },
  settings: { assistMode: false, ticketingEnabled: true },
  webhookToken: 'tok-123',
};

/**
 * One organisation, acme (portal 77, private webhook token tok-123), and one whose record no
 * configured key opens (portal 78, token tok-unreadable).
 */
export const oneOrgDirectory = (): OrgDirectory =>
  ({
    byPortal: (portalId: number) => (portalId === 77 ? acme : undefined),
    byWebhookToken: (token: string) => (token === 'tok-123' ? acme : undefined),
    lookupByWebhookToken: (token: string): OrgLookup =>
      token === 'tok-123'
        ? { kind: 'org', org: acme }
        : token === 'tok-unreadable'
          ? {
              kind: 'unreadable',
              orgId: OrgId('locked'),
              portalId: PortalId(78),
              detail: 'privateAppClientSecret does not open',
            }
          : { kind: 'unknown' },
    byId: (orgId: string) => (orgId === 'acme' ? acme : undefined),
    stored: () => undefined,
  }) as unknown as OrgDirectory;

/** OAuth configured, with a HubSpot that refuses every code (no test here gets that far). */
export const refusingOAuth = (): NonNullable<IngestDeps['oauth']> => {
  const refuse = () => Promise.reject(new Error('not in this test'));
  return {
    client: { exchangeCode: refuse, refresh: refuse, portalOf: refuse },
    tokens: createOAuthTokens(Buffer.alloc(32, 2), Date.now),
    states: { spend: async () => true },
  };
};

export type Delivery = { readonly route: string; readonly events: Parameters<RawEventSink>[1] };

/**
 * The ingest koa app served by the same `listen` as the service (server timeouts, client-error
 * answers), with the Kafka write replaced by a sink the test controls.
 */
export const startIngestApp = async (
  options: { env?: Record<string, string>; oauth?: IngestDeps['oauth'] } = {},
) => {
  const deliveries: Delivery[] = [];
  const control = { sinkFails: false, ready: true };
  const registry = createMetricsRegistry('ingest-test');
  const app = createIngestApp({
    config: loadIngestConfig({ HUBSPOT_CLIENT_SECRET: OAUTH_SECRET, ...options.env }),
    orgs: oneOrgDirectory(),
    sink: async (route, events) => {
      if (control.sinkFails) throw new Error('broker down');
      deliveries.push({ route, events });
    },
    // The OAuth callback never gets as far as storing tokens here.
    orgRepository: {} as IngestDeps['orgRepository'],
    isReady: () => control.ready,
    metrics: createIngestMetrics(registry),
    registry,
    logger: pino({ level: 'silent' }),
    now: Date.now,
    oauth: options.oauth,
  });
  const server: Server = await listen(app, {
    port: 0,
    host: '127.0.0.1',
    bodyTimeoutMs: Number(options.env?.HTTP_BODY_TIMEOUT_MS ?? 10000),
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return {
    port,
    base: `http://127.0.0.1:${port}`,
    deliveries,
    control,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
};
export type TestIngestApp = Awaited<ReturnType<typeof startIngestApp>>;

/** v3 headers made by HubSpot's own SDK (an independent check of the verifier). */
export const sdkSignedHeaders = (
  url: string,
  body: string,
  secret = OAUTH_SECRET,
  timestamp = Date.now(),
): Record<string, string> => ({
  'x-hubspot-signature-v3': Signature.getSignature('POST', 'v3', {
    signature: '',
    clientSecret: secret,
    requestBody: body,
    url,
    timestamp,
  }),
  'x-hubspot-request-timestamp': String(timestamp),
});

/** v3 headers over raw bytes (the SDK takes a string; HubSpot never sends bytes that are not UTF-8). */
export const byteSignedHeaders = (
  method: string,
  url: string,
  body: Buffer,
  secret = OAUTH_SECRET,
  timestamp = Date.now(),
): Record<string, string> => ({
  'x-hubspot-signature-v3': signV3(secret, method, url, body, String(timestamp)),
  'x-hubspot-request-timestamp': String(timestamp),
});
