/**
 * Progress on stderr while a reconcile runs: a live line on a terminal (cli-progress), else a
 * line every few seconds and one at the end, so a log of the run shows it was moving. How many
 * threads a window holds is known only once HubSpot's list is paged through: counts, not a bar.
 */
import { SingleBar } from 'cli-progress';
import { counts } from './report.ts';
import type { ReconcileProgress } from './run.ts';

/** Off a terminal, a line at most this often. */
export const PROGRESS_LINE_MS = 5000;

export type ProgressOutput = {
  readonly err: (text: string) => void;
  readonly isTTY: boolean;
};

export const progressReporter = (
  output: ProgressOutput,
  now: () => number = Date.now,
): { readonly update: (progress: ReconcileProgress) => void; readonly stop: () => void } => {
  let last: ReconcileProgress | undefined;
  let lineAt = now();
  const bar = output.isTTY
    ? new SingleBar({
        stream: process.stderr,
        format:
          'reconciling: {threads} threads, {messages} messages read, {gaps} gaps ({duration_formatted})',
        hideCursor: null,
        noTTYOutput: false,
      })
    : undefined;
  bar?.start(0, 0, { threads: 0, messages: 0, gaps: 0 });
  return {
    update: (progress) => {
      last = progress;
      if (bar) {
        bar.update(0, { threads: progress.threads, messages: progress.messages, gaps: progress.gaps });
        return;
      }
      if (now() - lineAt < PROGRESS_LINE_MS) return;
      lineAt = now();
      output.err(`reconcile: ${counts(progress)}\n`);
    },
    stop: () => {
      bar?.stop();
      if (!bar && last) output.err(`reconcile: ${counts(last)}\n`);
    },
  };
};
