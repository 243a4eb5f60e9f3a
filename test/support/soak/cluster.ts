// The soak's own pipeline: each service replica and a Redis server as real OS processes, so a
// fault is a real SIGKILL; or, with --redis-sentinel, the Redis behind Sentinel that
// infra/local/redis-sentinel.sh runs. Logs go to one file per process, named in the report.
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync, readFileSync, type WriteStream } from 'node:fs';
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
  /** Over the soak's own environment; a name set to undefined is not passed on at all. */
  readonly #env: Record<string, string | undefined>;
  readonly #log: WriteStream;
  #child: ChildProcess | undefined;
  #port = 0;
  #exitExpected = false;
  starts = 0;
  /** Exits the soak did not cause (a crash): each is a finding. */
  readonly unplannedExits: string[] = [];

  constructor(service: ServiceName, index: number, env: Record<string, string | undefined>, logDir: string) {
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

/**
 * Redis behind Sentinel as infra/local/redis-sentinel.sh runs it from this checkout (a master, a
 * replica, the sentinels): the operator's, not the soak's, so it may hold keys of others and is
 * never flushed. Its faults: the master killed -9 and failed over, the old master back as a
 * replica of the new one (the script's kill-master and start PORT); and every key of the run
 * deleted at once.
 */
export class SentinelRedis {
  readonly #sentinels: ReadonlyArray<{ readonly host: string; readonly port: number }>;
  readonly #name: string;
  readonly #sentinelPassword: string | undefined;
  readonly #log: WriteStream;
  /** The data servers' ports, master first, as the script wants them (REDIS_SENTINEL_DATA_PORTS). */
  #dataPorts: number[] = [];

  constructor(
    topology: { sentinels: readonly string[]; name: string; sentinelPassword: string | undefined },
    logDir: string,
  ) {
    this.#sentinels = topology.sentinels.map((address) => {
      const [host = '', port = ''] = address.split(':');
      return { host, port: Number(port) };
    });
    this.#name = topology.name;
    this.#sentinelPassword = topology.sentinelPassword;
    this.#log = createWriteStream(`${logDir}/redis-sentinel.log`, { flags: 'a' });
  }

  get description(): string {
    return `Sentinel ${this.#name} via ${this.#sentinels.map(({ host, port }) => `${host}:${port}`).join(',')}`;
  }

  /**
   * Refuses (throws) unless the sentinels name a master that infra/local/redis-sentinel.sh started
   * from this checkout, with one replica: the soak kills that master, and kills nobody else's.
   */
  async check(): Promise<void> {
    const refuse = (why: string): Error =>
      new Error(
        `--redis-sentinel: ${why}; the soak kills the master, so it runs only on the Sentinel set infra/local/redis-sentinel.sh up started from ${repoRoot}`,
      );
    if (this.#name !== SCRIPT_MASTER_NAME)
      throw refuse(`REDIS_SENTINEL_NAME is ${this.#name}, not ${SCRIPT_MASTER_NAME} (the script's)`);
    if (this.#sentinels.some(({ host, port }) => !LOOPBACK.has(host) || !(port > 0)))
      throw refuse(`REDIS_SENTINELS names a sentinel not on this machine's loopback`);
    const master = await this.masterPort();
    if (master === undefined) throw refuse(`no sentinel of REDIS_SENTINELS answers for ${this.#name}`);
    const replicas = await this.#replicaPorts();
    if (replicas.length !== 1)
      throw refuse(`the sentinels know ${replicas.length} replica(s) of :${master}, not one`);
    const pidFile = `${repoRoot}.local/redis-sentinel/${master}/redis.pid`;
    const expected = existsSync(pidFile) ? readFileSync(pidFile, 'utf8').trim() : undefined;
    const running = await this.#onServer(
      master,
      async (client) => /^process_id:(\d+)\r?$/m.exec(await client.info('server'))?.[1],
    );
    if (expected === undefined || running !== expected)
      throw refuse(`the master :${master} is not a server it started (${pidFile})`);
    this.#dataPorts = [master, ...replicas];
  }

  /** The master's port as the first sentinel that answers names it; undefined when none does. */
  async masterPort(): Promise<number | undefined> {
    for (const sentinel of this.#sentinels) {
      const answer = await this.#onSentinel(sentinel, (client) =>
        client.call('SENTINEL', 'get-master-addr-by-name', this.#name),
      ).catch(() => undefined);
      const port = Array.isArray(answer) ? Number(answer[1]) : NaN;
      if (port > 0) return port;
    }
    return undefined;
  }

  /**
   * kill -9 of the master the sentinels name now, then, once they name another one, the old one
   * started again as its replica. Throws when a step did not happen (no failover in 60 s).
   */
  async failover(): Promise<{ oldPort: number; newPort: number; failoverMs: number; backMs: number }> {
    const killed = await this.#script(['kill-master']);
    const killedAt = Date.now();
    const oldPort = Number(killed.trim().split('\n').pop());
    if (!(oldPort > 0)) throw new Error(`kill-master printed no port ('${killed.trim()}')`);
    this.#log.write(`===== soak: master :${oldPort} killed -9 at ${new Date(killedAt).toISOString()}\n`);
    const newPort = await waitFor(
      `the sentinels to name a master other than :${oldPort}`,
      async () => {
        const port = await this.masterPort();
        return port !== undefined && port !== oldPort ? port : undefined;
      },
      60000,
      100,
    );
    const failoverMs = Date.now() - killedAt;
    this.#log.write(`===== soak: :${newPort} named master after ${failoverMs} ms\n`);
    await this.#script(['start', String(oldPort)]);
    return { oldPort, newPort, failoverMs, backMs: Date.now() - killedAt };
  }

  /**
   * Deletes every key under `prefix` on the master at once (one Lua script: the server runs
   * nothing else meanwhile, as with a FLUSHALL), and the replica follows. The run's keys all
   * carry its prefix (docs/architecture.md, "Where state lives"), so for the pipeline this is a
   * FLUSHALL, without touching anyone else's keys. Returns how many were deleted.
   */
  async deleteKeys(prefix: string): Promise<number> {
    if (/[*?[\]\\]/.test(prefix)) throw new Error(`key prefix ${prefix} holds glob characters`);
    const master = await this.masterPort();
    if (master === undefined) throw new Error(`no sentinel names a master for ${this.#name}`);
    const deleted = await this.#onServer(master, (client) => client.eval(DELETE_BY_PREFIX, 0, `${prefix}*`));
    this.#log.write(
      `===== soak: ${String(deleted)} key(s) ${prefix}* deleted on :${master} at ${new Date().toISOString()}\n`,
    );
    return Number(deleted);
  }

  async stop(): Promise<void> {
    await new Promise((resolve) => this.#log.end(resolve));
  }

  async #replicaPorts(): Promise<number[]> {
    for (const sentinel of this.#sentinels) {
      const answer = await this.#onSentinel(sentinel, (client) =>
        client.call('SENTINEL', 'replicas', this.#name),
      ).catch(() => undefined);
      if (!Array.isArray(answer)) continue;
      return (answer as unknown[][]).map((fields) => Number(fields[fields.indexOf('port') + 1]));
    }
    return [];
  }

  /** infra/local/redis-sentinel.sh on the ports this set runs on; its stdout; throws on failure. */
  #script(args: readonly string[]): Promise<string> {
    return new Promise((resolve, reject) => {
      const child = spawn('bash', [`${repoRoot}infra/local/redis-sentinel.sh`, ...args], {
        cwd: repoRoot,
        env: {
          ...process.env,
          REDIS_SENTINEL_DATA_PORTS: this.#dataPorts.join(' '),
          REDIS_SENTINEL_PORTS: this.#sentinels.map(({ port }) => port).join(' '),
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
      child.stderr.on('data', (chunk: Buffer) => {
        stderr += chunk.toString();
        this.#log.write(chunk);
      });
      child.on('error', reject);
      child.on('close', (code) =>
        code === 0
          ? resolve(stdout)
          : reject(new Error(`redis-sentinel.sh ${args.join(' ')} exited ${code}: ${stderr.trim()}`)),
      );
    });
  }

  #onSentinel<T>(sentinel: { host: string; port: number }, use: (client: Redis) => Promise<T>): Promise<T> {
    return withClient({ ...sentinel, password: this.#sentinelPassword }, use);
  }

  #onServer<T>(port: number, use: (client: Redis) => Promise<T>): Promise<T> {
    const host = this.#sentinels[0]?.host ?? '127.0.0.1';
    return withClient({ host, port, password: process.env.REDIS_PASSWORD || undefined }, use);
  }
}

/** The master's name infra/local/redis-sentinel.sh gives its sentinels. */
const SCRIPT_MASTER_NAME = 'pipeline';
const LOOPBACK = new Set(['127.0.0.1', 'localhost']);

/** KEYS, then UNLINK in chunks (unpack takes a few thousand values at most). */
const DELETE_BY_PREFIX = `
local keys = redis.call('KEYS', ARGV[1])
for i = 1, #keys, 1000 do
  redis.call('UNLINK', unpack(keys, i, math.min(i + 999, #keys)))
end
return #keys`;

/** One short-lived connection for a command or two: fails fast, never retries on its own. */
const withClient = async <T>(
  where: { host: string; port: number; password: string | undefined },
  use: (client: Redis) => Promise<T>,
): Promise<T> => {
  const client = new Redis({
    ...where,
    lazyConnect: true,
    connectTimeout: 1000,
    commandTimeout: 5000,
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
    retryStrategy: () => null,
  });
  client.on('error', () => undefined);
  try {
    await client.connect();
    return await use(client);
  } finally {
    client.disconnect();
  }
};
