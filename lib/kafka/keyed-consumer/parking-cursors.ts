import { firstUnfinished, type CommitPoint, type Tracked } from './offset-tracking.ts';

/**
 * Parked tenants' cursors, carried in the metadata of the partition's committed offset (atomic
 * with the offset, in Kafka): for each tenant, the offset its messages must be read again from,
 * and since when it has waited with nothing handled. Nothing parked is kept anywhere else, so
 * whoever owns the partition next reads the tenant again from here. No I/O, no clock.
 */

/** Kafka refuses commit metadata over offset.metadata.max.bytes (4096 by default). */
export const MAX_CURSOR_METADATA_CHARS = 3500;
/** What `{"v":1,"p":[]}` and its slack take before the first cursor. */
const ENVELOPE_CHARS = 20;

type CursorMetadata = { v: 1; p: [tenant: string, from: string, since: number][] };

export type ParkedCursor = { readonly tenant: string; readonly from: bigint; readonly since: number };

/** A running re-read of parked tenants, as far as their cursors are concerned. */
export type ReplayProgress = {
  /** Tenant → the offset its parked messages start at. */
  readonly tenants: ReadonlyMap<string, bigint>;
  /** Messages handed to the queues, in offset order. */
  readonly entries: readonly Tracked[];
  readonly reading: boolean;
  /** The next offset the reader expects. */
  readonly position: bigint;
};

const byOffset = ([, a]: [string, bigint], [, b]: [string, bigint]): number => (a < b ? -1 : a > b ? 1 : 0);

/**
 * Each parked tenant's cursor: where its messages must be read again from after a restart. A
 * tenant being read again stands at the replay's first unfinished message or where the replay
 * reads, whichever is lower, and never before its own cursor.
 */
export const cursorsOf = (
  parked: ReadonlyMap<string, { readonly from: bigint }>,
  replay: ReplayProgress | undefined,
): Map<string, bigint> => {
  const cursors = new Map<string, bigint>();
  for (const [tenant, { from }] of parked) cursors.set(tenant, from);
  if (!replay) return cursors;
  const unfinished = firstUnfinished(replay.entries);
  const reading = replay.reading ? replay.position : undefined;
  const low =
    unfinished === undefined ? reading : reading === undefined || unfinished < reading ? unfinished : reading;
  if (low === undefined) return cursors;
  for (const [tenant, from] of replay.tenants) {
    const cursor = low > from ? low : from;
    const earlier = cursors.get(tenant);
    cursors.set(tenant, earlier === undefined || cursor < earlier ? cursor : earlier);
  }
  return cursors;
};

/**
 * The offset to commit for a partition whose finished messages end at `next`, and the metadata
 * that goes with it. Cursors that do not fit in the metadata (the lowest are kept) hold the
 * offset back instead: the live stream redelivers those tenants' messages, in order.
 */
export const cursorCommitPoint = (
  next: bigint,
  cursors: ReadonlyMap<string, bigint>,
  waitingSince: ReadonlyMap<string, number>,
  now: number,
): CommitPoint => {
  if (cursors.size === 0) return { offset: next, metadata: null };
  const kept: CursorMetadata['p'] = [];
  let offset = next;
  let size = ENVELOPE_CHARS;
  for (const [tenant, from] of [...cursors].sort(byOffset)) {
    const entry: CursorMetadata['p'][number] = [tenant, from.toString(), waitingSince.get(tenant) ?? now];
    size += JSON.stringify(entry).length + 1;
    if (size > MAX_CURSOR_METADATA_CHARS) {
      if (from < offset) offset = from;
      break;
    }
    kept.push(entry);
  }
  return { offset, metadata: JSON.stringify({ v: 1, p: kept } satisfies CursorMetadata) };
};

/**
 * The cursors a committed offset's metadata carries: none when it has none or is of another
 * version, 'foreign' when it is not ours (not JSON, or not an object).
 */
export const decodeCursors = (metadata: string | null): ParkedCursor[] | 'foreign' => {
  if (!metadata) return [];
  let parsed: unknown;
  try {
    parsed = JSON.parse(metadata);
  } catch {
    return 'foreign';
  }
  if (typeof parsed !== 'object' || parsed === null) return 'foreign';
  const { v, p } = parsed as Partial<CursorMetadata>;
  if (v !== 1 || !Array.isArray(p)) return [];
  return p.map(([tenant, from, since]) => ({ tenant, from: BigInt(from), since }));
};
