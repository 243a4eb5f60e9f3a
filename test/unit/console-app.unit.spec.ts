import assert from 'node:assert/strict';
import type { Server } from 'node:http';
import { pino } from 'pino';
import { listen } from '../../lib/http-server.ts';
import { createMetricsRegistry } from '../../lib/metrics.ts';
import type { OrgInput } from '../../lib/orgs/index.ts';
import { createOAuthTokens, isInstallGrantFor } from '../../lib/signed-tokens.ts';
import { createConsoleApp, type ConsoleAppDeps } from '../../services/console/src/app.ts';
import { CONSOLE_DEFAULT_LIMITS } from '../../services/console/src/routes/index.ts';
import { ADMIN, acme } from '../support/ingest-app.ts';

type ErrorBody = { error: string; detail: string };
const INGEST_URL = 'https://hooks.example.test';
const KEY = Buffer.alloc(32, 5);

/**
 * The console's HTTP surface with organisations in memory: the admin API's answers and the
 * console's gates, without Kafka (no page here reads a topic).
 */
const startConsoleApp = async (options: { adminToken?: string; oauth?: boolean } = {}) => {
  const puts: { orgId: string; input: OrgInput }[] = [];
  const deps: ConsoleAppDeps = {
    adminToken: options.adminToken,
    secretsKey: KEY,
    ingestPublicUrl: INGEST_URL,
    installGrants: options.oauth ? createOAuthTokens(KEY, Date.now) : undefined,
    kafka: {} as ConsoleAppDeps['kafka'],
    codec: {} as ConsoleAppDeps['codec'],
    topics: {} as ConsoleAppDeps['topics'],
    orgs: {
      lookupById: (orgId: string) => (orgId === 'acme' ? { kind: 'org', org: acme } : { kind: 'unknown' }),
      storedRecords: () => [],
      unreadable: () => [],
      byPortal: () => undefined,
    } as unknown as ConsoleAppDeps['orgs'],
    orgRepository: {
      put: async (orgId: string, input: OrgInput) => {
        puts.push({ orgId, input });
        return { kind: 'created', org: { ...acme, orgId }, oauthTokensDropped: false };
      },
      delete: async (orgId: string) => (orgId === 'acme' ? 'deleted' : 'unknown'),
      updateSettings: async () => 'unknown',
    } as unknown as ConsoleAppDeps['orgRepository'],
    watermarks: { get: () => undefined, catchUp: async () => true },
    redis: {} as ConsoleAppDeps['redis'],
    redisKeyPrefix: 'test:',
    logger: pino({ level: 'silent' }),
    now: Date.now,
    limits: CONSOLE_DEFAULT_LIMITS,
    trustProxy: false,
    bodyTimeoutMs: 10000,
    registry: createMetricsRegistry('console-test'),
    isReady: () => true,
  };
  const server: Server = await listen(createConsoleApp(deps), {
    port: 0,
    host: '127.0.0.1',
    bodyTimeoutMs: 10000,
  });
  const address = server.address();
  const base = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
  return {
    base,
    puts,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
};
type TestConsole = Awaited<ReturnType<typeof startConsoleApp>>;

const auth = { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' };
const orgBody = {
  hubspot: { portalId: 77, accessToken: 't', aiActorId: 'A-1' },
  opencx: { apiKey: 'k' },
};

describe('console service: the admin API and the console, over HTTP (no infrastructure)', () => {
  describe('without ADMIN_TOKEN', () => {
    let app: TestConsole;
    before(async () => (app = await startConsoleApp()));
    after(async () => app.close());

    it('given no ADMIN_TOKEN configured, when the admin API is called, then 503 saying how to enable it', async () => {
      const response = await fetch(`${app.base}/admin/orgs/acme`);
      assert.equal(response.status, 503);
      assert.match(((await response.json()) as ErrorBody).detail, /ADMIN_TOKEN/);
    });

    it('given no ADMIN_TOKEN configured, when a console page is asked for, then 503 saying how to enable it', async () => {
      for (const path of ['/console/sign-in', '/console/orgs']) {
        const response = await fetch(`${app.base}${path}`, { redirect: 'manual' });
        assert.equal(response.status, 503, path);
        assert.match(await response.text(), /set ADMIN_TOKEN on the console/, path);
      }
    });

    it('given the health and metrics endpoints, then they answer as the other services do', async () => {
      assert.equal((await fetch(`${app.base}/healthz`)).status, 200);
      assert.equal((await fetch(`${app.base}/readyz`)).status, 200);
      assert.match(await (await fetch(`${app.base}/metrics`)).text(), /service="console-test"/);
    });

    it('given the webhook path, when posted to the console, then 404: HubSpot deliveries are ingest', async () => {
      const response = await fetch(`${app.base}/webhooks/hubspot`, { method: 'POST', body: '[]' });
      assert.equal(response.status, 404);
    });
  });

  describe('with ADMIN_TOKEN and the OAuth app', () => {
    let app: TestConsole;
    before(async () => (app = await startConsoleApp({ adminToken: ADMIN, oauth: true })));
    after(async () => app.close());

    it('given a wrong or missing token, when the admin API is called, then 401', async () => {
      assert.equal((await fetch(`${app.base}/admin/orgs/acme`)).status, 401);
      const wrong = await fetch(`${app.base}/admin/orgs/acme`, { headers: { authorization: 'Bearer nope' } });
      assert.equal(wrong.status, 401);
    });

    it('given a body that is not JSON, or not an organisation, when PUT, then 400 naming which, and nothing stored', async () => {
      const malformed = await fetch(`${app.base}/admin/orgs/new`, {
        method: 'PUT',
        headers: auth,
        body: '{',
      });
      assert.equal(malformed.status, 400);
      assert.equal(((await malformed.json()) as ErrorBody).error, 'malformed_body');
      const invalid = await fetch(`${app.base}/admin/orgs/new`, {
        method: 'PUT',
        headers: auth,
        body: JSON.stringify({ ...orgBody, opencx: {} }),
      });
      assert.equal(invalid.status, 400);
      assert.deepEqual(await invalid.json(), {
        error: 'invalid_org',
        detail: 'opencx.apiKey: Invalid input: expected string, received undefined',
      });
      assert.equal(app.puts.length, 0);
    });

    it("given an organisation, when PUT, then 201 with ingest's webhook URL and an install link ingest accepts", async () => {
      const response = await fetch(`${app.base}/admin/orgs/new`, {
        method: 'PUT',
        headers: auth,
        body: JSON.stringify(orgBody),
      });
      assert.equal(response.status, 201);
      const view = (await response.json()) as { legacyWebhookUrl: string; oauthInstallUrl: string };
      assert.equal(view.legacyWebhookUrl, `${INGEST_URL}/webhooks/hubspot/private/tok-123`);
      const link = new URL(view.oauthInstallUrl);
      assert.equal(`${link.origin}${link.pathname}`, `${INGEST_URL}/oauth/hubspot/install`);
      assert.equal(link.searchParams.get('orgId'), 'new');
      assert.ok(
        isInstallGrantFor(createOAuthTokens(KEY, Date.now), link.searchParams.get('grant') ?? '', 'new'),
      );
      assert.ok(
        !isInstallGrantFor(createOAuthTokens(KEY, Date.now), link.searchParams.get('grant') ?? '', 'acme'),
      );
      assert.equal(app.puts.length, 1);
    });

    it('given an unknown organisation, when GET or DELETE, then 404 unknown_org', async () => {
      for (const method of ['GET', 'DELETE']) {
        const response = await fetch(`${app.base}/admin/orgs/nobody`, { method, headers: auth });
        assert.equal(response.status, 404, method);
        assert.equal(((await response.json()) as ErrorBody).error, 'unknown_org', method);
      }
      assert.equal(
        (await fetch(`${app.base}/admin/orgs/acme`, { method: 'DELETE', headers: auth })).status,
        204,
      );
    });

    it('given no session, when a console page is asked for, then it is sent to the sign-in', async () => {
      const response = await fetch(`${app.base}/console/orgs`, { redirect: 'manual' });
      assert.equal(response.status, 303);
      assert.equal(response.headers.get('location'), '/console/sign-in?next=%2Fconsole%2Forgs');
    });
  });
});
