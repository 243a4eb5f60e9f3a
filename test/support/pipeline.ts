import { testRedisEnv } from './redis.ts';
import { randomBytes } from 'node:crypto';
import { postSignedWebhook } from './signed-delivery.ts';
import { startConsole, type RunningConsole } from '../../services/console/src/main.ts';
import { loadConsoleConfig } from '../../services/console/src/config.ts';
import { startIngest, type RunningIngest } from '../../services/ingest/src/main.ts';
import { loadIngestConfig } from '../../services/ingest/src/config.ts';
import { startProcessor, type RunningProcessor } from '../../services/processor/src/main.ts';
import { loadProcessorConfig } from '../../services/processor/src/config.ts';
import { startOutbound, type RunningOutbound } from '../../services/outbound/src/main.ts';
import { loadOutboundConfig } from '../../services/outbound/src/config.ts';
import { createLogger } from '../../lib/log.ts';
import { startFakeHubSpot, type FakeHubSpot } from '../fakes/hubspot.ts';
import { startFakeOpenCx, type FakeOpenCx } from '../fakes/opencx.ts';

export const CLIENT_SECRET = 'test-oauth-app-client-secret';
export const ADMIN_TOKEN = 'test-admin-token-0123456789abcdef';

export type TestOrg = {
  orgId: string;
  portalId: number;
  accessToken: string;
  apiKey: string;
  aiActorId: string;
  legacyWebhookUrl: string;
};

/** Polls until `check` returns a value (not undefined/false), or fails naming what it waited for. */
export const waitFor = async <T>(
  what: string,
  check: () => T | undefined | false | Promise<T | undefined | false>,
  timeoutMs = 20000,
  everyMs = 50,
): Promise<T> => {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
};

/** Sums the samples of a Prometheus counter whose labels include `labels`. */
export const sumCounter = (exposition: string, name: string, labels: Record<string, string>): number =>
  exposition
    .split('\n')
    .filter((line) => line.startsWith(`${name}{`) || line.startsWith(`${name} `))
    .filter((line) => Object.entries(labels).every(([key, value]) => line.includes(`${key}="${value}"`)))
    .reduce((sum, line) => sum + Number(line.slice(line.lastIndexOf(' ') + 1)), 0);

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * PUT /admin/orgs/{orgId} on a running console, with a fresh access token the fake HubSpot knows
 * and a fresh OpenCX key: the test pipeline and the chaos soak register organisations this way.
 * With `reached`, waits until it says the edit reached the services (they follow the orgs topic).
 */
export const registerTestOrg = async (
  consoleUrl: string,
  hubspot: Pick<FakeHubSpot, 'setToken'>,
  spec: {
    orgId: string;
    portalId: number;
    settings?: { assistMode?: boolean; ticketingEnabled?: boolean };
    privateAppClientSecret?: string;
  },
  reached?: (orgId: string, updatedAt: number) => boolean,
): Promise<TestOrg> => {
  const { orgId, portalId } = spec;
  const accessToken = `pat-na1-${randomBytes(8).toString('hex')}`;
  const apiKey = `ocx-${randomBytes(8).toString('hex')}`;
  hubspot.setToken(accessToken, portalId);
  const response = await fetch(`${consoleUrl}/admin/orgs/${orgId}`, {
    method: 'PUT',
    headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify({
      hubspot: {
        portalId,
        accessToken,
        aiActorId: 'A-111',
        defaultOwnerActorId: 'A-222',
        ...(spec.privateAppClientSecret ? { privateAppClientSecret: spec.privateAppClientSecret } : {}),
      },
      opencx: { apiKey },
      settings: { assistMode: false, ticketingEnabled: true, ...spec.settings },
    }),
  });
  if (response.status !== 201 && response.status !== 200)
    throw new Error(`PUT /admin/orgs/${orgId} answered ${response.status}: ${await response.text()}`);
  const body = (await response.json()) as { legacyWebhookUrl: string; updatedAt: string };
  if (reached)
    await waitFor(`organisation ${orgId} at the services`, () => reached(orgId, Date.parse(body.updatedAt)));
  return {
    orgId,
    portalId,
    accessToken,
    apiKey,
    aiActorId: 'A-111',
    legacyWebhookUrl: body.legacyWebhookUrl,
  };
};

/**
 * The whole pipeline in this process, on the real broker, registry and Redis, with its own topic
 * and Redis key prefixes, talking to fake HubSpot and OpenCX servers. `stop()` cleans up.
 * `redis`: the services' Redis topology variables in place of the test topology's (testRedisEnv),
 * for a spec that brings its own Redis (e.g. REDIS_SENTINELS and REDIS_SENTINEL_NAME, which the
 * services refuse next to the REDIS_CLUSTER_NODES of TEST_REDIS_TOPOLOGY=cluster).
 */
export const startTestPipeline = async (
  options: {
    env?: Record<string, string>;
    redis?: Record<string, string>;
    processor?: boolean;
    outbound?: boolean;
  } = {},
) => {
  const runId = randomBytes(4).toString('hex');
  const hubspot: FakeHubSpot = await startFakeHubSpot({ defaultRateLimit: null });
  const opencx: FakeOpenCx = await startFakeOpenCx();
  const required = (name: string): string => {
    const value = process.env[name];
    if (!value)
      throw new Error(`${name} is not set: run the tests through mocha's global setup (test/setup.ts)`);
    return value;
  };
  const env: Record<string, string> = {
    NODE_ENV: 'test',
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
    KAFKA_BROKERS: required('KAFKA_BROKERS'),
    SCHEMA_REGISTRY_URL: required('SCHEMA_REGISTRY_URL'),
    REDIS_URL: required('REDIS_URL'),
    ...(options.redis ?? testRedisEnv()),
    KAFKA_TOPIC_PREFIX: `test-${runId}-`,
    REDIS_KEY_PREFIX: `test:${runId}:`,
    KAFKA_PARTITIONS: '3',
    KAFKA_REPLICATION_FACTOR: '1',
    HUBSPOT_API_BASE_URL: hubspot.url,
    OPENCX_API_BASE_URL: opencx.url,
    HUBSPOT_CLIENT_SECRET: CLIENT_SECRET,
    ADMIN_TOKEN,
    SECRETS_KEY: randomBytes(32).toString('base64'),
    PORT: '0',
    METRICS_PORT: '0',
    EMAIL_DELAY_MS: '5000',
    DEDUP_CLAIM_LEASE_MS: '3000',
    // The least Kafka allows: a killed replica's partitions move on after 6 s, not 10.
    KAFKA_SESSION_TIMEOUT_MS: '6000',
    HUBSPOT_RETRY_INITIAL_MS: '20',
    // Off unless a spec turns it on (reconcile.int.spec.ts): a spec that withholds a webhook on
    // purpose, or counts HubSpot calls, must not see the reconciler deliver or call.
    RECONCILE_INTERVAL_MS: '0',
    OPENCX_RETRY_INITIAL_MS: '20',
    OPENCX_RETRY_MAX_MS: '200',
    ...options.env,
  };
  const log = (service: string) => createLogger(service, env.LOG_LEVEL ?? 'silent');

  const ingest: RunningIngest = await startIngest(loadIngestConfig(env), log('ingest'));
  const ingestUrl = `http://127.0.0.1:${ingest.port}`;
  const consoleService: RunningConsole = await startConsole(
    loadConsoleConfig({ ...env, INGEST_PUBLIC_URL: ingestUrl }),
    log('console'),
  );
  const consoleUrl = `http://127.0.0.1:${consoleService.port}`;
  /** An edit made on the console has reached ingest (the others follow the same topic). */
  const reachedIngest = (orgId: string, updatedAt: number): boolean =>
    (ingest.orgs.stored(orgId)?.updatedAt ?? -1) >= updatedAt;
  let processors: RunningProcessor[] = [];
  let outbounds: RunningOutbound[] = [];

  const pipeline = {
    runId,
    env,
    hubspot,
    opencx,
    ingestUrl,
    /** The console service: the admin API and the operator's console. */
    consoleUrl,
    /** Waits until ingest has seen every edit of `orgId` up to `updatedAt`. */
    reachedIngest,
    get processors(): readonly RunningProcessor[] {
      return processors;
    },
    /** Another processor replica (same consumer group); call again for more. */
    async startProcessor(extraEnv: Record<string, string> = {}): Promise<RunningProcessor> {
      const processor = await startProcessor(loadProcessorConfig({ ...env, ...extraEnv }), log('processor'));
      processors.push(processor);
      return processor;
    },
    async stopProcessor(): Promise<void> {
      await Promise.all(processors.map((processor) => processor.stop()));
      processors = [];
    },
    async startOutbound(extraEnv: Record<string, string> = {}): Promise<RunningOutbound> {
      const outbound = await startOutbound(loadOutboundConfig({ ...env, ...extraEnv }), log('outbound'));
      outbounds.push(outbound);
      return outbound;
    },
    async stopOutbound(): Promise<void> {
      await Promise.all(outbounds.map((outbound) => outbound.stop()));
      outbounds = [];
    },
    /** Sum of a counter over the running replicas of a service (labels must all match). */
    async counter(
      service: 'processor' | 'outbound',
      name: string,
      labels: Record<string, string> = {},
    ): Promise<number> {
      const ports = (service === 'processor' ? processors : outbounds).map((running) => running.metricsPort);
      let total = 0;
      for (const port of ports)
        total += sumCounter(await (await fetch(`http://127.0.0.1:${port}/metrics`)).text(), name, labels);
      return total;
    },

    /** PUT /admin/orgs/{orgId} with an access token the fake HubSpot knows. */
    async createOrg(
      overrides: {
        orgId?: string;
        portalId?: number;
        settings?: { assistMode?: boolean; ticketingEnabled?: boolean };
        privateAppClientSecret?: string;
      } = {},
    ): Promise<TestOrg> {
      return registerTestOrg(
        consoleUrl,
        hubspot,
        {
          ...overrides,
          orgId: overrides.orgId ?? `org-${randomBytes(3).toString('hex')}`,
          portalId: overrides.portalId ?? 20_000_000 + Math.floor(Math.random() * 9_000_000),
        },
        reachedIngest,
      );
    },

    /** POSTs a batch signed (v3) with HubSpot's own SDK, as HubSpot would. */
    async postBatch(
      events: readonly object[],
      sign: { secret?: string; timestamp?: number; path?: string; body?: string } = {},
    ): Promise<Response> {
      const path = sign.path ?? '/webhooks/hubspot';
      const url = `${ingestUrl}${path}`;
      const body = sign.body ?? JSON.stringify(events);
      return postSignedWebhook(url, body, sign.secret ?? CLIENT_SECRET, {
        ...(sign.timestamp === undefined ? {} : { timestamp: sign.timestamp }),
      });
    },

    async stop(): Promise<void> {
      await Promise.allSettled([...processors, ...outbounds].map((running) => running.stop()));
      await Promise.allSettled([consoleService.stop(), ingest.stop()]);
      await Promise.allSettled([hubspot.close(), opencx.close()]);
    },
  };
  if (options.processor !== false) await pipeline.startProcessor();
  if (options.outbound !== false) await pipeline.startOutbound();
  return pipeline;
};
export type TestPipeline = Awaited<ReturnType<typeof startTestPipeline>>;
