import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import {
  LastLines,
  createLineFormatter,
  explainExit,
  forEachLine,
  superviseServices,
  type ServiceExit,
  sampleWebhookCommand,
  type SupervisedService,
} from '../../scripts/dev-supervisor.ts';

/** A real process running a few lines of JavaScript, its output kept like dev-stack keeps it. */
const service = (name: string, script: string): SupervisedService => {
  const child: ChildProcess = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
  const lastLines = new LastLines(3);
  if (child.stdout) forEachLine(child.stdout, (line) => lastLines.add(line));
  if (child.stderr) forEachLine(child.stderr, (line) => lastLines.add(line));
  return { name, process: child, lastLines };
};
const RUNS_UNTIL_STOPPED = "setInterval(() => {}, 1000); process.on('SIGTERM', () => process.exit(0));";

const closed = (child: ChildProcess): Promise<void> =>
  child.exitCode !== null || child.signalCode !== null
    ? Promise.resolve()
    : new Promise((resolve) => child.once('close', () => resolve()));

describe('npm start supervision (scripts/dev-supervisor.ts)', () => {
  it('given a pino JSON line, when formatted for a person, then it is one readable line; other lines pass as they are', () => {
    const format = createLineFormatter({ pretty: true, colorize: false });

    const line = format(
      JSON.stringify({
        level: 50,
        time: '2026-11-30T10:00:00.000Z',
        service: 'outbound',
        pid: 1,
        hostname: 'h',
        msg: 'OpenCX refused',
        orgId: 'acme',
      }),
    );

    assert.match(line, /^\[\d{2}:\d{2}:\d{2}\.000\] ERROR: OpenCX refused \{"orgId":"acme"\}$/);
    assert.equal(
      format('processor: invalid configuration: EMAIL_DELAY_MS = "x"'),
      'processor: invalid configuration: EMAIL_DELAY_MS = "x"',
    );
    assert.equal(format('{not json'), '{not json');
    assert.equal(createLineFormatter({ pretty: false, colorize: false })('{"level":30}'), '{"level":30}');
  });

  it('given more lines than it keeps, when read, then the last ones are there in order', () => {
    const last = new LastLines(2);
    for (const line of ['a', 'b', 'c']) last.add(line);
    assert.deepEqual(last.lines, ['b', 'c']);
  });

  it('given three services, when one exits with code 3 after start-up, then the others are stopped and the exit is explained with its last lines', async () => {
    const services = [
      service('ingest', RUNS_UNTIL_STOPPED),
      service(
        'processor',
        "console.log('one'); console.log('two'); console.log('Redis unreachable'); console.log('giving up'); setTimeout(() => process.exit(3), 300);",
      ),
      service('outbound', RUNS_UNTIL_STOPPED),
    ];
    const failure = new Promise<{ exit: ServiceExit; explanation: string }>((resolve) =>
      superviseServices(services, {
        isStarted: () => true,
        onFailure: (exit, explanation) => resolve({ exit, explanation }),
      }),
    );

    const { exit, explanation } = await failure;

    assert.equal(exit.service, 'processor');
    assert.equal(exit.code, 3);
    assert.equal(exit.phase, 'running');
    assert.deepEqual(exit.lastLines, ['two', 'Redis unreachable', 'giving up']);
    for (const { name, process: child } of services.filter(({ name }) => name !== 'processor'))
      assert.ok(child.exitCode === 0, `${name} stopped by SIGTERM (exit code ${child.exitCode})`);
    assert.match(explanation, /^processor exited with code 3 after start-up\.\nIts last 3 lines:\n {4}two\n/);
    assert.match(explanation, /Stopped the others \(ingest, outbound\)/);
    assert.match(explanation, /Next: fix what its last lines say.*then `npm start` again/);
  });

  it('given an orderly stop (Ctrl-C), when the services exit, then no failure is reported', async () => {
    const services = [service('ingest', RUNS_UNTIL_STOPPED), service('processor', RUNS_UNTIL_STOPPED)];
    let failures = 0;
    const supervisor = superviseServices(services, {
      isStarted: () => true,
      onFailure: () => void (failures += 1),
    });

    await supervisor.stopAll();
    await Promise.all(services.map(({ process: child }) => closed(child)));
    // 'close' listeners run in order of registration: ours (the supervisor's) ran before this one resolved.

    assert.equal(failures, 0);
  });

  it('given a service killed by SIGKILL while starting, when explained, then it names the signal and the likely cause', () => {
    const text = explainExit(
      { service: 'outbound', code: null, signal: 'SIGKILL', phase: 'start-up', lastLines: [] },
      [],
      'external',
    );
    assert.match(
      text,
      /^outbound was killed \(SIGKILL\): out of memory .* while starting\.\nIt printed nothing\./,
    );
    assert.match(text, /check KAFKA_BROKERS, SCHEMA_REGISTRY_URL, REDIS_URL/);
  });
});

describe('the sample-webhook command npm start prints', () => {
  const base = {
    root: '/home/dev/pipeline/',
    sandboxUrl: 'http://127.0.0.1:4099',
    text: 'Hello, where is my order?',
  };

  it('given Node 20 on the PATH of a new terminal (dev.sh installed Node 22 for npm start), when printed, then it goes through dev.sh', () => {
    const seen: string[] = [];
    const command = sampleWebhookCommand({
      ...base,
      path: '/home/dev/pipeline/.cache/node/node_modules/node/bin:/usr/bin',
      nodeVersionOn: (path) => {
        seen.push(path);
        return 'v20.20.2';
      },
    });
    assert.deepEqual(seen, ['/usr/bin'], 'asks the PATH without the cached Node');
    assert.equal(
      command,
      'cd /home/dev/pipeline && bash scripts/dev.sh demo:webhook "Hello, where is my order?"',
    );
  });

  it('given Node 22 on the PATH and a moved sandbox port, when printed, then it is npm run with --sandbox', () => {
    const command = sampleWebhookCommand({
      ...base,
      sandboxUrl: 'http://127.0.0.1:5000',
      text: 'say "hi" $HOME',
      path: '/usr/local/bin',
      nodeVersionOn: () => 'v22.23.3',
    });
    assert.equal(
      command,
      'cd /home/dev/pipeline && npm run demo:webhook -- --sandbox http://127.0.0.1:5000 "say \\"hi\\" \\$HOME"',
    );
  });
});
