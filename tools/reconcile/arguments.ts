import { parseArgs } from 'node:util';
import type { ReconcileWindow } from '../../services/processor/src/reconcile/index.ts';
import { ReprocessError, parseWindow } from '../reprocess/index.ts';

export const USAGE =
  'usage: npm run reconcile -- --org ORG_ID [--since 2h|2026-11-30T10:00:00Z|EPOCH_MS (default 1h)] [--until ... (default now)] [--dry-run]';

export const HELP = `${USAGE}

Reconciles one organisation with HubSpot now, as the processor's reconciler does on its interval:
lists the threads active in the window and their messages, and writes every message the rules
would act on that the processor never handled (its webhook lost) to the raw topic, as its
webhook would have been (header reconciled: 1). The processor then handles it like any webhook;
a message that arrives both ways is applied once.

  --org       the organisation (its HubSpot token from the orgs topic)
  --since     where the window starts: an ISO date, epoch ms, or a duration back from now (default 1h)
  --until     where it ends (default now)
  --dry-run   list the messages it would write (message, thread, created, text); write nothing

It takes the organisation's reconcile lease while it writes (a dry run does not), so no replica
reconciles the organisation meanwhile. It never moves the organisation's watermark (how far the
scheduled reconciler checked): the next scheduled run checks its own window as before.
It needs the processor's environment (KAFKA_*, SCHEMA_REGISTRY_URL, REDIS_*, SECRETS_KEY, HUBSPOT_*).
Exit codes: 0 done, 1 an outside system failed (or the organisation cannot be reconciled),
2 bad usage, 75 another reconcile of the organisation holds its lease (try again once it ends).`;

/** A window an operator gives when --since is left out: what a first scheduled run checks. */
const DEFAULT_SINCE = '1h';

export type ReconcileCommand = {
  readonly orgId: string;
  readonly window: ReconcileWindow;
  readonly dryRun: boolean;
};

import { UsageError } from '../command-line.ts';

export { UsageError };

export const parseCommand = (argv: readonly string[], now: number): ReconcileCommand | 'help' => {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      strict: true,
      allowPositionals: false,
      options: {
        org: { type: 'string' },
        since: { type: 'string' },
        until: { type: 'string' },
        'dry-run': { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (error) {
    // node's own wording is long: keep its first sentence.
    const message = error instanceof Error ? error.message : String(error);
    throw new UsageError(message.split(/\. /)[0] ?? message);
  }
  const { values } = parsed;
  if (values.help) return 'help';
  if (!values.org) throw new UsageError('--org is required: the organisation to reconcile');
  try {
    const window = parseWindow(values.since ?? DEFAULT_SINCE, values.until, now);
    return {
      orgId: values.org,
      window: { from: window.since, to: window.until ?? now },
      dryRun: values['dry-run'] === true,
    };
  } catch (error) {
    if (error instanceof ReprocessError) throw new UsageError(error.message);
    throw error;
  }
};
