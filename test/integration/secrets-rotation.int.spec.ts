import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { Signature } from '@hubspot/api-client';
import { createDurableProducer, createKafka, topicsFor } from '../../lib/kafka/index.ts';
import { createLogger } from '../../lib/log.ts';
import type { StoredOrg } from '../../lib/orgs/index.ts';
import { OrgDirectory, createSecretBox, hashWebhookToken, type OrgLookup } from '../../lib/orgs/index.ts';
import { startConsole } from '../../services/console/src/main.ts';
import { loadConsoleConfig } from '../../services/console/src/config.ts';
import { startIngest, type RunningIngest } from '../../services/ingest/src/main.ts';
import { loadIngestConfig } from '../../services/ingest/src/config.ts';
import { startProcessor, type RunningProcessor } from '../../services/processor/src/main.ts';
import { loadProcessorConfig } from '../../services/processor/src/config.ts';
import { startOutbound, type RunningOutbound } from '../../services/outbound/src/main.ts';
import { loadOutboundConfig } from '../../services/outbound/src/config.ts';
import * as fixtures from '../fakes/hubspot-fixtures.ts';
import { startFakeHubSpot, type FakeHubSpot } from '../fakes/hubspot.ts';
import { startFakeOpenCx, type FakeOpenCx } from '../fakes/opencx.ts';
import { ADMIN_TOKEN, CLIENT_SECRET, sumCounter, waitFor } from '../support/pipeline.ts';

/** The URL HubSpot is configured with: fixed, so a legacy webhook URL is comparable across restarts. */
const PUBLIC_BASE_URL = 'https://hooks.example.test';
const key = (): string => randomBytes(32).toString('base64');

type Services = {
  readonly ingestUrl: string;
  /** The admin API. */
  readonly consoleUrl: string;
  readonly ingest: RunningIngest;
  readonly stop: () => Promise<void>;
};

/**
 * One deployment of the three services on one set of topics, Redis keys and fakes, which the
 * tests stop and start again with other keys, as an operator rotating SECRETS_KEY would.
 */
const deployment = async () => {
  const runId = randomBytes(4).toString('hex');
  const hubspot: FakeHubSpot = await startFakeHubSpot({ defaultRateLimit: null });
  const opencx: FakeOpenCx = await startFakeOpenCx();
  const env: Record<string, string> = {
    NODE_ENV: 'test',
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
    KAFKA_BROKERS: process.env.KAFKA_BROKERS ?? '',
    SCHEMA_REGISTRY_URL: process.env.SCHEMA_REGISTRY_URL ?? '',
    REDIS_URL: process.env.REDIS_URL ?? '',
    KAFKA_TOPIC_PREFIX: `test-${runId}-`,
    REDIS_KEY_PREFIX: `test:${runId}:`,
    KAFKA_PARTITIONS: '3',
    KAFKA_REPLICATION_FACTOR: '1',
    HUBSPOT_API_BASE_URL: hubspot.url,
    OPENCX_API_BASE_URL: opencx.url,
    HUBSPOT_CLIENT_SECRET: CLIENT_SECRET,
    PUBLIC_BASE_URL,
    ADMIN_TOKEN,
    PORT: '0',
    METRICS_PORT: '0',
    EMAIL_DELAY_MS: '0',
    DEDUP_CLAIM_LEASE_MS: '3000',
    HUBSPOT_RETRY_INITIAL_MS: '20',
    OPENCX_RETRY_INITIAL_MS: '20',
    OPENCX_RETRY_MAX_MS: '200',
  };
  const log = (service: string) => createLogger(service, env.LOG_LEVEL ?? 'silent');
  let running: Services | undefined;

  const start = async (keys: Record<string, string>): Promise<Services> => {
    const withKeys = { ...env, ...keys };
    const ingest = await startIngest(loadIngestConfig(withKeys), log('ingest'));
    const consoleService = await startConsole(
      loadConsoleConfig({ ...withKeys, INGEST_PUBLIC_URL: PUBLIC_BASE_URL }),
      log('console'),
    );
    const processor: RunningProcessor = await startProcessor(loadProcessorConfig(withKeys), log('processor'));
    const outbound: RunningOutbound = await startOutbound(loadOutboundConfig(withKeys), log('outbound'));
    running = {
      ingestUrl: `http://127.0.0.1:${ingest.port}`,
      consoleUrl: `http://127.0.0.1:${consoleService.port}`,
      ingest,
      stop: async () => {
        await Promise.allSettled([processor.stop(), outbound.stop(), consoleService.stop()]);
        await ingest.stop();
        running = undefined;
      },
    };
    return running;
  };

  /** An admin API call; the answer read once (its text for assertion messages, its JSON if any). */
  const admin = async (
    services: Services,
    method: string,
    orgId: string,
    body?: object,
  ): Promise<{ status: number; text: string; body: unknown }> => {
    const response = await fetch(`${services.consoleUrl}/admin/orgs/${orgId}`, {
      method,
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
      ...(body ? { body: JSON.stringify(body) } : {}),
    });
    const text = await response.text();
    // An edit is answered once it is on the orgs topic: wait until ingest has read it too.
    if (method !== 'GET' && response.status < 300)
      await waitFor(`the ${method} of ${orgId} at ingest`, () => {
        const stored = services.ingest.orgs.stored(orgId);
        const updatedAt = (JSON.parse(text || '{}') as { updatedAt?: string }).updatedAt;
        return method === 'DELETE'
          ? stored?.deleted === true
          : (stored?.updatedAt ?? -1) >= Date.parse(updatedAt ?? '');
      });
    return { status: response.status, text, body: text ? (JSON.parse(text) as unknown) : undefined };
  };

  /** POSTs a batch signed (v3) with HubSpot's SDK for the URL HubSpot calls (PUBLIC_BASE_URL). */
  const post = (services: Services, path: string, events: readonly object[], secret: string) => {
    const body = JSON.stringify(events);
    const timestamp = Date.now();
    const signature = Signature.getSignature('POST', 'v3', {
      signature: '',
      clientSecret: secret,
      requestBody: body,
      url: `${PUBLIC_BASE_URL}${path}`,
      timestamp,
    });
    return fetch(`${services.ingestUrl}${path}`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'x-hubspot-signature-v3': signature,
        'x-hubspot-request-timestamp': String(timestamp),
      },
      body,
    });
  };

  /** A customer chat message on a new thread, posted as HubSpot would; resolves once OpenCX has it. */
  const customerMessageReachesOpenCx = async (
    services: Services,
    org: { portalId: number; apiKey: string },
    text: string,
    route: { path: string; secret: string } = { path: '/webhooks/hubspot', secret: CLIENT_SECRET },
  ): Promise<void> => {
    const message = fixtures.message({ kind: 'customer-chat', text });
    hubspot.addMessage(message, { portalId: org.portalId });
    const response = await post(
      services,
      route.path,
      [fixtures.webhookEventFor(message, { portalId: org.portalId })],
      route.secret,
    );
    assert.equal(response.status, 200, await response.text());
    const session = await waitFor(`OpenCX to receive "${text}"`, () =>
      [...opencx.sessions.values()].find((candidate) =>
        candidate.messages.some((sent) => sent.text === text),
      ),
    );
    assert.equal(session.apiKey, org.apiKey, 'sent with the organisation’s OpenCX key');
  };

  /** Another process's view of the orgs topic, as a service started with these keys sees it. */
  const directory = async (current: string, previous?: string): Promise<OrgDirectory> => {
    const orgs = new OrgDirectory({
      kafka: createKafka({
        clientId: 'test-directory',
        brokers: [env.KAFKA_BROKERS ?? ''],
        logger: log('test'),
      }),
      topic: topicsFor(env.KAFKA_TOPIC_PREFIX ?? '').orgs.name,
      groupPrefix: env.KAFKA_TOPIC_PREFIX ?? '',
      secrets: createSecretBox(Buffer.from(current, 'base64'), {
        previous: previous === undefined ? undefined : Buffer.from(previous, 'base64'),
      }),
      logger: log('test'),
    });
    await orgs.start();
    return orgs;
  };

  /** The reseal command as an operator runs it: its own process, its own exit code. */
  const reseal = (
    keys: Record<string, string>,
    args: readonly string[] = [],
  ): Promise<{ code: number | null; stdout: string; stderr: string }> =>
    new Promise((resolve, reject) => {
      const entry = fileURLToPath(new URL('../../tools/orgs/reseal-cli.ts', import.meta.url));
      const child = spawn(process.execPath, [entry, ...args], {
        env: { ...process.env, ...env, ...keys },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
      child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
      child.once('error', reject);
      child.once('exit', (code) => resolve({ code, stdout, stderr }));
    });

  return {
    env,
    hubspot,
    opencx,
    start,
    admin,
    post,
    customerMessageReachesOpenCx,
    directory,
    reseal,
    async stop(): Promise<void> {
      await running?.stop();
      await Promise.allSettled([hubspot.close(), opencx.close()]);
    },
  };
};
type Deployment = Awaited<ReturnType<typeof deployment>>;

const orgBody = (org: {
  portalId: number;
  accessToken: string;
  apiKey: string;
  privateAppClientSecret?: string;
}) => ({
  hubspot: {
    portalId: org.portalId,
    accessToken: org.accessToken,
    aiActorId: 'A-111',
    ...(org.privateAppClientSecret ? { privateAppClientSecret: org.privateAppClientSecret } : {}),
  },
  opencx: { apiKey: org.apiKey },
  settings: { assistMode: false, ticketingEnabled: true },
});

const newOrg = (hubspot: FakeHubSpot) => {
  const org = {
    orgId: `org-${randomBytes(3).toString('hex')}`,
    portalId: 20_000_000 + Math.floor(Math.random() * 9_000_000),
    accessToken: `pat-na1-${randomBytes(8).toString('hex')}`,
    apiKey: `ocx-${randomBytes(8).toString('hex')}`,
    privateAppClientSecret: `private-${randomBytes(8).toString('hex')}`,
  };
  hubspot.setToken(org.accessToken, org.portalId);
  return org;
};

describe('SECRETS_KEY rotation: secrets survive a key change (real Kafka, registry, Redis)', function () {
  this.timeout(180000);
  let deploy: Deployment;

  beforeEach(async () => {
    deploy = await deployment();
  });
  afterEach(async () => {
    await deploy?.stop();
  });

  it('given an organisation sealed with key A, when restarted with B (A as previous), resealed, then run with B alone, then its events are processed throughout and its legacy webhook URL never changes', async () => {
    const keyA = key();
    const keyB = key();
    const org = newOrg(deploy.hubspot);

    // Key A: the organisation is created and its events processed.
    let services = await deploy.start({ SECRETS_KEY: keyA });
    const created = await deploy.admin(services, 'PUT', org.orgId, orgBody(org));
    assert.equal(created.status, 201, created.text);
    const { legacyWebhookUrl } = created.body as { legacyWebhookUrl: string };
    assert.ok(legacyWebhookUrl.startsWith(`${PUBLIC_BASE_URL}/webhooks/hubspot/private/`));
    await deploy.customerMessageReachesOpenCx(services, org, 'sealed with A');
    await services.stop();

    // Rotation: B seals, A still opens; nothing was deleted or re-created.
    services = await deploy.start({ SECRETS_KEY: keyB, SECRETS_KEY_PREVIOUS: keyA });
    await deploy.customerMessageReachesOpenCx(services, org, 'read with A as the previous key');
    const during = await deploy.admin(services, 'GET', org.orgId);
    assert.equal(during.status, 200, during.text);
    assert.equal((during.body as { legacyWebhookUrl: string }).legacyWebhookUrl, legacyWebhookUrl);

    const dryRun = await deploy.reseal({ SECRETS_KEY: keyB, SECRETS_KEY_PREVIOUS: keyA }, ['--dry-run']);
    assert.equal(dryRun.code, 0, `${dryRun.stdout}${dryRun.stderr}`);
    assert.match(dryRun.stdout, /would reseal 1, already current 0, unreadable 0/);
    const first = await deploy.reseal({ SECRETS_KEY: keyB, SECRETS_KEY_PREVIOUS: keyA });
    assert.equal(first.code, 0, `${first.stdout}${first.stderr}`);
    assert.match(first.stdout, /1 organisation record: resealed 1, already current 0, unreadable 0/);
    assert.match(first.stderr, /resealing 1\/1/);
    const again = await deploy.reseal({ SECRETS_KEY: keyB, SECRETS_KEY_PREVIOUS: keyA });
    assert.equal(again.code, 0, `${again.stdout}${again.stderr}`);
    assert.match(
      again.stdout,
      /resealed 0, already current 1, unreadable 0/,
      'a second run has nothing to do',
    );
    await services.stop();

    // A is gone: B alone opens everything.
    services = await deploy.start({ SECRETS_KEY: keyB });
    await deploy.customerMessageReachesOpenCx(services, org, 'read with B alone after the reseal');
    const after = await deploy.admin(services, 'GET', org.orgId);
    assert.equal(after.status, 200, after.text);
    assert.equal((after.body as { legacyWebhookUrl: string }).legacyWebhookUrl, legacyWebhookUrl);
    await deploy.customerMessageReachesOpenCx(services, org, 'through the legacy URL with B alone', {
      path: new URL(legacyWebhookUrl).pathname,
      secret: org.privateAppClientSecret,
    });
    const metrics = await (await fetch(`${services.ingestUrl}/metrics`)).text();
    assert.equal(sumCounter(metrics, 'orgs_unreadable', {}), 0);
  });

  it('given records no configured key opens, then the directory says unreadable (not unknown), DELETE answers 204, and PUT replaces one keeping its legacy URL routing', async () => {
    const lostKey = key();
    const keyB = key();
    const services = await deploy.start({ SECRETS_KEY: keyB });

    // Two organisations written by a deployment whose key is lost since.
    const lostBox = createSecretBox(Buffer.from(lostKey, 'base64'));
    const kafka = createKafka({
      clientId: 'test-writer',
      brokers: [deploy.env.KAFKA_BROKERS ?? ''],
      logger: createLogger('test', 'silent'),
    });
    const producer = createDurableProducer(kafka);
    await producer.connect();
    const lost = [newOrg(deploy.hubspot), newOrg(deploy.hubspot)].map((org) => ({
      ...org,
      webhookToken: randomBytes(24).toString('base64url'),
    }));
    for (const org of lost) {
      const record: StoredOrg = {
        orgId: org.orgId,
        deleted: false,
        updatedAt: Date.now(),
        hubspot: {
          portalId: org.portalId,
          aiActorId: 'A-111',
          accessToken: lostBox.seal(org.accessToken),
          privateAppClientSecret: lostBox.seal(org.privateAppClientSecret),
          reconnectRequired: false,
        },
        opencx: { apiKey: lostBox.seal(org.apiKey) },
        settings: { assistMode: false, ticketingEnabled: true },
        webhookToken: lostBox.seal(org.webhookToken),
        webhookTokenHash: hashWebhookToken(org.webhookToken),
      };
      await producer.send({
        topic: topicsFor(deploy.env.KAFKA_TOPIC_PREFIX ?? '').orgs.name,
        acks: -1,
        messages: [{ key: org.orgId, value: JSON.stringify(record) }],
      });
    }
    await producer.disconnect();
    const [replaced, deleted] = lost as [(typeof lost)[number], (typeof lost)[number]];

    // The directory indexes them by portal and token hash, as unreadable.
    const orgs = await deploy.directory(keyB);
    try {
      const expected = (org: { orgId: string }): Pick<OrgLookup, 'kind'> & { orgId: string } => ({
        kind: 'unreadable',
        orgId: org.orgId,
      });
      const pick = (found: OrgLookup) => ({ kind: found.kind, orgId: 'orgId' in found ? found.orgId : '' });
      assert.deepEqual(pick(orgs.lookupByPortal(replaced.portalId)), expected(replaced));
      assert.deepEqual(pick(orgs.lookupByWebhookToken(replaced.webhookToken)), expected(replaced));
      assert.deepEqual(pick(orgs.lookupById(deleted.orgId)), expected(deleted));
      assert.equal(orgs.byPortal(replaced.portalId), undefined, 'no Org without its secrets');
      assert.equal(orgs.lookupByPortal(1).kind, 'unknown');
    } finally {
      await orgs.stop();
    }
    const unreadable = await waitFor('ingest to see both records as unreadable', async () => {
      const response = await deploy.admin(services, 'GET', replaced.orgId);
      return response.status === 409 ? (response.body as { error: string; detail: string }) : false;
    });
    assert.equal(unreadable.error, 'org_unreadable');
    assert.match(unreadable.detail, /SECRETS_KEY_PREVIOUS/);
    await waitFor('orgs_unreadable to count both', async () => {
      const metrics = await (await fetch(`${services.ingestUrl}/metrics`)).text();
      return sumCounter(metrics, 'orgs_unreadable', {}) === 2;
    });

    // The reseal command reports them, writes nothing, and says so in its exit code.
    const orgsTopicEnd = async (): Promise<string> => {
      const admin = kafka.admin();
      await admin.connect();
      try {
        const offsets = await admin.fetchTopicOffsets(
          topicsFor(deploy.env.KAFKA_TOPIC_PREFIX ?? '').orgs.name,
        );
        return offsets.map(({ partition, high }) => `${partition}:${high}`).join(',');
      } finally {
        await admin.disconnect();
      }
    };
    const endBefore = await orgsTopicEnd();
    const report = await deploy.reseal({ SECRETS_KEY: keyB });
    assert.equal(report.code, 1, `${report.stdout}${report.stderr}`);
    assert.match(report.stdout, /2 organisation records: resealed 0, already current 0, unreadable 2/);
    for (const org of lost)
      assert.match(report.stdout, new RegExp(`unreadable: ${org.orgId}: .*SECRETS_KEY_PREVIOUS`));
    assert.equal(await orgsTopicEnd(), endBefore, 'nothing was written');

    // DELETE needs no secret, and says what happened.
    const removed = await deploy.admin(services, 'DELETE', deleted.orgId);
    assert.equal(removed.status, 204, removed.text);
    assert.equal((await deploy.admin(services, 'GET', deleted.orgId)).status, 404);

    // PUT: a secret only the caller can give again must be sent; then the record is replaced.
    const { privateAppClientSecret: _omitted, ...withoutSecret } = replaced;
    const refused = await deploy.admin(
      services,
      'PUT',
      replaced.orgId,
      orgBody({ ...withoutSecret, apiKey: 'ocx-new' }),
    );
    assert.equal(refused.status, 422, refused.text);
    assert.match((refused.body as { detail: string }).detail, /hubspot\.privateAppClientSecret/);

    const fresh = {
      ...replaced,
      apiKey: `ocx-${randomBytes(8).toString('hex')}`,
      privateAppClientSecret: 'private-new-secret',
    };
    const put = await deploy.admin(services, 'PUT', replaced.orgId, orgBody(fresh));
    assert.equal(put.status, 200, put.text);
    const view = put.body as { legacyWebhookUrl: string | null; legacyWebhookUrlNote?: string };
    assert.equal(view.legacyWebhookUrl, null, 'the old token cannot be opened, so it cannot be shown');
    assert.match(view.legacyWebhookUrlNote ?? '', /still routes/);

    // The legacy URL HubSpot already calls still routes to the organisation, now readable.
    await deploy.customerMessageReachesOpenCx(services, fresh, 'after the PUT, through the old legacy URL', {
      path: `/webhooks/hubspot/private/${replaced.webhookToken}`,
      secret: fresh.privateAppClientSecret,
    });
    const metrics = await (await fetch(`${services.ingestUrl}/metrics`)).text();
    assert.equal(sumCounter(metrics, 'orgs_unreadable', {}), 0);
  });
});
