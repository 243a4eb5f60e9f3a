// Reads a V8 CPU profile (`node --cpu-prof` writes one .cpuprofile per process at exit) and says
// where the time went: the top self-time frames, and the share of busy time per library
// (kafkajs, Avro, JSON, logging, ...). Idle time is left out of every share: a profile of a
// server covers its whole life, and only the busy part says what a request costs.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

type CallFrame = {
  readonly functionName: string;
  readonly url: string;
  readonly lineNumber: number;
  readonly columnNumber: number;
};
type ProfileNode = {
  readonly id: number;
  readonly callFrame: CallFrame;
  readonly children?: readonly number[];
};
export type CpuProfile = {
  readonly nodes: readonly ProfileNode[];
  readonly startTime: number;
  readonly endTime: number;
  readonly samples: readonly number[];
  /** Microseconds from the previous sample (the first: from startTime). */
  readonly timeDeltas: readonly number[];
};

export type Frame = { readonly frame: string; readonly category: string; readonly selfMs: number };
export type ProfileSummary = {
  /** Sampled time that was not idle. */
  readonly busyMs: number;
  readonly idleMs: number;
  readonly frames: readonly Frame[];
  /** Busy time per category of the frame itself, largest first. */
  readonly categories: readonly { readonly category: string; readonly ms: number }[];
  /**
   * Busy time per owner: time in Node's own code or native code (socket writes, Buffer
   * allocation) is charged to the nearest library or project frame that called it, so kafkajs's
   * socket writes count as kafkajs and koa's response writes as koa.
   */
  readonly owners: readonly { readonly category: string; readonly ms: number }[];
};

/** Categories that are not an owner: their time goes to the nearest caller that is one. */
const UNOWNED = new Set(['native other', 'node other', 'node http/net/streams']);

/**
 * Where a frame belongs. Order matters: a library's own files first, then V8's pseudo-frames,
 * then native builtins by name (JSON.parse and JSON.stringify show as `parse` / `stringify`
 * with no url).
 */
const CATEGORIES: readonly (readonly [string, (frame: CallFrame) => boolean])[] = [
  ['idle', (f) => f.functionName === '(idle)'],
  ['gc', (f) => f.functionName === '(garbage collector)'],
  ['program (V8/native, unattributed)', (f) => f.functionName === '(program)'],
  ['kafkajs', (f) => f.url.includes('/node_modules/kafkajs/')],
  [
    'avro (avsc, schema registry)',
    (f) => /\/node_modules\/(avsc|@kafkajs\/confluent-schema-registry)\//.test(f.url),
  ],
  [
    'logging (pino)',
    (f) => /\/node_modules\/(pino|sonic-boom|thread-stream|fast-redact|quick-format)/.test(f.url),
  ],
  ['zod', (f) => f.url.includes('/node_modules/zod/')],
  ['metrics (prom-client)', (f) => f.url.includes('/node_modules/prom-client/')],
  [
    'koa + router + raw-body',
    (f) =>
      /\/node_modules\/(koa|@koa|raw-body|koa-compose|on-finished|http-errors|statuses|content-type|type-is|mime|accepts|cookies|delegates|vary|destroy|iconv-lite)/.test(
        f.url,
      ),
  ],
  [
    'redis (ioredis)',
    (f) =>
      /\/node_modules\/(ioredis|@ioredis|redis-errors|redis-parser|standard-as-callback|cluster-key-slot|denque)\//.test(
        f.url,
      ),
  ],
  [
    'http client (undici)',
    (f) => f.url.includes('/node_modules/undici/') || f.url.includes('internal/deps/undici'),
  ],
  ['other npm', (f) => f.url.includes('/node_modules/')],
  [
    'json (native parse/stringify)',
    (f) => f.url === '' && /^(parse|stringify|JSONParse|JSONStringify)$/.test(f.functionName),
  ],
  [
    'crypto (HMAC, hashing)',
    (f) =>
      /crypto/.test(f.url) || (f.url === '' && /^(digest|update|timingSafeEqual|Hmac)$/.test(f.functionName)),
  ],
  [
    'node http/net/streams',
    (f) => /^node:(internal\/)?(_http|http|net|stream|internal\/streams|internal\/stream_base)/.test(f.url),
  ],
  ['node other', (f) => f.url.startsWith('node:')],
  ['project code', (f) => /\/(services|lib|bench|test)\//.test(f.url)],
  ['native other', () => true],
];

export const categoryOf = (frame: CallFrame): string =>
  CATEGORIES.find(([, matches]) => matches(frame))?.[0] ?? 'native other';

const shortUrl = (url: string): string => {
  const nodeModules = url.lastIndexOf('/node_modules/');
  if (nodeModules >= 0) return url.slice(nodeModules + '/node_modules/'.length);
  const project = /\/(services|lib|bench|test)\/.*$/.exec(url);
  if (project) return project[0].slice(1);
  return url.replace(/^file:\/\//, '');
};

const frameName = (frame: CallFrame): string => {
  const name = frame.functionName || '(anonymous)';
  return frame.url === '' ? name : `${name} ${shortUrl(frame.url)}:${frame.lineNumber + 1}`;
};

/**
 * Self time per frame (summed over the call paths that reach it) and per category; with
 * `skipFirstMs`, only the samples taken that long after the profile started (start-up and a
 * warm-up left out).
 */
export const summariseProfile = (
  profile: CpuProfile,
  options: { readonly skipFirstMs?: number } = {},
): ProfileSummary => {
  const byId = new Map(profile.nodes.map((node) => [node.id, node.callFrame]));
  const parentOf = new Map<number, number>();
  for (const node of profile.nodes) for (const child of node.children ?? []) parentOf.set(child, node.id);
  const ownerOf = (id: number, own: string): string => {
    if (!UNOWNED.has(own)) return own;
    for (let current = parentOf.get(id); current !== undefined; current = parentOf.get(current)) {
      const frame = byId.get(current);
      const category = frame ? categoryOf(frame) : 'native other';
      if (!UNOWNED.has(category) && category !== 'program (V8/native, unattributed)') return category;
    }
    return own;
  };
  const owners = new Map<string, number>();
  const selfUs = new Map<number, number>();
  // A sample lasts until the next one (as Chrome's DevTools counts it).
  const skipUs = (options.skipFirstMs ?? 0) * 1000;
  let sinceStartUs = 0;
  for (let index = 0; index < profile.samples.length; index++) {
    sinceStartUs += profile.timeDeltas[index] ?? 0;
    if (sinceStartUs < skipUs) continue;
    const id = profile.samples[index] ?? 0;
    const duration = profile.timeDeltas[index + 1] ?? 0;
    selfUs.set(id, (selfUs.get(id) ?? 0) + Math.max(0, duration));
  }
  const frames = new Map<string, { category: string; us: number }>();
  const categories = new Map<string, number>();
  let idleUs = 0;
  let busyUs = 0;
  for (const [id, us] of selfUs) {
    const callFrame = byId.get(id);
    if (!callFrame) continue;
    const category = categoryOf(callFrame);
    if (category === 'idle') {
      idleUs += us;
      continue;
    }
    busyUs += us;
    categories.set(category, (categories.get(category) ?? 0) + us);
    const owner = ownerOf(id, category);
    owners.set(owner, (owners.get(owner) ?? 0) + us);
    const name = frameName(callFrame);
    const entry = frames.get(name) ?? { category, us: 0 };
    entry.us += us;
    frames.set(name, entry);
  }
  return {
    busyMs: busyUs / 1000,
    idleMs: idleUs / 1000,
    frames: [...frames]
      .map(([frame, { category, us }]) => ({ frame, category, selfMs: us / 1000 }))
      .sort((a, b) => b.selfMs - a.selfMs),
    categories: [...categories]
      .map(([category, us]) => ({ category, ms: us / 1000 }))
      .sort((a, b) => b.ms - a.ms),
    owners: [...owners].map(([category, us]) => ({ category, ms: us / 1000 })).sort((a, b) => b.ms - a.ms),
  };
};

/** The newest .cpuprofile in a directory (the child writes it when it exits). */
export const readNewestProfile = (directory: string): { file: string; profile: CpuProfile } => {
  const files = readdirSync(directory)
    .filter((name) => name.endsWith('.cpuprofile'))
    .sort();
  const newest = files.at(-1);
  if (newest === undefined)
    throw new Error(
      `no .cpuprofile in ${directory}: the profiled process must exit normally (SIGTERM), not be killed`,
    );
  const file = join(directory, newest);
  return { file, profile: JSON.parse(readFileSync(file, 'utf8')) as CpuProfile };
};

/** The top `count` self-time frames and the category shares, as printable rows. */
export const profileRows = (
  summary: ProfileSummary,
  count = 15,
): {
  frames: Record<string, string>[];
  /** Per owner (nearest library or project caller), with the category's own self time beside it. */
  categories: Record<string, string>[];
} => {
  const share = (ms: number): string => `${((100 * ms) / Math.max(1, summary.busyMs)).toFixed(1)} %`;
  return {
    frames: summary.frames.slice(0, count).map((frame, index) => ({
      '#': String(index + 1),
      'self ms': frame.selfMs.toFixed(0),
      'of busy': share(frame.selfMs),
      category: frame.category,
      frame: frame.frame,
    })),
    categories: summary.owners.map((entry) => ({
      'charged to': entry.category,
      ms: entry.ms.toFixed(0),
      'of busy': share(entry.ms),
      'self only': share(summary.categories.find((own) => own.category === entry.category)?.ms ?? 0),
    })),
  };
};

// `node bench/profile.ts <file-or-directory> [count]`: the same summary for any saved profile.
if (process.argv[1]?.endsWith('bench/profile.ts') && process.argv[2] !== undefined) {
  const target = process.argv[2];
  const { file, profile } = target.endsWith('.cpuprofile')
    ? { file: target, profile: JSON.parse(readFileSync(target, 'utf8')) as CpuProfile }
    : readNewestProfile(target);
  const summary = summariseProfile(profile);
  const rows = profileRows(summary, Number(process.argv[3] ?? 15));
  console.log(`${file}: busy ${summary.busyMs.toFixed(0)} ms, idle ${summary.idleMs.toFixed(0)} ms`);
  console.table(rows.frames);
  console.table(rows.categories);
}
