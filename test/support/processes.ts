import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { waitFor } from './pipeline.ts';

export const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });

/**
 * A service as its own OS process (node services/<name>/src/main.ts), so a test can SIGKILL it
 * for real. Resolves once it serves /healthz on its metrics port. The caller kills it.
 */
export const spawnService = async (
  service: 'processor' | 'outbound',
  env: Record<string, string>,
  /** 'pipe' to read the process's stderr in the test (child.stderr); else it goes to the test's. */
  options: { stderr?: 'inherit' | 'pipe' } = {},
): Promise<ChildProcess & { metricsPort: number }> => {
  const entry = fileURLToPath(new URL(`../../services/${service}/src/main.ts`, import.meta.url));
  const port = await freePort();
  const child = spawn(process.execPath, [entry], {
    env: { ...process.env, ...env, METRICS_PORT: String(port) },
    stdio: ['ignore', 'ignore', options.stderr ?? 'inherit'],
  });
  await waitFor(
    `the ${service} process to serve /healthz`,
    async () => {
      if (child.exitCode !== null) throw new Error(`${service} exited with ${child.exitCode}`);
      return fetch(`http://127.0.0.1:${port}/healthz`).then(
        (response) => response.ok,
        () => false,
      );
    },
    60000,
  );
  return Object.assign(child, { metricsPort: port });
};

export const kill = async (child: ChildProcess): Promise<void> => {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGKILL');
  await exited;
};

/** SIGTERM (a service stops cleanly, and writes its profile under --cpu-prof), SIGKILL after `graceMs`. */
export const stopGracefully = async (child: ChildProcess, graceMs: number): Promise<void> => {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
};

export type CommandRun = {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
  /** How long it ran. */
  readonly ms: number;
};

/**
 * Runs a command to its end (with `env` over the test's own), collecting what it printed;
 * `deadlineMs`: SIGKILLed if it has not exited by then.
 */
export const runCommand = (
  command: string,
  args: readonly string[],
  env: Record<string, string | undefined> = {},
  options: { readonly cwd?: string; readonly deadlineMs?: number } = {},
): Promise<CommandRun> =>
  new Promise((resolve, reject) => {
    const started = Date.now();
    const child = spawn(command, args, {
      cwd: options.cwd,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const deadline =
      options.deadlineMs === undefined
        ? undefined
        : setTimeout(() => child.kill('SIGKILL'), options.deadlineMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(deadline);
      resolve({ code, stdout, stderr, ms: Date.now() - started });
    });
  });

/**
 * Runs `infra/local/<script> ...args` from this checkout (with `env` over the test's own) and
 * resolves to what it printed on stdout; rejects with its stderr when it fails.
 */
export const runLocalInfraScript = async (
  script: string,
  args: readonly string[],
  env: Record<string, string> = {},
): Promise<string> => {
  const path = fileURLToPath(new URL(`../../infra/local/${script}`, import.meta.url));
  const { code, stdout, stderr } = await runCommand('bash', [path, ...args], env);
  if (code !== 0)
    throw new Error(`infra/local/${script} ${args.join(' ')} exited with ${code}: ${stderr.trim()}`);
  return stdout;
};
