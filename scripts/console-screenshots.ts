/**
 * Screenshots of every console page for the README: docs/console/*.png.
 *   node scripts/console-screenshots.ts
 * Starts what it needs in this process: the services and the console on their own topics and Redis keys
 * (test/support/pipeline.ts), the HubSpot and OpenCX fakes, two organisations, a few
 * conversations (one that OpenCX refuses, so there is a dead letter), then drives Debian's
 * chromium (scripts/ci/ensure-chromium.sh) with playwright-core. Needs Kafka, the registry and
 * Redis as the tests do: KAFKA_BROKERS, SCHEMA_REGISTRY_URL, REDIS_URL (defaults: the local
 * stack of `npm run infra:up`).
 */
import { spawnSync } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import * as fixtures from '../test/fakes/hubspot-fixtures.ts';
import { ADMIN_TOKEN, startTestPipeline, waitFor, type TestOrg } from '../test/support/pipeline.ts';

const outDir = fileURLToPath(new URL('../docs/console/', import.meta.url));
const ensureChromium = fileURLToPath(new URL('./ci/ensure-chromium.sh', import.meta.url));

process.env.KAFKA_BROKERS ??= '127.0.0.1:9092';
process.env.SCHEMA_REGISTRY_URL ??= 'http://127.0.0.1:8081/apis/ccompat/v7';
process.env.REDIS_URL ??= 'redis://127.0.0.1:6379';

const found = spawnSync('bash', [ensureChromium], { encoding: 'utf8' });
if (found.status !== 0) {
  process.stderr.write(found.stderr);
  process.exit(1);
}
const browserPath = found.stdout.trim().split('\n').pop() ?? '';

const pipeline = await startTestPipeline({
  env: { HUBSPOT_CLIENT_ID: 'demo-oauth-client', EMAIL_DELAY_MS: '200' },
});
const browser = await chromium.launch({ executablePath: browserPath, args: ['--no-sandbox'] });
try {
  const acme = await pipeline.createOrg({ orgId: 'acme-support', portalId: 24_000_001 });
  const globex = await pipeline.createOrg({
    orgId: 'globex',
    portalId: 24_000_002,
    settings: { assistMode: true },
  });
  const say = async (org: TestOrg, text: string): Promise<string> => {
    const message = fixtures.message({ kind: 'customer-chat', text });
    pipeline.hubspot.addMessage(message, { portalId: org.portalId });
    const response = await pipeline.postBatch([
      fixtures.webhookEventFor(message, { portalId: org.portalId }),
    ]);
    if (response.status !== 200) throw new Error(`webhook answered ${response.status}`);
    return message.id;
  };
  const searched = await say(acme, 'Hello, where is my order #1042?');
  await say(acme, 'Can I change the delivery address?');
  await say(globex, 'My invoice is wrong');
  // Only once these are at OpenCX may it refuse the next send: the one below.
  await waitFor(
    'three messages at OpenCX',
    () => pipeline.opencx.effects.filter((effect) => effect.kind === 'message-sent').length >= 3,
    30000,
  );
  pipeline.opencx.failNext({
    method: 'POST',
    pathPattern: /\/send$/,
    status: 422,
    times: 1,
    body: { statusCode: 422, message: 'message rejected', error: 'Unprocessable Entity' },
  });
  await say(acme, 'Please cancel my subscription');
  // An event of a portal no organisation has: listed apart on the organisations page.
  await pipeline.postBatch([fixtures.webhookEvent({ portalId: 24_999_999 })]);
  await waitFor(
    'OpenCX to refuse the fourth',
    () =>
      pipeline.opencx.requests.some(
        (request) =>
          request.path.endsWith('/send') &&
          (request.body as { message?: { text?: string } }).message?.text === 'Please cancel my subscription',
      ),
    30000,
  );

  await mkdir(outDir, { recursive: true });
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  const shoot = async (name: string): Promise<void> => {
    await page.screenshot({ path: `${outDir}${name}.png`, fullPage: true });
    process.stdout.write(`docs/console/${name}.png\n`);
  };
  await page.goto(`${pipeline.consoleUrl}/console/orgs`);
  await shoot('sign-in');
  await page.fill('input[name=token]', ADMIN_TOKEN);
  await page.click('button[type=submit]');
  await page.waitForURL(/\/console\/orgs/);
  // The letter is written once outbound gave up on it: wait until the page shows it.
  await waitFor('the dead letter on the organisations page', async () => {
    await page.reload();
    return (await page.innerText(`tr[data-org="acme-support"] td.dead-letters`)).trim() !== '0';
  });
  await shoot('organisations');
  await page.goto(`${pipeline.consoleUrl}/console/events?org=acme-support&message=${searched}&search=1`);
  await shoot('event-search');
  await page.goto(`${pipeline.consoleUrl}/console/dead-letters?since=1h`);
  await shoot('dead-letters');
  await page.locator('tr.letter a').first().click();
  await shoot('dead-letter');
  await page.click('text=Replay this letter');
  await shoot('replay-dry-run');
  await page.click('button:has-text("Replay 1 letter")');
  await shoot('replay-done');
} finally {
  await browser.close();
  await pipeline.stop();
}
// kafkajs or ioredis may keep a timer alive; the screenshots are written.
process.exit(0);
