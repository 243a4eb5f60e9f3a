import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { freePort } from '../support/processes.ts';
import { waitFor } from '../support/pipeline.ts';

const entryOf = (service: 'ingest' | 'console'): string =>
  fileURLToPath(new URL(`../../services/${service}/src/main.ts`, import.meta.url));

/** Runs a service as its own process until it exits; what it wrote to stderr and its exit code. */
const runService = (service: 'ingest' | 'console', env: Record<string, string>) =>
  new Promise<{ code: number | null; stderr: string }>((resolve, reject) => {
    const child = spawn(process.execPath, [entryOf(service)], {
      env: { PATH: process.env.PATH ?? '', LOG_LEVEL: 'silent', NODE_ENV: 'test', ...env },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('exit', (code) => resolve({ code, stderr }));
    // A service that started instead of failing is the bug: stop it so mocha can report.
    setTimeout(() => child.kill('SIGKILL'), 45000).unref();
  });
const runIngest = (env: Record<string, string>) => runService('ingest', env);

/**
 * Regression: a bad variable printed a PipelineError with its stack trace (thrown synchronously,
 * outside runAsProcess's promise), and a busy port an unhandled 'error' event with Node's stack.
 */
describe('ingest start-up failures', function () {
  this.timeout(60000);

  it('given PORT=abc, when ingest starts, then it exits 1 with one stderr line naming PORT', async () => {
    const { code, stderr } = await runIngest({ PORT: 'abc' });
    assert.equal(code, 1);
    const lines = stderr.trimEnd().split('\n');
    assert.equal(lines.length, 1, stderr);
    assert.match(lines[0] ?? '', /^ingest: cannot start: invalid configuration: PORT = "abc"/);
  });

  it('given the port already in use, when ingest starts, then it exits 1 with one stderr line saying which port and what to do', async () => {
    const blocker: Server = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '0.0.0.0', resolve));
    const address = blocker.address();
    const port = typeof address === 'object' && address ? address.port : 0;
    try {
      const runId = randomBytes(4).toString('hex');
      const { code, stderr } = await runIngest({
        PORT: String(port),
        KAFKA_BROKERS: process.env.KAFKA_BROKERS ?? '',
        SCHEMA_REGISTRY_URL: process.env.SCHEMA_REGISTRY_URL ?? '',
        REDIS_URL: process.env.REDIS_URL ?? '',
        KAFKA_TOPIC_PREFIX: `startup-port-${runId}-`,
        REDIS_KEY_PREFIX: `test:${runId}:`,
        KAFKA_REPLICATION_FACTOR: '1',
      });
      assert.equal(code, 1);
      const lines = stderr.trimEnd().split('\n');
      assert.equal(lines.length, 1, stderr);
      assert.equal(
        lines[0],
        `ingest: cannot start: port ${port} is already in use: stop the process listening on it, or set PORT to a free port`,
      );
    } finally {
      await new Promise((resolve) => blocker.close(resolve));
    }
  });

  const runEnv = (runId: string, extra: Record<string, string>) => ({
    SCHEMA_REGISTRY_URL: process.env.SCHEMA_REGISTRY_URL ?? '',
    REDIS_URL: process.env.REDIS_URL ?? '',
    KAFKA_TOPIC_PREFIX: `startup-wait-${runId}-`,
    REDIS_KEY_PREFIX: `test:${runId}:`,
    KAFKA_REPLICATION_FACTOR: '1',
    ...extra,
  });

  it('given Kafka unreachable when ingest starts (a broker restarting), when it answers 3 s later, then ingest waits for it and starts (no exit)', async () => {
    const [brokerHost = '127.0.0.1', brokerPort = '9092'] = (process.env.KAFKA_BROKERS ?? '')
      .split(',')[0]!
      .split(':');
    // Bootstrap through a port nothing listens on yet; after 3 s it forwards to the real broker
    // (whose metadata then names itself: only the first connection goes through here).
    const bootstrapPort = await freePort();
    const httpPort = await freePort();
    const runId = randomBytes(4).toString('hex');
    const child = spawn(process.execPath, [entryOf('ingest')], {
      env: {
        PATH: process.env.PATH ?? '',
        LOG_LEVEL: 'silent',
        NODE_ENV: 'test',
        ...runEnv(runId, {
          PORT: String(httpPort),
          METRICS_PORT: '0',
          KAFKA_BROKERS: `127.0.0.1:${bootstrapPort}`,
          KAFKA_STARTUP_WAIT_MS: '60000',
        }),
      },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    let exited = false;
    child.on('exit', () => (exited = true));
    const sockets: Socket[] = [];
    let forwarder: Server | undefined;
    try {
      await new Promise((resolve) => setTimeout(resolve, 3000));
      assert.equal(exited, false, `ingest exited while Kafka was unreachable: ${stderr}`);
      forwarder = createServer((socket) => {
        const upstream = connect(Number(brokerPort), brokerHost);
        sockets.push(socket, upstream);
        socket.pipe(upstream).pipe(socket);
        socket.on('error', () => upstream.destroy());
        upstream.on('error', () => socket.destroy());
      });
      await new Promise<void>((resolve) => forwarder?.listen(bootstrapPort, '127.0.0.1', resolve));
      await waitFor(
        'ingest ready once Kafka answers',
        async () => {
          if (exited) throw new Error(`ingest exited: ${stderr}`);
          return (await fetch(`http://127.0.0.1:${httpPort}/readyz`).catch(() => undefined))?.status === 200;
        },
        40000,
        200,
      );
    } finally {
      child.kill('SIGKILL');
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => (forwarder ? forwarder.close(resolve) : resolve(undefined)));
    }
  });

  it('given Kafka unreachable for all of KAFKA_STARTUP_WAIT_MS, when ingest starts, then it exits 1 with one line saying what to check', async () => {
    const runId = randomBytes(4).toString('hex');
    const nothingThere = await freePort();
    const { code, stderr } = await runIngest(
      runEnv(runId, { PORT: '0', KAFKA_BROKERS: `127.0.0.1:${nothingThere}`, KAFKA_STARTUP_WAIT_MS: '2000' }),
    );
    assert.equal(code, 1);
    const lines = stderr.trimEnd().split('\n');
    assert.equal(lines.length, 1, stderr);
    assert.match(
      lines[0] ?? '',
      new RegExp(
        `^ingest: cannot start: Kafka at 127\\.0\\.0\\.1:${nothingThere} did not answer for \\d+ s \\(KAFKA_STARTUP_WAIT_MS\\): check that the brokers run and KAFKA_BROKERS names them`,
      ),
    );
  });
});

describe('console start-up failures (the same one-line exits as ingest)', function () {
  this.timeout(60000);

  it('given PORT=abc, when the console starts, then it exits 1 with one stderr line naming PORT', async () => {
    const { code, stderr } = await runService('console', { PORT: 'abc' });
    assert.equal(code, 1);
    const lines = stderr.trimEnd().split('\n');
    assert.equal(lines.length, 1, stderr);
    assert.match(lines[0] ?? '', /^console: cannot start: invalid configuration: PORT = "abc"/);
  });

  it('given the port already in use, when the console starts, then it exits 1 with one stderr line saying which port and what to do', async () => {
    const blocker: Server = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '0.0.0.0', resolve));
    const address = blocker.address();
    const port = typeof address === 'object' && address ? address.port : 0;
    try {
      const runId = randomBytes(4).toString('hex');
      const { code, stderr } = await runService('console', {
        PORT: String(port),
        KAFKA_BROKERS: process.env.KAFKA_BROKERS ?? '',
        SCHEMA_REGISTRY_URL: process.env.SCHEMA_REGISTRY_URL ?? '',
        REDIS_URL: process.env.REDIS_URL ?? '',
        KAFKA_TOPIC_PREFIX: `startup-port-${runId}-`,
        REDIS_KEY_PREFIX: `test:${runId}:`,
        KAFKA_REPLICATION_FACTOR: '1',
      });
      assert.equal(code, 1);
      const lines = stderr.trimEnd().split('\n');
      assert.equal(lines.length, 1, stderr);
      assert.equal(
        lines[0],
        `console: cannot start: port ${port} is already in use: stop the process listening on it, or set PORT to a free port`,
      );
    } finally {
      await new Promise((resolve) => blocker.close(resolve));
    }
  });
});
