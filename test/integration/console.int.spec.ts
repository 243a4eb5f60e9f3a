import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Kafka } from 'kafkajs';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { createKafka, readTopicWindows, topicsFor } from '../../lib/kafka/index.ts';
import { createRecordWriter, type RecordWriter } from '../../lib/kafka/record-writer.ts';
import { createLogger } from '../../lib/log.ts';
import { ReconcileWatermarks } from '../../lib/reconcile-watermarks.ts';
import * as fixtures from '../fakes/hubspot-fixtures.ts';
import type { HubSpotMessage } from '../fakes/hubspot.ts';
import { html } from '../../services/console/src/html.ts';
import { eventSearchPage } from '../../services/console/src/pages/index.ts';
import { createSessionSigner } from '../../services/console/src/session.ts';
import { reconcileCells } from '../support/console-rows.ts';
import { freePort } from '../support/processes.ts';
import {
  ADMIN_TOKEN,
  startTestPipeline,
  waitFor,
  type TestOrg,
  type TestPipeline,
} from '../support/pipeline.ts';

const ENSURE_CHROMIUM = fileURLToPath(new URL('../../scripts/ci/ensure-chromium.sh', import.meta.url));
const CONSOLE = fileURLToPath(new URL('../../services/console/src/main.ts', import.meta.url));
const WRONG_TOKEN = 'wrong-token-that-must-never-show-4f1e9c';

/**
 * The browser, installed by the project's own script. Outside CI a machine that cannot install
 * it skips these tests (saying why); in CI (CI set) that is a failure.
 */
const ensureChromium = (): { path: string } | { why: string } => {
  const run = spawnSync('bash', [ENSURE_CHROMIUM], { encoding: 'utf8', timeout: 10 * 60 * 1000 });
  if (run.status === 0) return { path: run.stdout.trim().split('\n').pop() ?? '' };
  return { why: (run.stderr || run.error?.message || 'ensure-chromium.sh failed').trim() };
};

/** The console service, as an OS process, so its log (stdout and stderr) can be read whole. */
const spawnConsole = async (
  env: Record<string, string>,
): Promise<{ child: ChildProcess; url: string; log: () => string }> => {
  const port = await freePort();
  let log = '';
  const child = spawn(process.execPath, [CONSOLE], {
    env: { ...process.env, ...env, PORT: String(port), LOG_LEVEL: 'debug' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout?.on('data', (chunk: Buffer) => (log += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (log += chunk.toString()));
  const url = `http://127.0.0.1:${port}`;
  await waitFor(
    'the console to serve /healthz',
    async () => {
      if (child.exitCode !== null)
        throw new Error(`the console exited with ${child.exitCode}: ${log.slice(-2000)}`);
      return fetch(`${url}/healthz`).then(
        (response) => response.ok,
        () => false,
      );
    },
    30000,
  );
  return { child, url, log: () => log };
};

describe('console: an operator signs in, finds an event and replays a dead letter (real Chromium, Kafka, registry, Redis)', function () {
  this.timeout(60000);
  let browserPath: string | undefined;
  let pipeline: TestPipeline;
  let org: TestOrg;
  let consoleService: Awaited<ReturnType<typeof spawnConsole>>;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  let kafka: Kafka;
  /** Every URL the browser asked for: the token must be in none. */
  const urls: string[] = [];

  const deadLettersOnTopic = async (): Promise<number> => {
    const admin = kafka.admin();
    await admin.connect();
    try {
      const topic = topicsFor(pipeline.env.KAFKA_TOPIC_PREFIX ?? '').deadLetters.name;
      return (await admin.fetchTopicOffsets(topic)).reduce((sum, { high }) => sum + Number(high), 0);
    } finally {
      await admin.disconnect();
    }
  };
  const deliveredTexts = (text: string): number =>
    [...pipeline.opencx.sessions.values()]
      .flatMap((session) => session.messages)
      .filter((sent) => sent.text === text).length;
  const postCustomerMessage = async (text: string): Promise<HubSpotMessage> => {
    const message = fixtures.message({ kind: 'customer-chat', text });
    pipeline.hubspot.addMessage(message, { portalId: org.portalId });
    const response = await pipeline.postBatch([
      fixtures.webhookEventFor(message, { portalId: org.portalId }),
    ]);
    assert.equal(response.status, 200);
    return message;
  };
  const signIn = async (token: string): Promise<void> => {
    await page.goto(`${consoleService.url}/console/sign-in`);
    await page.fill('input[name=token]', token);
    await page.click('button[type=submit]');
  };

  before(async function () {
    // Installing Chromium (a clean CI machine) takes minutes; the rest of the hook seconds.
    this.timeout(12 * 60 * 1000);
    const found = ensureChromium();
    if ('why' in found) {
      if (process.env.CI) throw new Error(`the console's browser test needs Chromium: ${found.why}`);
      console.warn(`skipping the console's browser test: ${found.why}`);
      this.skip();
    }
    browserPath = found.path;
    // The OAuth app configured on ingest (its install link) and the console (its install grants).
    pipeline = await startTestPipeline({ env: { HUBSPOT_CLIENT_ID: 'console-test-client' } });
    org = await pipeline.createOrg();
    kafka = createKafka({
      clientId: 'console-test',
      brokers: (pipeline.env.KAFKA_BROKERS ?? '').split(','),
      logger: createLogger('console-test', 'silent'),
    });
    // HUBSPOT_CLIENT_ID: the OAuth app is configured, so the "Connect HubSpot" link is offered.
    [consoleService, browser] = await Promise.all([
      spawnConsole({
        ...pipeline.env,
        HUBSPOT_CLIENT_ID: 'console-test-client',
        INGEST_PUBLIC_URL: pipeline.ingestUrl,
      }),
      chromium.launch({ executablePath: browserPath, args: ['--no-sandbox'] }),
    ]);
    context = await browser.newContext();
    page = await context.newPage();
    page.on('request', (request) => urls.push(request.url()));
  });
  after(async () => {
    await browser?.close();
    if (consoleService && consoleService.child.exitCode === null) {
      const exited = new Promise((resolve) => consoleService.child.once('exit', resolve));
      consoleService.child.kill('SIGTERM');
      await exited;
    }
    await pipeline?.stop();
  });

  it('given no session, when a console page or form is asked for, then it answers with the sign-in page', async () => {
    await page.goto(`${consoleService.url}/console/dead-letters?since=1h`);

    assert.equal(new URL(page.url()).pathname, '/console/sign-in');
    assert.equal(new URL(page.url()).searchParams.get('next'), '/console/dead-letters?since=1h');
    assert.ok(await page.isVisible('input[name=token][type=password]'));
    const post = await fetch(`${consoleService.url}/console/orgs/${org.orgId}/settings`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'assistMode=on',
      redirect: 'manual',
    });
    assert.equal(post.status, 303);
    assert.match(post.headers.get('location') ?? '', /^\/console\/sign-in/);
  });

  it('given a wrong token, when signing in, then it is refused and the token is in no page, URL, cookie or log line', async () => {
    await signIn(WRONG_TOKEN);

    assert.match((await page.innerText('[role=alert]')) ?? '', /not the admin token/);
    assert.equal(new URL(page.url()).pathname, '/console/sign-in');
    assert.ok(!(await page.content()).includes(WRONG_TOKEN), 'not echoed in the page');
    assert.deepEqual(await context.cookies(), [], 'no session');
    assert.ok(!urls.some((url) => url.includes(WRONG_TOKEN)), 'in no URL');
    await waitFor('the refusal in the log', () => consoleService.log().includes('sign-in refused'));
    assert.ok(!consoleService.log().includes(WRONG_TOKEN), 'in no log line');
  });

  it('given the admin token, when signing in, then the organisations page lists the org and the session cookie holds no token', async () => {
    await signIn(ADMIN_TOKEN);

    assert.equal(new URL(page.url()).pathname, '/console/orgs');
    const row = page.locator(`tr[data-org="${org.orgId}"]`);
    assert.match((await row.innerText()) ?? '', new RegExp(`${org.portalId}[\\s\\S]*private app`));
    const [cookie, ...others] = await context.cookies();
    assert.equal(others.length, 0);
    assert.equal(cookie?.name, 'console_session');
    assert.equal(cookie?.httpOnly, true);
    assert.equal(cookie?.sameSite, 'Strict');
    assert.equal(cookie?.secure, false, 'Secure only over https');
    assert.ok(cookie && cookie.expires > Date.now() / 1000 && cookie.expires < Date.now() / 1000 + 9 * 3600);
    assert.ok(
      !cookie?.value.includes(ADMIN_TOKEN) &&
        !Buffer.from(cookie?.value.split('.')[1] ?? '', 'base64url')
          .toString()
          .includes(ADMIN_TOKEN),
    );
    const connect = await row.locator('a.connect').getAttribute('href');
    assert.match(connect ?? '', /\/oauth\/hubspot\/install\?orgId=.+&grant=/);
    const install = await fetch(connect ?? '', { redirect: 'manual' });
    assert.equal(install.status, 302, 'the link starts the OAuth install');
    assert.match(install.headers.get('location') ?? '', /client_id=console-test-client/);
  });

  it('given the settings form, when Ticketing is switched off, then the organisation is stored with it off and nothing else changed', async () => {
    const row = page.locator(`tr[data-org="${org.orgId}"]`);
    await row.locator('input[name=ticketingEnabled]').uncheck();
    await row.locator('form button[type=submit]').click();

    assert.match((await page.innerText('[role=status]')) ?? '', new RegExp(`Settings of ${org.orgId} saved`));
    const stored = (await (
      await fetch(`${pipeline.consoleUrl}/admin/orgs/${org.orgId}`, {
        headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
      })
    ).json()) as { settings: unknown; hubspot: { hasAccessToken: boolean; portalId: number } };
    assert.deepEqual(stored.settings, { assistMode: false, ticketingEnabled: false });
    assert.equal(stored.hubspot.hasAccessToken, true, 'the token is kept');
    assert.equal(await row.locator('input[name=ticketingEnabled]').isChecked(), false);
  });

  it('given a form without its CSRF token, when submitted, then 403 and nothing changes', async () => {
    const row = page.locator(`tr[data-org="${org.orgId}"]`);
    await row.locator('input[name=ticketingEnabled]').check();
    await row.locator('input[name=csrf]').evaluate((input: { remove: () => void }) => {
      input.remove();
    });
    const answer = page.waitForResponse((response) => response.url().endsWith('/settings'));
    await row.locator('form button[type=submit]').click();

    assert.equal((await answer).status(), 403);
    assert.match((await page.innerText('[role=alert]')) ?? '', /missing its CSRF token/);
    const stored = (await (
      await fetch(`${pipeline.consoleUrl}/admin/orgs/${org.orgId}`, {
        headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
      })
    ).json()) as { settings: { ticketingEnabled: boolean } };
    assert.equal(stored.settings.ticketingEnabled, false, 'unchanged');
  });

  it('given a message sent through the pipeline, when searched by message id and by thread, then the raw event shows its payload and the customer-message it became', async () => {
    const message = await postCustomerMessage('Console: where is my parcel? <b>now</b>');
    await waitFor(
      'OpenCX to receive the message',
      () => deliveredTexts('Console: where is my parcel? <b>now</b>') === 1,
    );

    await page.goto(`${consoleService.url}/console/events`);
    await page.selectOption('select[name=org]', org.orgId);
    await page.fill('input[name=message]', message.id);
    await page.click('fieldset button[type=submit]');

    const rows = page.locator('tr.raw-event');
    assert.equal(await rows.count(), 1);
    const text = (await rows.first().innerText()) ?? '';
    assert.match(text, /conversation\.newMessage/);
    assert.match(text, new RegExp(`"messageId": "${message.id}"`), 'the decoded payload');
    assert.match((await rows.first().locator('td.outcome').innerText()) ?? '', /emitted\s+customer-message/);
    const domain = page.locator('tr.domain-event');
    assert.equal(await domain.count(), 1);
    assert.match((await domain.first().innerText()) ?? '', /Console: where is my parcel\? <b>now<\/b>/);

    await page.fill('input[name=message]', '');
    await page.fill('input[name=thread]', String(message.conversationsThreadId));
    await page.click('fieldset button[type=submit]');
    assert.equal(await page.locator('tr.raw-event').count(), 1);
    assert.match((await page.innerText('main')) ?? '', /read \d+ of \d+ records in the window/);
  });

  it('given a message OpenCX refused (a dead letter), when replayed from the console after a dry run, then OpenCX receives it once', async () => {
    const text = 'Console: refused once, then replayed';
    const before = await deadLettersOnTopic();
    pipeline.opencx.failNext({
      method: 'POST',
      pathPattern: /\/send$/,
      status: 422,
      times: 1,
      body: { statusCode: 422, message: 'message rejected', error: 'Unprocessable Entity' },
    });
    await postCustomerMessage(text);
    await waitFor('the dead letter', async () => (await deadLettersOnTopic()) > before);

    await page.goto(`${consoleService.url}/console/dead-letters?since=1h`);
    const group = page.locator('tr.letter-group', { hasText: org.orgId });
    assert.match((await group.innerText()) ?? '', /opencx_rejected[\s\S]*1/);
    await page.locator('tr.letter', { hasText: 'opencx_rejected' }).locator('a').first().click();
    assert.match((await page.innerText('[data-testid=decoded]')) ?? '', new RegExp(text));
    const letterUrl = page.url();

    await page.click('text=Replay this letter');
    assert.match(
      (await page.innerText('[data-testid=dry-run-summary]')) ?? '',
      /Dry run: nothing was replayed\. 1 letter would be/,
    );
    assert.equal(deliveredTexts(text), 0, 'the dry run replays nothing');

    await page.click('text=Replay 1 letter');
    assert.match(
      (await page.innerText('[data-testid=replay-summary]')) ?? '',
      /replayed 1, already replayed 0, failed 0/,
    );
    await waitFor('the replayed message at OpenCX', () => deliveredTexts(text) === 1);

    await page.goto(letterUrl);
    assert.match((await page.innerText('[data-testid=letter]')) ?? '', /Replayed\s*yes/);
    await page.click('text=Replay this letter');
    assert.match((await page.innerText('[data-testid=dry-run]')) ?? '', /already replayed/);
    assert.match((await page.innerText('[data-testid=dry-run-summary]')) ?? '', /0 letters would be/);
    await page.goto(`${consoleService.url}/console/dead-letters?since=1h`);
    await page.locator('tr.letter-group', { hasText: org.orgId }).locator('button').click();
    assert.match(
      (await page.innerText('[data-testid=dry-run-summary]')) ?? '',
      /0 letters would be put back on their source topic; 1 already replayed/,
      'the group replay of the same organisation and reason skips the replayed letter',
    );
    assert.deepEqual(pipeline.opencx.violations, []);
  });

  it('given more records in the window than the cap, when read, then the read stops at the cap and the page says the result is partial', async () => {
    const rawTopic = topicsFor(pipeline.env.KAFKA_TOPIC_PREFIX ?? '').rawEvents.name;
    const seen: string[] = [];

    const [read] = await readTopicWindows({
      kafka,
      windows: [{ topic: rawTopic, from: 0 }],
      maxRecords: 1,
      timeoutMs: 10000,
      groupPrefix: 'console-test',
      onRecord: (record) => {
        seen.push(record.offset);
      },
    });

    assert.ok(read && read.inWindow >= 2, 'the raw topic has at least two records by now');
    assert.deepEqual(
      { read: read.read, capped: read.capped, timedOut: read.timedOut },
      { read: 1, capped: true, timedOut: false },
    );
    assert.equal(seen.length, 1);
    const page = eventSearchPage({
      csrf: 'c',
      query: { from: 0, to: 1 },
      window: { from: undefined, to: undefined },
      orgIds: [],
      maxRecords: 1,
      result: { raw: [], domain: [], reads: [read], undecodable: 0, rawMatchesNotShown: 0 },
    }).text;
    assert.match(
      page,
      new RegExp(`stopped after 1 of ${read.inWindow} records \\(the cap\\): the results are\\s+partial`),
    );
  });

  it('given a signed-in operator, when signing out, then the console asks for the token again and the admin token appeared in no URL or log', async () => {
    await page.goto(`${consoleService.url}/console/orgs`);
    await page.click('header button[type=submit]');

    assert.equal(new URL(page.url()).pathname, '/console/sign-in');
    await page.goto(`${consoleService.url}/console/orgs`);
    assert.equal(new URL(page.url()).pathname, '/console/sign-in');
    assert.ok(!urls.some((url) => url.includes(ADMIN_TOKEN)));
    assert.ok(!consoleService.log().includes(ADMIN_TOKEN));
    assert.match(consoleService.log(), /console: signed in/);
  });
});

describe('console: the organisations page shows each organisation’s last reconcile, read from the watermarks topic (real Kafka, registry, Redis; no browser)', function () {
  this.timeout(60000);
  let pipeline: TestPipeline;
  let kafka: Kafka;
  let watermarks: ReconcileWatermarks;
  let writer: RecordWriter;
  let cookie: string;

  /** The organisations page as a signed-in operator gets it. */
  const orgsPageHtml = async (): Promise<string> => {
    const response = await fetch(`${pipeline.consoleUrl}/console/orgs`, { headers: { cookie } });
    assert.equal(response.status, 200);
    return response.text();
  };

  before(async () => {
    pipeline = await startTestPipeline({ processor: false, outbound: false });
    kafka = createKafka({
      clientId: 'console-reconcile-test',
      brokers: (pipeline.env.KAFKA_BROKERS ?? '').split(','),
      logger: createLogger('console-reconcile-test', 'silent'),
    });
    const topic = topicsFor(pipeline.env.KAFKA_TOPIC_PREFIX ?? '').reconcileWatermarks.name;
    const logger = createLogger('console-reconcile-test', 'silent');
    // The reconciler's own write path (lib/reconcile-watermarks.ts), as a replica records a run.
    watermarks = new ReconcileWatermarks({
      kafka,
      topic,
      groupPrefix: `${pipeline.env.KAFKA_TOPIC_PREFIX}test-`,
      logger,
    });
    await watermarks.start();
    writer = await createRecordWriter({ kafka, topics: [topic], logger });
    const signIn = await fetch(`${pipeline.consoleUrl}/console/sign-in`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ token: ADMIN_TOKEN, next: '/console/orgs' }).toString(),
      redirect: 'manual',
    });
    assert.equal(signIn.status, 303);
    cookie = (signIn.headers.get('set-cookie') ?? '').split(';')[0] ?? '';
    assert.match(cookie, /^console_session=/);
  });
  after(async () => {
    await writer?.close();
    await watermarks?.stop();
    await pipeline?.stop();
  });

  it('given one organisation reconciled twice and one never, when the page loads after each run, then it shows the last run, its gaps, the gaps of both runs and its oldest gap, and "never"', async () => {
    const reconciled = await pipeline.createOrg();
    const never = await pipeline.createOrg();
    const firstRun = Date.parse('2026-12-07T12:00:00Z');

    await watermarks.record(writer, reconciled.orgId, {
      checkedThrough: firstRun - 60_000,
      lastRunAt: firstRun,
      gapsFound: 3,
      gapsTotal: 3,
      oldestGapAt: firstRun - 1_234_567,
      runsWithGapsInARow: 1,
    });
    const afterFirst = await orgsPageHtml();

    assert.deepEqual(reconcileCells(afterFirst, reconciled.orgId), [
      new Date(firstRun).toISOString(),
      '3',
      '3',
      new Date(firstRun - 1_234_567).toISOString(),
    ]);
    assert.deepEqual(reconcileCells(afterFirst, never.orgId), ['never', '–', '–', '–']);

    await watermarks.record(writer, reconciled.orgId, {
      checkedThrough: firstRun + 240_000,
      lastRunAt: firstRun + 300_000,
      gapsFound: 0,
      gapsTotal: 3,
      oldestGapAt: null,
      runsWithGapsInARow: 0,
    });
    const afterSecond = await orgsPageHtml();

    assert.deepEqual(reconcileCells(afterSecond, reconciled.orgId), [
      new Date(firstRun + 300_000).toISOString(),
      '0',
      '3',
      '–',
    ]);
    assert.deepEqual(reconcileCells(afterSecond, never.orgId), ['never', '–', '–', '–']);
    assert.doesNotMatch(afterSecond, /reconcile columns may be/);
  });
});

describe('console sessions and pages (no infrastructure)', () => {
  let now = 1_000_000;
  const signer = createSessionSigner({
    adminToken: ADMIN_TOKEN,
    secretsKey: Buffer.alloc(32, 7),
    ttlMs: 60_000,
    now: () => now,
  });

  it('given an issued session, when opened, then it is accepted until it expires, and its CSRF token only with it', () => {
    const { cookie, session } = signer.issue();
    const other = signer.issue().session;

    assert.deepEqual(signer.open(cookie), session);
    assert.ok(signer.csrfMatches(session, signer.csrfToken(session)));
    assert.ok(!signer.csrfMatches(session, signer.csrfToken(other)), "another session's token");
    assert.ok(!signer.csrfMatches(session, undefined));
    assert.ok(!signer.csrfMatches(session, ''));
    now += 60_001;
    assert.equal(signer.open(cookie), undefined, 'expired');
  });

  it('given a tampered, forged or foreign cookie, when opened, then it is refused', () => {
    const { cookie } = signer.issue();
    const [version, payload, signature] = cookie.split('.') as [string, string, string];
    const longer = Buffer.from(
      JSON.stringify({ ...JSON.parse(Buffer.from(payload, 'base64url').toString()), expiresAt: now * 10 }),
    ).toString('base64url');
    const otherToken = createSessionSigner({
      adminToken: `${ADMIN_TOKEN}-rotated`,
      secretsKey: Buffer.alloc(32, 7),
      ttlMs: 60_000,
      now: () => now,
    });

    for (const bad of [
      `${version}.${longer}.${signature}`,
      `${version}.${payload}.AAAA`,
      'v1..',
      '',
      'garbage',
      undefined,
    ])
      assert.equal(signer.open(bad), undefined, String(bad));
    assert.equal(otherToken.open(cookie), undefined, 'a new ADMIN_TOKEN signs everyone out');
    assert.ok(!signer.tokenMatches(''));
    assert.ok(!signer.tokenMatches(`${ADMIN_TOKEN}x`));
    assert.ok(signer.tokenMatches(ADMIN_TOKEN));
  });

  it('given markup in data, when rendered, then it is escaped; markup of other templates is kept', () => {
    const evil = `"><script>alert(1)</script><img src=x onerror='x'>&`;

    const page = html`<p title="${evil}">${evil}</p>
      ${html`<b>${evil}</b>`}`.text.replace(/>\s+</g, '><');

    assert.ok(!page.includes('<script>'));
    assert.ok(!page.includes("onerror='"));
    assert.equal(
      page,
      '<p title="&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=&#39;x&#39;&gt;&amp;">&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=&#39;x&#39;&gt;&amp;</p><b>&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=&#39;x&#39;&gt;&amp;</b>',
    );
  });
});
