// The soak's own pipeline: each service replica and a Redis server as real OS processes, so a
// fault is a real SIGKILL. Logs go to one file per process, named in the report.
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, type WriteStream } from 'node:fs';
import { Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { freePort } from '../processes.ts';
import { sleep, waitFor } from '../pipeline.ts';

export type ServiceName = 'ingest' | 'processor' | 'outbound' | 'console';

const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));

const isRunning = (child: ChildProcess | undefined): boolean =>
  child !== undefined && child.exitCode === null && child.signalCode === null;

const killHard = async (child: ChildProcess | undefined): Promise<void> => {
  if (child === undefined || !isRunning(child)) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGKILL');
  await exited;
};

const answersHttp = (url: string): Promise<boolean> =>
  fetch(url, { signal: AbortSignal.timeout(2000) }).then(
    (response) => response.ok,
    () => false,
  );

/** One replica of a service: started, SIGKILLed and restarted in place (same name and log file). */
/** Every process the soak started and that has not exited: killed when the soak is interrupted. */
const liveChildren = new Set<ChildProcess>();
const track = (child: ChildProcess): void => {
  liveChildren.add(child);
  child.once('exit', () => liveChildren.delete(child));
};
/** SIGKILLs whatever the soak started (services, its Redis): on Ctrl-C or SIGTERM, no orphans. */
export const killAllChildren = (): number => {
  for (const child of liveChildren) child.kill('SIGKILL');
  return liveChildren.size;
};

export class Replica {
  readonly name: string;
  readonly service: ServiceName;
  readonly #env: Record<string, string>;
  readonly #log: WriteStream;
  #child: ChildProcess | undefined;
  #port = 0;
  #exitExpected = false;
  starts = 0;
  /** Exits the soak did not cause (a crash): each is a finding. */
  readonly unplannedExits: string[] = [];

  constructor(service: ServiceName, index: number, env: Record<string, string>, logDir: string) {
    this.service = service;
    this.name = `${service}-${index}`;
    this.#env = env;
    this.#log = createWriteStream(`${logDir}/${this.name}.log`, { flags: 'a' });
  }

  get port(): number {
    return this.#port;
  }

  get pid(): number | undefined {
    return this.#child?.pid;
  }

  async start(): Promise<void> {
    this.#port = this.#port || (await freePort());
    const portEnv =
      this.service === 'ingest'
        ? { PORT: String(this.#port), METRICS_PORT: String(await freePort()) }
        : this.service === 'console'
          ? { PORT: String(this.#port), METRICS_PORT: String(this.#port) }
          : { METRICS_PORT: String(this.#port) };
    const child = spawn(process.execPath, [`${repoRoot}services/${this.service}/src/main.ts`], {
      cwd: repoRoot,
      env: { ...process.env, ...this.#env, ...portEnv },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    track(child);
    this.starts += 1;
    this.#exitExpected = false;
    child.once('exit', (code, signal) => {
      if (this.#exitExpected) return;
      const what = `${this.name} (pid ${child.pid ?? '?'}) exited on its own (${code ?? signal}) at ${new Date().toISOString()}`;
      this.unplannedExits.push(what);
      this.#log.write(`===== soak: ${what}\n`);
    });
    this.#log.write(`\n===== soak: start #${this.starts} pid ${child.pid} at ${new Date().toISOString()}\n`);
    child.stdout.pipe(this.#log, { end: false });
    child.stderr.pipe(this.#log, { end: false });
    this.#child = child;
    const probe = this.service === 'ingest' || this.service === 'console' ? '/readyz' : '/healthz';
    await waitFor(
      `${this.name} to answer ${probe}`,
      async () => {
        if (!isRunning(child)) throw new Error(`${this.name} exited (${child.exitCode ?? child.signalCode})`);
        return answersHttp(`http://127.0.0.1:${this.#port}${probe}`);
      },
      90000,
      250,
    );
  }

  async kill(): Promise<void> {
    this.#exitExpected = true;
    this.#log.write(`===== soak: SIGKILL at ${new Date().toISOString()}\n`);
    await killHard(this.#child);
  }

  async metrics(): Promise<string> {
    if (!isRunning(this.#child)) return '';
    return fetch(`http://127.0.0.1:${this.#port}/metrics`, { signal: AbortSignal.timeout(3000) }).then(
      (response) => response.text(),
      () => '',
    );
  }

  async stop(): Promise<void> {
    this.#exitExpected = true;
    const child = this.#child;
    if (child !== undefined && isRunning(child)) {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      const stopped = await Promise.race([exited.then(() => true), sleep(10000).then(() => false)]);
      if (!stopped) await killHard(child);
    }
    await new Promise((resolve) => this.#log.end(resolve));
  }
}

/**
 * A redis-server of the soak's own on a free port, without persistence: a restart loses every
 * key, and so does a FLUSHALL (flushAll).
 */
export class SoakRedis {
  readonly #log: WriteStream;
  #child: ChildProcess | undefined;
  #port = 0;

  constructor(logDir: string) {
    this.#log = createWriteStream(`${logDir}/redis.log`, { flags: 'a' });
  }

  get url(): string {
    return `redis://127.0.0.1:${this.#port}`;
  }

  async start(): Promise<void> {
    this.#port = this.#port || (await freePort());
    const child = spawn(
      'redis-server',
      [
        '--port',
        String(this.#port),
        '--bind',
        '127.0.0.1',
        '--save',
        '',
        '--appendonly',
        'no',
        '--daemonize',
        'no',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    track(child);
    child.stdout.pipe(this.#log, { end: false });
    child.stderr.pipe(this.#log, { end: false });
    this.#child = child;
    await waitFor(
      `redis-server on port ${this.#port}`,
      async () => {
        if (!isRunning(child)) throw new Error(`redis-server exited (${child.exitCode ?? child.signalCode})`);
        return this.#ping();
      },
      15000,
      100,
    );
  }

  /** SIGKILL, a pause, then the same port again (empty: no persistence). */
  async restart(downMs: number): Promise<void> {
    this.#log.write(`===== soak: SIGKILL at ${new Date().toISOString()}\n`);
    await killHard(this.#child);
    await sleep(downMs);
    await this.start();
  }

  /**
   * FLUSHALL on this server, the services' REDIS_URL (never another Redis: the server that
   * answers must report the pid of the redis-server the soak started, or nothing is flushed).
   * Throws when it could not be done.
   */
  async flushAll(): Promise<void> {
    const child = this.#child;
    if (child === undefined || !isRunning(child)) throw new Error("the soak's redis-server is not running");
    const client = new Redis(this.url, {
      lazyConnect: true,
      connectTimeout: 2000,
      commandTimeout: 5000,
      maxRetriesPerRequest: 0,
      enableOfflineQueue: false,
      retryStrategy: () => null,
    });
    client.on('error', () => undefined);
    try {
      await client.connect();
      const pid = /^process_id:(\d+)\r?$/m.exec(await client.info('server'))?.[1];
      if (pid !== String(child.pid))
        throw new Error(
          `${this.url} answers as pid ${pid ?? '?'}, not the soak's redis-server (pid ${child.pid ?? '?'}): not flushed`,
        );
      this.#log.write(`===== soak: FLUSHALL at ${new Date().toISOString()}\n`);
      const answer = await client.flushall();
      if (answer !== 'OK') throw new Error(`FLUSHALL answered ${String(answer)}`);
    } finally {
      client.disconnect();
    }
  }

  async stop(): Promise<void> {
    await killHard(this.#child);
    await new Promise((resolve) => this.#log.end(resolve));
  }

  #ping(): Promise<boolean> {
    return new Promise((resolve) => {
      const socket = new Socket();
      socket.setTimeout(1000);
      socket.once('error', () => resolve(false));
      socket.once('timeout', () => {
        socket.destroy();
        resolve(false);
      });
      socket.connect(this.#port, '127.0.0.1', () => socket.write('PING\r\n'));
      socket.once('data', (data: Buffer) => {
        socket.destroy();
        resolve(data.toString().startsWith('+PONG'));
      });
    });
  }
}
