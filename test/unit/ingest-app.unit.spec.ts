import assert from 'node:assert/strict';
import type { Server } from 'node:http';
import { Signature } from '@hubspot/api-client';
import { pino } from 'pino';
import { OrgId, PortalId } from '../../lib/ids.ts';
import * as fixtures from '../fakes/hubspot-fixtures.ts';
import { createMetricsRegistry } from '../../lib/metrics.ts';
import { createSecretBox, type Org, type OrgDirectory } from '../../lib/orgs/index.ts';
import { createIngestApp, type RawEventSink } from '../../services/ingest/src/app.ts';
import { loadIngestConfig } from '../../services/ingest/src/config.ts';
import { createIngestMetrics } from '../../services/ingest/src/metrics.ts';

const SECRET = 'oauth-secret';
const PRIVATE_SECRET = 'private-app-secret';
const org: Org = {
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
 * The HTTP contract of ingest with the Kafka write replaced by a sink the test controls: the
 * broker itself is exercised by the integration tests; here, what each answer looks like.
 */
describe('ingest HTTP answers', () => {
  let server: Server;
  let base: string;
  let sink: RawEventSink;
  let ready = true;
  const received: { route: string; orgs: (string | undefined)[] }[] = [];

  before(async () => {
    const orgs = {
      byPortal: (portalId: number) => (portalId === 77 ? org : undefined),
      byWebhookToken: (token: string) => (token === 'tok-123' ? org : undefined),
      byId: () => undefined,
      stored: () => undefined,
    } as unknown as OrgDirectory;
    const registry = createMetricsRegistry('ingest-test');
    const app = createIngestApp({
      config: loadIngestConfig({ HUBSPOT_CLIENT_SECRET: SECRET }),
      orgs,
      secrets: createSecretBox(Buffer.alloc(32, 1)),
      sink: (route, events) => sink(route, events),
      writeOrg: async () => undefined,
      isReady: () => ready,
      metrics: createIngestMetrics(registry),
      registry,
      logger: pino({ level: 'silent' }),
      now: Date.now,
      oauth: undefined,
    });
    server = app.listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    const address = server.address();
    base = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
  });
  beforeEach(() => {
    received.length = 0;
    ready = true;
    sink = async (route, events) =>
      void received.push({ route, orgs: events.map(({ org: routed }) => routed?.orgId) });
  });
  after(() => new Promise((resolve) => server.close(resolve)));

  const post = (path: string, events: object[], secret = SECRET) => {
    const body = JSON.stringify(events);
    const timestamp = Date.now();
    const signature = Signature.getSignature('POST', 'v3', {
      signature: '',
      clientSecret: secret,
      requestBody: body,
      url: `${base}${path}`,
      timestamp,
    });
    return fetch(`${base}${path}`, {
      method: 'POST',
      body,
      headers: {
        'content-type': 'application/json',
        'x-hubspot-signature-v3': signature,
        'x-hubspot-request-timestamp': String(timestamp),
      },
    });
  };
  const events = [
    fixtures.webhookEvent({ portalId: 77 }),
    { portalId: 5, eventType: 'contact.creation', objectId: 2, occurredAt: Date.now() },
  ];

  it('given Kafka unable to take the batch, when posted, then 503 with a JSON error so HubSpot redelivers', async () => {
    sink = async () => Promise.reject(new Error('broker down'));
    const response = await post('/webhooks/hubspot', events);
    assert.equal(response.status, 503);
    assert.deepEqual(await response.json(), {
      error: 'kafka_unavailable',
      detail: 'events could not be written durably; HubSpot will retry',
    });
  });

  it('given a valid batch, when posted, then 200 after the sink, each event routed by portal (unknown portals too)', async () => {
    const response = await post('/webhooks/hubspot', events);
    assert.equal(response.status, 200);
    assert.deepEqual(received, [{ route: 'OAUTH_APP', orgs: ['acme', undefined] }]);
  });

  it("given the private-app URL of an org, when signed with that org's private secret, then 200 and routed to the org", async () => {
    assert.equal((await post('/webhooks/hubspot/private/tok-123', events, PRIVATE_SECRET)).status, 200);
    assert.deepEqual(received, [{ route: 'PRIVATE_APP', orgs: ['acme', 'acme'] }]);
  });

  it('given the private-app URL signed with the OAuth secret, when posted, then 401', async () => {
    assert.equal((await post('/webhooks/hubspot/private/tok-123', events, SECRET)).status, 401);
    assert.deepEqual(received, []);
  });

  it('given an unknown private webhook token, when posted, then 404 with a JSON error', async () => {
    const response = await post('/webhooks/hubspot/private/nope', events, PRIVATE_SECRET);
    assert.equal(response.status, 404);
    assert.equal(((await response.json()) as { error: string }).error, 'unknown_webhook_token');
  });

  it('given the producer disconnected, when /readyz is asked, then 503; /healthz stays 200', async () => {
    ready = false;
    assert.equal((await fetch(`${base}/readyz`)).status, 503);
    assert.equal((await fetch(`${base}/healthz`)).status, 200);
  });

  it('given no ADMIN_TOKEN configured, when the admin API is called, then 503 saying how to enable it', async () => {
    const response = await fetch(`${base}/admin/orgs/acme`);
    assert.equal(response.status, 503);
    assert.match(((await response.json()) as { detail: string }).detail, /ADMIN_TOKEN/);
  });

  it('given an unknown route, then 404 with a JSON error', async () => {
    const response = await fetch(`${base}/nope`);
    assert.equal(response.status, 404);
    assert.equal(((await response.json()) as { error: string }).error, 'not_found');
  });

  it('given the metrics endpoint, then the rejections are counted by reason', async () => {
    await post('/webhooks/hubspot', events, 'wrong');
    const metrics = await (await fetch(`${base}/metrics`)).text();
    assert.match(metrics, /ingest_webhook_rejections_total\{reason="signature_mismatch"[^}]*\} [1-9]/);
  });
});
