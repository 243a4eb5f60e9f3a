import { fileURLToPath } from 'node:url';

/** True when `import.meta.url` is the file node was started with (the module is the entry point). */
export const isEntryPoint = (moduleUrl: string): boolean => process.argv[1] === fileURLToPath(moduleUrl);

export type RunningService = { readonly stop: () => Promise<void> };

/**
 * Runs a service as its own process: starts it, stops it gracefully on SIGTERM/SIGINT, and turns
 * a start-up failure into one clear line and exit code 1.
 */
export const runAsProcess = (name: string, start: () => Promise<RunningService>): void => {
  // One line, whatever the message holds: operators and supervisors read the last line.
  const say = (line: string): void =>
    void process.stderr.write(`${name}: ${line.replace(/\s*\n\s*/g, ' ')}\n`);
  // A synchronous throw (a bad variable, found while the config is read) is a start-up failure
  // like any other, not an uncaught exception with its stack trace.
  let started: Promise<RunningService>;
  try {
    started = start();
  } catch (error) {
    started = Promise.reject(error instanceof Error ? error : new Error(String(error)));
  }
  started.then(
    (service) => {
      let stopping = false;
      const shutdown = (signal: string): void => {
        if (stopping) return;
        stopping = true;
        say(`${signal}: stopping`);
        const force = setTimeout(() => process.exit(1), 15000);
        force.unref();
        service.stop().then(
          () => process.exit(0),
          (error: unknown) => {
            say(`did not stop cleanly: ${error instanceof Error ? error.message : String(error)}`);
            process.exit(1);
          },
        );
      };
      process.on('SIGTERM', () => shutdown('SIGTERM'));
      process.on('SIGINT', () => shutdown('SIGINT'));
    },
    (error: unknown) => {
      say(`cannot start: ${error instanceof Error ? error.message : String(error)}`);
      process.exit(1);
    },
  );
};
