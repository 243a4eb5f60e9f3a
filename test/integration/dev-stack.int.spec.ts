import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { waitFor } from '../support/pipeline.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe('npm start: readable logs, a sample webhook that works, a dead service explained (real Kafka, registry, Redis)', function () {
  this.timeout(60000);
  let stack: ChildProcess | undefined;
  let output = '';
  const pids = new Map<string, number>();

  after(() => {
    // Only what this test started: the stack and the services it printed the pids of.
    for (const pid of [stack?.pid, ...pids.values()])
      if (pid !== undefined && alive(pid)) process.kill(pid, 'SIGKILL');
  });

  it('given npm start, when the printed command is run, then the webhook reaches OpenCX in readable logs; when the processor is killed, the others stop and the exit is explained', async () => {
    const runId = randomBytes(4).toString('hex');
    const [port, processorPort, outboundPort, consolePort, controlPort] = await Promise.all([
      freePort(),
      freePort(),
      freePort(),
      freePort(),
      freePort(),
    ]);
    const env: Record<string, string | undefined> = {
      ...process.env,
      KAFKA_TOPIC_PREFIX: `test-devstack-${runId}-`,
      REDIS_KEY_PREFIX: `test:devstack:${runId}:`,
      SECRETS_KEY: randomBytes(32).toString('base64'),
      // npm start's own default: outbound at debug (each applied event shown), the others at info.
      LOG_LEVEL: undefined,
      KAFKA_PARTITIONS: '1',
      PORT: String(port),
      PROCESSOR_METRICS_PORT: String(processorPort),
      OUTBOUND_METRICS_PORT: String(outboundPort),
      CONSOLE_PORT: String(consolePort),
      ADMIN_TOKEN: undefined,
      SANDBOX_CONTROL_PORT: String(controlPort),
      HUBSPOT_API_BASE_URL: undefined,
      OPENCX_API_BASE_URL: undefined,
    };
    stack = spawn(process.execPath, [`${ROOT}scripts/dev-stack.ts`], {
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    stack.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    stack.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => stack?.once('close', (code) => resolve(code)));

    const command = await waitFor(
      'npm start to print the sample-webhook command',
      () => /^\[dev-stack\] {5}(cd .+ && .+)$/m.exec(output)?.[1],
      40000,
    );
    for (const [, service, pid] of output.matchAll(/(ingest|processor|outbound|console) \(pid (\d+)\)/g))
      pids.set(service ?? '', Number(pid));
    assert.equal(pids.size, 4, output);
    // The console: where it is and how to sign in, and it answers there with that token.
    const consoleLine = await waitFor(
      'npm start to print the console line',
      () =>
        /^\[dev-stack\] console on (http:\S+)\/console: sign in with the admin token \(ADMIN_TOKEN, here (\S+)\);/m.exec(
          output,
        ) ?? undefined,
    );
    assert.equal(consoleLine[1], `http://127.0.0.1:${consolePort}`);
    const signIn = await fetch(`${consoleLine[1]}/console/sign-in`, {
      method: 'POST',
      body: new URLSearchParams({ token: consoleLine[2] ?? '', next: '/console/orgs' }),
      redirect: 'manual',
    });
    assert.equal(signIn.status, 303, 'the printed token signs in');
    assert.match(
      command,
      new RegExp(
        `demo:webhook .*--sandbox http://127\\.0\\.0\\.1:${controlPort} "Hello, where is my order\\?"$`,
      ),
    );

    // The command exactly as printed, in a shell of this machine.
    const sent = await new Promise<{ code: number | null; text: string }>((resolve) => {
      const shell = spawn('bash', ['-c', command], { env: process.env, stdio: ['ignore', 'pipe', 'pipe'] });
      let text = '';
      shell.stdout.on('data', (chunk: Buffer) => (text += chunk.toString()));
      shell.stderr.on('data', (chunk: Buffer) => (text += chunk.toString()));
      shell.on('close', (code) => resolve({ code, text }));
    });
    assert.equal(sent.code, 0, sent.text);
    assert.match(sent.text, new RegExp(`POST http://127\\.0\\.0\\.1:${port}/webhooks/hubspot → 200`));
    await waitFor('outbound to apply the customer message', () =>
      /^\[outbound\] \[\d{2}:\d{2}:\d{2}\.\d{3}\] DEBUG: applied \{.*"type":"customer-message"/m.test(output),
    );
    assert.doesNotMatch(output, /^\[(ingest|processor|outbound|console)\] \{"level"/m, 'no raw JSON lines');

    process.kill(pids.get('processor') ?? 0, 'SIGKILL');

    assert.equal(await exited, 1, output);
    assert.match(output, /\[dev-stack\] processor was killed \(SIGKILL\): .* after start-up\./);
    assert.match(
      output,
      /\[dev-stack\] Its last \d+ lines?:\n\[dev-stack\] {5}\[\d{2}:\d{2}:\d{2}\.\d{3}\] [A-Z]+: /,
    );
    assert.match(output, /\[dev-stack\] Stopped the others \(ingest, outbound, console\)/);
    assert.match(output, /\[dev-stack\] Next: fix what its last lines say/);
    assert.ok(
      !alive(pids.get('ingest') ?? 0) &&
        !alive(pids.get('outbound') ?? 0) &&
        !alive(pids.get('console') ?? 0),
      'ingest, outbound and the console stopped',
    );
  });
});
