import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:net';
import { fileURLToPath } from 'node:url';

const entry = fileURLToPath(new URL('../../services/ingest/src/main.ts', import.meta.url));

/** Runs ingest as its own process until it exits; what it wrote to stderr and its exit code. */
const runIngest = (env: Record<string, string>) =>
  new Promise<{ code: number | null; stderr: string }>((resolve, reject) => {
    const child = spawn(process.execPath, [entry], {
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
});
