/**
 * `npm start`: the local stack, the three pipeline services and the console, each its own
 * process, on loopback.
 * When HUBSPOT_API_BASE_URL / OPENCX_API_BASE_URL are not set, local sandboxes of both run here
 * (the test fakes), a demo organisation is registered, and a command is printed that sends a
 * signed sample webhook; its effect shows in the services' logs.
 * Logs are printed readable (pino-pretty; `npm start -- --json` keeps the services' JSON). When a
 * service exits on its own, the others are stopped and the exit is explained (dev-supervisor.ts).
 * With KAFKA_BROKERS, SCHEMA_REGISTRY_URL and REDIS_URL all set, that infrastructure is used and
 * infra/local is not started. Ports: PORT (ingest, 3000), PROCESSOR_METRICS_PORT (9465),
 * OUTBOUND_METRICS_PORT (9466), CONSOLE_PORT (the console and the admin API, 8090),
 * SANDBOX_CONTROL_PORT (4099).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { startFakeHubSpot } from '../test/fakes/hubspot.ts';
import { startFakeOpenCx } from '../test/fakes/opencx.ts';
import * as fixtures from '../test/fakes/hubspot-fixtures.ts';
import { isEntryPoint } from '../lib/service.ts';
import {
  LastLines,
  createLineFormatter,
  forEachLine,
  sampleWebhookCommand,
  superviseServices,
  type SupervisedService,
} from './dev-supervisor.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const say = (line: string): void => void process.stdout.write(`[dev-stack] ${line}\n`);

export const SANDBOX_CONTROL_PORT = 4099;
/** Lines of each service kept to explain its exit. */
const LAST_LINES = 15;
const DEMO = {
  orgId: 'demo',
  portalId: fixtures.FIXTURE_PORTAL_ID,
  token: 'pat-demo-sandbox-token',
  apiKey: 'ocx-demo-key',
  clientSecret: 'demo-client-secret',
  adminToken: 'demo-admin-token-0123456789',
};

const readEnvFile = (path: string): Record<string, string> =>
  Object.fromEntries(
    readFileSync(path, 'utf8')
      .split('\n')
      .map((line) => line.trim())
      .filter((line) => line && !line.startsWith('#') && line.includes('='))
      .map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]),
  );

const nodeVersionOn = (path: string): string | undefined => {
  const result = spawnSync('node', ['--version'], { env: { PATH: path }, encoding: 'utf8' });
  return result.status === 0 ? result.stdout.trim() : undefined;
};

/** Started services, stopped again if start-up fails half-way. */
const children: ChildProcess[] = [];
let started = false;

const main = async (): Promise<void> => {
  const jsonLogs = process.argv.includes('--json');
  const external = ['KAFKA_BROKERS', 'SCHEMA_REGISTRY_URL', 'REDIS_URL'].every((name) => process.env[name]);
  let infra: Record<string, string> = {};
  if (external) {
    say(
      `using Kafka at ${process.env.KAFKA_BROKERS}, the registry at ${process.env.SCHEMA_REGISTRY_URL} and Redis at ${process.env.REDIS_URL} (infra/local not started)`,
    );
  } else {
    say('starting Kafka, the schema registry and Redis (infra/local/up.sh) ...');
    const up = spawnSync('bash', [`${root}infra/local/up.sh`], { stdio: ['ignore', 'inherit', 'inherit'] });
    if (up.status !== 0) throw new Error('infra/local/up.sh failed: see its output above and .local/logs/');
    infra = readEnvFile(`${root}.local/env`);
  }

  const sandbox = !process.env.HUBSPOT_API_BASE_URL && !process.env.OPENCX_API_BASE_URL;
  const env: Record<string, string> = {
    ...(process.env as Record<string, string>),
    ...infra,
    KAFKA_REPLICATION_FACTOR: process.env.KAFKA_REPLICATION_FACTOR ?? '1',
    ADMIN_TOKEN: process.env.ADMIN_TOKEN ?? DEMO.adminToken,
    HUBSPOT_CLIENT_SECRET: process.env.HUBSPOT_CLIENT_SECRET ?? DEMO.clientSecret,
    SECRETS_KEY: process.env.SECRETS_KEY ?? loadOrCreateDevKey(),
    PORT: process.env.PORT ?? '3000',
  };
  let closeSandboxes = async (): Promise<void> => undefined;
  const controlPort = Number(process.env.SANDBOX_CONTROL_PORT ?? SANDBOX_CONTROL_PORT);
  if (sandbox) {
    const hubspot = await startFakeHubSpot({ tokens: { [DEMO.token]: DEMO.portalId } });
    const opencx = await startFakeOpenCx({
      aiResponder: (text) => `Thanks for your message! (sandbox AI answering: "${text}")`,
    });
    env.HUBSPOT_API_BASE_URL = hubspot.url;
    env.OPENCX_API_BASE_URL = opencx.url;
    // A control endpoint for the sample-webhook command: it creates a message in the sandbox HubSpot.
    const control = createServer((req, res) => {
      let body = '';
      req.on('data', (chunk: Buffer) => (body += chunk.toString()));
      req.on('end', () => {
        const { text = 'Hello, where is my order?' } = (body ? JSON.parse(body) : {}) as { text?: string };
        // A fresh thread each time: Kafka keeps its state across restarts, the sandboxes do not.
        const threadId = String(7_000_000_000 + Math.floor(Math.random() * 999_999_999));
        hubspot.setThread(fixtures.thread({ id: threadId }));
        const message = fixtures.message({ kind: 'customer-chat', text, threadId });
        hubspot.addMessage(message);
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(
          JSON.stringify({
            event: fixtures.webhookEventFor(message, { portalId: DEMO.portalId }),
            secret: env.HUBSPOT_CLIENT_SECRET,
            ingestUrl: `http://127.0.0.1:${env.PORT}`,
          }),
        );
      });
    });
    await new Promise<void>((resolve, reject) => {
      control.once('error', (error: NodeJS.ErrnoException) =>
        reject(
          new Error(
            error.code === 'EADDRINUSE'
              ? `port ${controlPort} (the sandbox's control endpoint) is in use: is another npm start running? Stop it, or set SANDBOX_CONTROL_PORT`
              : error.message,
          ),
        ),
      );
      control.listen(controlPort, '127.0.0.1', resolve);
    });
    say(`sandbox HubSpot at ${hubspot.url}, sandbox OpenCX at ${opencx.url}`);
    closeSandboxes = async () => {
      control.close();
      await Promise.all([hubspot.close(), opencx.close()]);
    };
  }

  const format = createLineFormatter({ pretty: !jsonLogs, colorize: process.stdout.isTTY === true });
  const supervised: SupervisedService[] = [];
  // Each service and the port its /readyz answers on (ingest and the console: their own; the
  // others: metrics).
  const ports = {
    ingest: env.PORT ?? '3000',
    processor: process.env.PROCESSOR_METRICS_PORT ?? '9465',
    outbound: process.env.OUTBOUND_METRICS_PORT ?? '9466',
    console: process.env.CONSOLE_PORT ?? '8090',
  };
  const ingestUrl = `http://127.0.0.1:${env.PORT}`;
  const consoleUrl = `http://127.0.0.1:${ports.console}`;
  for (const [service, port] of Object.entries(ports)) {
    const child = spawn(process.execPath, [`${root}services/${service}/src/main.ts`], {
      // Outbound logs each applied event at debug (per-event lines cost CPU at volume): on this
      // demo stack, where a newcomer watches a message go through, they are shown.
      env: {
        ...env,
        METRICS_PORT: port,
        ...(service === 'outbound' ? { LOG_LEVEL: process.env.LOG_LEVEL ?? 'debug' } : {}),
        ...(service === 'console' ? { PORT: port, INGEST_PUBLIC_URL: ingestUrl } : {}),
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const lastLines = new LastLines(LAST_LINES);
    const prefix = `[${service}] `;
    const show = (sink: NodeJS.WriteStream) => (line: string) => {
      const readable = format(line);
      lastLines.add(readable);
      sink.write(`${prefix}${readable}\n`);
    };
    if (child.stdout) forEachLine(child.stdout, show(process.stdout));
    if (child.stderr) forEachLine(child.stderr, show(process.stderr));
    children.push(child);
    supervised.push({ name: service, process: child, lastLines });
  }
  say(`started ${supervised.map(({ name, process: child }) => `${name} (pid ${child.pid})`).join(', ')}`);
  const supervisor = superviseServices(supervised, {
    infra: external ? 'external' : 'local',
    isStarted: () => started,
    onFailure: (_exit, explanation) => {
      for (const line of explanation.split('\n')) say(line);
      void closeSandboxes().finally(() => process.exit(1));
    },
  });
  // Started = every service answers /readyz.
  await Promise.all(Object.values(ports).map((port) => waitForReady(`http://127.0.0.1:${port}/readyz`)));
  started = true;

  if (sandbox) {
    const response = await fetch(`${consoleUrl}/admin/orgs/${DEMO.orgId}`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${env.ADMIN_TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        hubspot: { portalId: DEMO.portalId, accessToken: DEMO.token, aiActorId: 'A-111' },
        opencx: { apiKey: DEMO.apiKey },
        settings: { assistMode: false, ticketingEnabled: true },
      }),
    });
    say(`demo organisation "${DEMO.orgId}" registered (${response.status})`);
    say('ready. In another terminal, send a signed sample webhook:');
    say(
      `    ${sampleWebhookCommand({
        root,
        path: process.env.PATH ?? '',
        nodeVersionOn,
        sandboxUrl: `http://127.0.0.1:${controlPort}`,
        text: 'Hello, where is my order?',
      })}`,
    );
    say('then watch the processor emit a customer-message and outbound apply it and post the AI reply.');
  } else say(`ready: ingest on ${ingestUrl}`);
  say(
    `console on ${consoleUrl}/console: sign in with the admin token (ADMIN_TOKEN${process.env.ADMIN_TOKEN ? ', as you set it' : `, here ${env.ADMIN_TOKEN}`}); the admin API is ${consoleUrl}/admin/orgs/{orgId} with Authorization: Bearer $ADMIN_TOKEN`,
  );

  const shutdown = async (): Promise<void> => {
    say('stopping services (infra keeps running; npm run infra:down stops it)');
    await supervisor.stopAll();
    await closeSandboxes();
    process.exit(0);
  };
  process.on('SIGINT', () => void shutdown());
  process.on('SIGTERM', () => void shutdown());
};

const loadOrCreateDevKey = (): string => {
  const path = `${root}.local/dev-secrets-key`;
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    mkdirSync(`${root}.local`, { recursive: true });
    const key = randomBytes(32).toString('base64');
    writeFileSync(path, key, { mode: 0o600 });
    return key;
  }
};

const waitForReady = async (url: string): Promise<void> => {
  const deadline = Date.now() + 120000;
  while (Date.now() < deadline) {
    if (
      await fetch(url).then(
        (response) => response.ok,
        () => false,
      )
    )
      return;
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  throw new Error(`${url} did not become ready in 120 s: see the service logs above`);
};

if (isEntryPoint(import.meta.url))
  main().catch((error: unknown) => {
    process.stderr.write(`[dev-stack] ${error instanceof Error ? error.message : String(error)}\n`);
    for (const child of children) child.kill('SIGTERM');
    process.exit(1);
  });
