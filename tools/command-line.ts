/**
 * Runs an operator command as the process: its exit code becomes the process's, a failure it did
 * not turn into one is one line on stderr and exit 1. kafkajs or ioredis may keep a timer alive
 * once the work is done and the output written, so the process exits 2 s later regardless.
 */
export const exitWith = (name: string, run: Promise<number>): void => {
  run.then(
    (code) => {
      process.exitCode = code;
      setTimeout(() => process.exit(code), 2000).unref();
    },
    (error: unknown) => {
      process.stderr.write(`${name}: ${error instanceof Error ? error.message : String(error)}\n`);
      process.exit(1);
    },
  );
};

/** Bad usage: its message names the first thing wrong (exit code 2, with the usage line). */
export class UsageError extends Error {}

export type CommandOutput = {
  readonly out: (text: string) => void;
  readonly err: (text: string) => void;
  /** A progress bar on a terminal; plain lines otherwise. */
  readonly isTTY: boolean;
};

export const processOutput: CommandOutput = {
  out: (text) => void process.stdout.write(text),
  err: (text) => void process.stderr.write(text),
  isTTY: process.stderr.isTTY === true,
};

/**
 * What every operator command does first: its arguments parsed (bad usage: the message and the
 * usage line, exit 2), `--help` printed (exit 0), its configuration loaded (invalid: one line,
 * exit 1). The command and configuration to go on with, or the exit code.
 */
export const startCommand = <Command, Config>(
  name: string,
  argv: readonly string[],
  env: NodeJS.ProcessEnv,
  output: Pick<CommandOutput, 'out' | 'err'>,
  parts: {
    readonly parse: (argv: readonly string[], now: number) => Command | 'help';
    readonly usage: string;
    readonly help: string;
    readonly loadConfig: (env: NodeJS.ProcessEnv) => Config;
  },
): { readonly command: Command; readonly config: Config } | number => {
  let command: Command | 'help';
  try {
    command = parts.parse(argv, Date.now());
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    output.err(`${name}: ${error.message}\n${parts.usage}\n`);
    return 2;
  }
  if (command === 'help') {
    output.out(`${parts.help}\n`);
    return 0;
  }
  try {
    return { command, config: parts.loadConfig(env) };
  } catch (error) {
    output.err(`${name}: ${error instanceof Error ? error.message : String(error)}\n`);
    return 1;
  }
};
