import { parseArgs } from 'node:util';
import { z } from 'zod';
import { commonEnv, type loadConfig } from '../../lib/config.ts';
import { parseSince, type DeadLetterFilter } from '../../lib/dead-letters/index.ts';
import { DEFAULT_REPLAY_RATE } from './paced-replay.ts';

export const USAGE = [
  'usage: npm run dlq -- list|replay [--org ORG_ID] [--since 2h|2024-05-01T00:00:00Z|EPOCH_MS] [--reason REASON] [--limit N] [--json]',
  `       npm run dlq -- replay [filters] [--dry-run] [--rate LETTERS_PER_SECOND (default ${DEFAULT_REPLAY_RATE})]`,
  '       npm run dlq -- show ID [--json]   (ID: the id= of a listed letter, or its first 8+ characters)',
].join('\n');

export type DlqCommand =
  | { readonly command: 'list'; readonly filter: DeadLetterFilter; readonly json: boolean }
  | {
      readonly command: 'replay';
      readonly filter: DeadLetterFilter;
      readonly json: boolean;
      readonly dryRun: boolean;
      readonly ratePerSecond: number;
    }
  | { readonly command: 'show'; readonly id: string; readonly json: boolean }
  | { readonly command: 'help' };

/** Bad usage: its message names the first thing wrong (exit code 2). */
export class UsageError extends Error {}

/** argv (after the script name) → what to do; a UsageError names the first thing wrong. */
export const parseCommand = (argv: readonly string[], now: number): DlqCommand => {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      allowPositionals: true,
      strict: true,
      options: {
        org: { type: 'string' },
        since: { type: 'string' },
        reason: { type: 'string' },
        limit: { type: 'string' },
        json: { type: 'boolean' },
        'dry-run': { type: 'boolean' },
        rate: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (error) {
    // node's own wording is long ("To specify a positional argument starting with a '-' ..."): keep its first sentence.
    const message = error instanceof Error ? error.message : String(error);
    throw new UsageError(message.split(/\. /)[0] ?? message);
  }
  const { values, positionals } = parsed;
  if (values.help) return { command: 'help' };
  const [command, ...extra] = positionals;
  if (command !== 'list' && command !== 'replay' && command !== 'show')
    throw new UsageError(
      command === undefined
        ? 'missing command: list, replay or show'
        : `unknown command "${command}": list, replay or show`,
    );
  const json = values.json === true;
  if (command !== 'replay') {
    for (const name of ['dry-run', 'rate'] as const)
      if (values[name] !== undefined) throw new UsageError(`--${name} is for replay only`);
  }
  if (command === 'show') {
    const [id, ...more] = extra;
    if (id === undefined) throw new UsageError('show needs the id of a letter (the id= column of list)');
    if (more.length > 0) throw new UsageError(`unexpected argument "${more.join(' ')}"`);
    if (!/^[0-9a-f]{8,32}$/.test(id))
      throw new UsageError(`"${id}" is not a letter id: 8 to 32 hex characters, as list prints after id=`);
    for (const name of ['org', 'since', 'reason', 'limit'] as const)
      if (values[name] !== undefined) throw new UsageError(`--${name} is for list and replay, not show`);
    return { command, id, json };
  }
  if (extra.length > 0) throw new UsageError(`unexpected argument "${extra.join(' ')}"`);
  const since = values.since === undefined ? undefined : parseSince(values.since, now);
  if (values.since !== undefined && since === undefined)
    throw new UsageError(
      `--since "${values.since}" is not an ISO date, epoch milliseconds or a duration like 2h`,
    );
  if (values.limit !== undefined && !/^[1-9]\d*$/.test(values.limit))
    throw new UsageError(`--limit "${values.limit}" is not a positive whole number`);
  for (const name of ['org', 'reason'] as const) {
    if (values[name] === '') throw new UsageError(`--${name} needs a value`);
  }
  if (values.rate !== undefined && !(/^\d+(\.\d+)?$/.test(values.rate) && Number(values.rate) > 0))
    throw new UsageError(`--rate "${values.rate}" is not a number of letters per second above 0`);
  const filter: DeadLetterFilter = {
    ...(values.org === undefined ? {} : { orgId: values.org }),
    ...(since === undefined ? {} : { since }),
    ...(values.reason === undefined ? {} : { reason: values.reason }),
    ...(values.limit === undefined ? {} : { limit: Number(values.limit) }),
  };
  if (command === 'list') return { command, filter, json };
  return {
    command,
    filter,
    json,
    dryRun: values['dry-run'] === true,
    ratePerSecond: values.rate === undefined ? DEFAULT_REPLAY_RATE : Number(values.rate),
  };
};

export const dlqEnv = { ...commonEnv, METRICS_PORT: z.coerce.number().int().min(0).max(65535).optional() };
export type DlqConfig = ReturnType<typeof loadConfig<typeof dlqEnv>>;
