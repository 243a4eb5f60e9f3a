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
