import assert from 'node:assert/strict';
import * as fixtures from '../fakes/hubspot-fixtures.ts';
import {
  ADMIN_TOKEN,
  sumCounter,
  startTestPipeline,
  waitFor,
  type TestOrg,
  type TestPipeline,
} from '../support/pipeline.ts';

const admin = { authorization: `Bearer ${ADMIN_TOKEN}` };

/** Installs the app for `org` on a new portal of the fake HubSpot: install link, consent, callback. */
const connect = async (
  pipeline: TestPipeline,
  org: TestOrg,
  portal: { portalId: number; code: string; tokenLifetimeSeconds?: number },
): Promise<void> => {
  const response = await fetch(`${pipeline.ingestUrl}/oauth/hubspot/install?orgId=${org.orgId}`, {
    headers: admin,
    redirect: 'manual',
  });
  const state = new URL(response.headers.get('location') ?? '').searchParams.get('state') ?? '';
  pipeline.hubspot.addOAuthPortal(portal);
  assert.equal(
    (
      await fetch(
        `${pipeline.ingestUrl}/oauth/hubspot/callback?code=${portal.code}&state=${encodeURIComponent(state)}`,
      )
    ).status,
    200,
  );
};

const refreshes = async (pipeline: TestPipeline, outcome: string): Promise<number> =>
  sumCounter(
    await (await fetch(`${pipeline.ingestUrl}/metrics`)).text(),
    'ingest_oauth_token_refreshes_total',
    { outcome },
  );

const hubspotView = async (pipeline: TestPipeline, orgId: string) =>
  (
    (await (await fetch(`${pipeline.consoleUrl}/admin/orgs/${orgId}`, { headers: admin })).json()) as {
      hubspot: { portalId: number; reconnectRequired: boolean; tokenExpiresAt: number };
    }
  ).hubspot;

/** The token requests HubSpot got with this grant type, by the refresh token they carried, in order. */
const tokenRequests = (pipeline: TestPipeline, grantType: 'authorization_code' | 'refresh_token') =>
  pipeline.hubspot.requests
    .filter((request) => request.method === 'POST' && request.path === '/oauth/v1/token')
    .map((request) => new URLSearchParams(String(request.body)))
    .filter((form) => form.get('grant_type') === grantType);

describe('OAuth install, callback and token refresh', function () {
  this.timeout(60000);
  let pipeline: TestPipeline;
  let org: TestOrg;

  before(async () => {
    pipeline = await startTestPipeline({
      env: {
        HUBSPOT_CLIENT_ID: 'test-client-id',
        OAUTH_REFRESH_CHECK_MS: '300',
        OAUTH_REFRESH_MARGIN_MS: '60000',
      },
    });
    org = await pipeline.createOrg();
  });
  after(async () => pipeline?.stop());

  const install = (query: string, headers: Record<string, string> = {}) =>
    fetch(`${pipeline.ingestUrl}/oauth/hubspot/install?${query}`, { headers, redirect: 'manual' });

  it('given no admin token and no signed link, when install is opened, then 401 (nobody can attach a portal to another org)', async () => {
    const response = await install(`orgId=${org.orgId}`);
    assert.equal(response.status, 401);
    assert.equal(((await response.json()) as { error: string }).error, 'unauthorised');
  });

  it("given the admin API's install link, when opened in a browser, then it redirects to HubSpot's consent screen", async () => {
    const view = (await (
      await fetch(`${pipeline.consoleUrl}/admin/orgs/${org.orgId}`, { headers: admin })
    ).json()) as { oauthInstallUrl: string };
    const response = await fetch(view.oauthInstallUrl, { redirect: 'manual' });
    assert.equal(response.status, 302);
    const target = new URL(response.headers.get('location') ?? '');
    assert.equal(target.origin + target.pathname, 'https://app.hubspot.com/oauth/authorize');
    assert.equal(target.searchParams.get('client_id'), 'test-client-id');
    assert.equal(target.searchParams.get('redirect_uri'), `${pipeline.ingestUrl}/oauth/hubspot/callback`);
    assert.ok(target.searchParams.get('state'));
  });

  it('given the consent, when HubSpot calls back, then the tokens are stored, the portal mapped, and its webhooks processed with the new token', async () => {
    const response = await install(`orgId=${org.orgId}`, admin);
    const state = new URL(response.headers.get('location') ?? '').searchParams.get('state') ?? '';
    const portalId = 31_000_000 + Math.floor(Math.random() * 1_000_000);
    pipeline.hubspot.addOAuthPortal({ portalId, code: 'auth-code-1' });

    const callback = await fetch(
      `${pipeline.ingestUrl}/oauth/hubspot/callback?code=auth-code-1&state=${encodeURIComponent(state)}`,
    );
    assert.equal(callback.status, 200);
    assert.deepEqual(await callback.json(), { connected: true, orgId: org.orgId, portalId });
    const view = (await (
      await fetch(`${pipeline.consoleUrl}/admin/orgs/${org.orgId}`, { headers: admin })
    ).json()) as { hubspot: { portalId: number; hasAccessToken: boolean; tokenExpiresAt: number } };
    assert.equal(view.hubspot.portalId, portalId);
    assert.ok(view.hubspot.tokenExpiresAt > Date.now());

    const message = fixtures.message({ kind: 'customer-chat', text: 'via OAuth' });
    pipeline.hubspot.addMessage(message, { portalId });
    assert.equal((await pipeline.postBatch([fixtures.webhookEventFor(message, { portalId })])).status, 200);
    await waitFor('the message at OpenCX', () =>
      pipeline.opencx.effects.some((effect) => effect.kind === 'message-sent'),
    );
  });

  it('given a tampered state, when HubSpot calls back, then 400 and nothing is stored', async () => {
    const response = await fetch(`${pipeline.ingestUrl}/oauth/hubspot/callback?code=x&state=forged.state`);
    assert.equal(response.status, 400);
    assert.equal(((await response.json()) as { error: string }).error, 'invalid_state');
  });

  it('given a fresh 30-minute token, when the refresher runs, then it leaves it alone', async () => {
    const { tokenExpiresAt } = await hubspotView(pipeline, org.orgId);
    // That the refresher ran, with this organisation in its directory: another one's 30-second
    // token (inside the 60-second margin) is refreshed on each pass. Its second refresh is in a
    // later pass than its first, so one whole pass over every organisation came after it connected.
    const due = await pipeline.createOrg();
    await connect(pipeline, due, {
      portalId: 34_000_000 + Math.floor(Math.random() * 500_000),
      code: 'code-due',
      tokenLifetimeSeconds: 30,
    });
    await waitFor(
      'two refreshes of the token that is due',
      async () => (await refreshes(pipeline, 'refreshed')) >= 2,
      15000,
    );
    // Deleted, it is refreshed no more: the passes below this test see a quiet refresher.
    assert.equal(
      (await fetch(`${pipeline.consoleUrl}/admin/orgs/${due.orgId}`, { method: 'DELETE', headers: admin }))
        .status,
      204,
    );

    assert.equal(
      (await hubspotView(pipeline, org.orgId)).tokenExpiresAt,
      tokenExpiresAt,
      'the fresh token was not replaced',
    );
    assert.equal(
      new Set(tokenRequests(pipeline, 'refresh_token').map((form) => form.get('refresh_token'))).size,
      1,
      'every refresh carried one refresh token: the due one',
    );
    assert.equal(await refreshes(pipeline, 'failed'), 0);
  });

  it('regression: given one install state, when two callbacks (two portals) race with it, then exactly one completes and the other is 400 state_used', async () => {
    // Before: a state completed every callback within its 15 minutes, moving the org to another portal.
    const target = await pipeline.createOrg();
    const response = await install(`orgId=${target.orgId}`, admin);
    const state = new URL(response.headers.get('location') ?? '').searchParams.get('state') ?? '';
    const portals = [33_000_000, 33_000_001].map((base) => base + Math.floor(Math.random() * 500_000) * 2);
    portals.forEach((portalId, index) =>
      pipeline.hubspot.addOAuthPortal({ portalId, code: `race-${index}` }),
    );
    const exchangesBefore = tokenRequests(pipeline, 'authorization_code').length;

    const answers = await Promise.all(
      [0, 1].map((index) =>
        fetch(
          `${pipeline.ingestUrl}/oauth/hubspot/callback?code=race-${index}&state=${encodeURIComponent(state)}`,
        ),
      ),
    );
    assert.deepEqual(answers.map((answer) => answer.status).sort(), [200, 400]);
    const refused = answers.find((answer) => answer.status === 400);
    assert.equal(((await refused?.json()) as { error: string }).error, 'state_used');
    const winner = (await answers.find((answer) => answer.status === 200)?.json()) as { portalId: number };
    assert.equal(
      tokenRequests(pipeline, 'authorization_code').length - exchangesBefore,
      1,
      'the refused callback never exchanged its code',
    );

    const replay = await fetch(
      `${pipeline.ingestUrl}/oauth/hubspot/callback?code=race-1&state=${encodeURIComponent(state)}`,
    );
    assert.equal(replay.status, 400);
    // Ingest wrote the organisation; the console reads it from the organisations topic, moments
    // later. It must come to the winner's portal, and stay there.
    const portalInConsole = async (): Promise<number> =>
      (
        (await (
          await fetch(`${pipeline.consoleUrl}/admin/orgs/${target.orgId}`, { headers: admin })
        ).json()) as { hubspot: { portalId: number } }
      ).hubspot.portalId;
    await waitFor('the console to show the winning portal', async () =>
      (await portalInConsole()) === winner.portalId ? true : undefined,
    );
    await new Promise((resolve) => setTimeout(resolve, 500));
    assert.equal(await portalInConsole(), winner.portalId, 'the refused callback never moved it');
  });
});

describe('OAuth token refresh', function () {
  this.timeout(60000);
  let pipeline: TestPipeline;

  before(async () => {
    // A margin of 30 minutes minus 1 s: every token is "about to expire" a second after it is issued.
    pipeline = await startTestPipeline({
      env: {
        HUBSPOT_CLIENT_ID: 'test-client-id',
        OAUTH_REFRESH_CHECK_MS: '300',
        OAUTH_REFRESH_MARGIN_MS: String(1800_000 - 1000),
      },
    });
  });
  after(async () => pipeline?.stop());

  it('given a token near expiry, when the refresher runs, then HubSpot is asked with the refresh token and the new token is stored', async () => {
    const org = await pipeline.createOrg();
    await connect(pipeline, org, { portalId: 32_000_001, code: 'code-refresh' });
    await waitFor('a refresh', async () => (await refreshes(pipeline, 'refreshed')) >= 1, 15000);
    const refreshCall = pipeline.hubspot.requests.find(
      (request) =>
        request.path === '/oauth/v1/token' &&
        request.method === 'POST' &&
        pipeline.hubspot.requests.indexOf(request) > 0,
    );
    assert.ok(refreshCall);
    const view = await hubspotView(pipeline, org.orgId);
    assert.equal(view.reconnectRequired, false);
    assert.ok(view.tokenExpiresAt > Date.now() + 1700_000);
  });

  it('given HubSpot refusing the refresh token, when the refresher runs, then the org is marked reconnect-required and refreshing stops', async () => {
    const org = await pipeline.createOrg();
    await connect(pipeline, org, { portalId: 32_000_002, code: 'code-revoked' });
    pipeline.hubspot.reset(); // forgets every grant (and its request log): each refresh token is now unknown (400 BAD_REFRESH_TOKEN)
    await waitFor(
      'reconnect required',
      async () => (await hubspotView(pipeline, org.orgId)).reconnectRequired,
      15000,
    );
    const refused = await refreshes(pipeline, 'reconnect_required');

    // That the refresher went on running: an organisation connected now (every token is due a
    // second after it is issued) is refreshed twice, so at least one whole pass over every
    // organisation came after the refusal.
    const refreshedBefore = await refreshes(pipeline, 'refreshed');
    await connect(pipeline, await pipeline.createOrg(), { portalId: 32_000_003, code: 'code-control' });
    await waitFor(
      'two refreshes of the organisation connected since',
      async () => (await refreshes(pipeline, 'refreshed')) >= refreshedBefore + 2,
      15000,
    );

    assert.equal(
      await refreshes(pipeline, 'reconnect_required'),
      refused,
      'no more attempts once reconnect is required',
    );
    // The refresh tokens HubSpot was asked with since it forgot them: the last is the working
    // one (asked with again and again); each refused one was asked with once.
    const asked = tokenRequests(pipeline, 'refresh_token').map((form) => form.get('refresh_token'));
    const working = asked.at(-1);
    const refusedTokens = asked.filter((token) => token !== working);
    assert.ok(refusedTokens.length >= 1, 'the revoked refresh token was tried');
    assert.equal(
      new Set(refusedTokens).size,
      refusedTokens.length,
      'each refused refresh token was tried once',
    );
  });
});
