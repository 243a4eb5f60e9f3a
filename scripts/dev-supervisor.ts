/**
 * The local stack's supervision (scripts/dev-stack.ts): each service's output as readable lines
 * (pino JSON through pino-pretty), the last lines of each kept, and when one service exits on
 * its own, the others stopped and the exit explained. Deployed services keep writing JSON: only
 * this development supervisor formats it.
 */
import type { ChildProcess } from 'node:child_process';
import { delimiter } from 'node:path';
import type { Readable } from 'node:stream';
import { prettyFactory } from 'pino-pretty';

/** One pino JSON line → one readable line; anything else (a stack trace, a start-up error) as it is. */
export const createLineFormatter = (options: {
  pretty: boolean;
  colorize: boolean;
}): ((line: string) => string) => {
  if (!options.pretty) return (line) => line;
  const pretty = prettyFactory({
    colorize: options.colorize,
    singleLine: true,
    translateTime: 'SYS:HH:MM:ss.l',
    // The [service] prefix says which; pid and host are the same for every line here.
    ignore: 'pid,hostname,service,name',
  });
  return (line) => {
    if (!line.startsWith('{')) return line;
    try {
      JSON.parse(line);
    } catch {
      return line;
    }
    return pretty(line).replace(/\n+$/, '');
  };
};

/** The last `max` lines of a service, for the explanation of its exit. */
export class LastLines {
  readonly #max: number;
  readonly #lines: string[] = [];
  constructor(max: number) {
    this.#max = max;
  }
  add(line: string): void {
    this.#lines.push(line);
    if (this.#lines.length > this.#max) this.#lines.shift();
  }
  get lines(): readonly string[] {
    return [...this.#lines];
  }
}

/** Calls `onLine` for each complete line of a stream (a chunk may end mid-line). */
export const forEachLine = (stream: Readable, onLine: (line: string) => void): void => {
  let rest = '';
  stream.setEncoding('utf8');
  stream.on('data', (chunk: string) => {
    const lines = (rest + chunk).split('\n');
    rest = lines.pop() ?? '';
    for (const line of lines) if (line.trim() !== '') onLine(line.replace(/\r$/, ''));
  });
  stream.on('end', () => {
    if (rest.trim() !== '') onLine(rest);
    rest = '';
  });
};

export type ServiceExit = {
  readonly service: string;
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  /** Whether the stack was up (every service started) when it exited. */
  readonly phase: 'start-up' | 'running';
  readonly lastLines: readonly string[];
};

const howItEnded = ({ code, signal }: ServiceExit): string => {
  if (signal === 'SIGKILL')
    return 'was killed (SIGKILL): out of memory (see `dmesg`), or killed by someone or something else';
  if (signal) return `was stopped by ${signal} from outside npm start`;
  if (code === 0) return 'exited with code 0 although nobody asked it to stop';
  return `exited with code ${code}`;
};

/** What an operator reads when a service ends on its own: which, how, its last lines, what to do. */
export const explainExit = (
  exit: ServiceExit,
  others: readonly string[],
  /** What keeps running (infra/local, or infrastructure named by the environment). */
  infra: 'local' | 'external' = 'local',
): string => {
  const lines = [
    `${exit.service} ${howItEnded(exit)} ${exit.phase === 'start-up' ? 'while starting' : 'after start-up'}.`,
  ];
  if (exit.lastLines.length > 0) {
    lines.push(`Its last ${exit.lastLines.length} line${exit.lastLines.length === 1 ? '' : 's'}:`);
    for (const line of exit.lastLines) lines.push(`    ${line}`);
  } else lines.push('It printed nothing.');
  if (others.length > 0)
    lines.push(`Stopped the others (${others.join(', ')}) so that none runs half a pipeline.`);
  lines.push(
    infra === 'local'
      ? 'Next: fix what its last lines say (a bad variable, a port in use, Kafka or Redis unreachable: their logs are in .local/logs/), then `npm start` again. Kafka, the registry and Redis keep running (`npm run infra:down` stops them).'
      : 'Next: fix what its last lines say (a bad variable, a port in use, Kafka or Redis unreachable: check KAFKA_BROKERS, SCHEMA_REGISTRY_URL, REDIS_URL), then `npm start` again.',
  );
  return lines.join('\n');
};

export type SupervisedService = {
  readonly name: string;
  readonly process: ChildProcess;
  readonly lastLines: LastLines;
};

/**
 * Watches the services. The first that exits unasked stops the others (SIGTERM, then SIGKILL
 * after `stopTimeoutMs`), and `onFailure` gets what happened once they are all gone.
 * `stopAll` is the orderly stop (Ctrl-C): exits then are expected.
 */
export const superviseServices = (
  services: readonly SupervisedService[],
  options: {
    readonly isStarted: () => boolean;
    readonly onFailure: (exit: ServiceExit, explanation: string) => void;
    readonly infra?: 'local' | 'external';
    readonly stopTimeoutMs?: number;
  },
): { readonly stopAll: () => Promise<void> } => {
  let stopping = false;
  const exited = (child: ChildProcess): boolean => child.exitCode !== null || child.signalCode !== null;
  const stopAll = async (): Promise<void> => {
    stopping = true;
    const running = services.filter(({ process: child }) => !exited(child));
    await Promise.all(
      running.map(
        ({ process: child }) =>
          new Promise<void>((resolve) => {
            const force = setTimeout(() => child.kill('SIGKILL'), options.stopTimeoutMs ?? 10000);
            child.once('close', () => {
              clearTimeout(force);
              resolve();
            });
            child.kill('SIGTERM');
          }),
      ),
    );
  };
  for (const service of services) {
    // 'close', not 'exit': its output is read to the end by then, so the last lines are the last.
    service.process.once('close', (code, signal) => {
      if (stopping) return;
      const exit: ServiceExit = {
        service: service.name,
        code,
        signal,
        phase: options.isStarted() ? 'running' : 'start-up',
        lastLines: service.lastLines.lines,
      };
      const others = services
        .filter((other) => other !== service && !exited(other.process))
        .map((other) => other.name);
      void stopAll().then(() => options.onFailure(exit, explainExit(exit, others, options.infra)));
    });
  }
  return { stopAll };
};

/** Where the sample-webhook command finds the sandbox unless told (scripts/send-sample-webhook.ts). */
export const DEFAULT_SANDBOX_URL = 'http://127.0.0.1:4099';

/**
 * The sample-webhook command as it works in another terminal of this machine. Under
 * `bash scripts/dev.sh start` on a machine whose own Node is older than 22, `node` here is the
 * one dev.sh installed in .cache/node and put first on this process's PATH only: a new terminal
 * finds the old one, so the printed command must go through dev.sh too.
 */
export const sampleWebhookCommand = (options: {
  readonly root: string;
  /** The PATH of this process. */
  readonly path: string;
  /** `node --version` of the first `node` on a PATH, or undefined when there is none. */
  readonly nodeVersionOn: (path: string) => string | undefined;
  readonly sandboxUrl: string;
  readonly text: string;
}): string => {
  const cacheDir = `${options.root}.cache/node`;
  const userPath = options.path
    .split(delimiter)
    .filter((dir) => !dir.startsWith(cacheDir))
    .join(delimiter);
  const major = Number(/^v(\d+)\./.exec(options.nodeVersionOn(userPath) ?? '')?.[1] ?? 0);
  const sandbox = options.sandboxUrl === DEFAULT_SANDBOX_URL ? '' : ` --sandbox ${options.sandboxUrl}`;
  const quoted = `"${options.text.replace(/(["\\$`])/g, '\\$1')}"`;
  const run =
    major >= 22
      ? `npm run demo:webhook --${sandbox} ${quoted}`
      : `bash scripts/dev.sh demo:webhook${sandbox} ${quoted}`;
  const dir = options.root.replace(/\/$/, '');
  return `cd ${/^[\w./-]+$/.test(dir) ? dir : `'${dir.replace(/'/g, `'\\''`)}'`} && ${run}`;
};
