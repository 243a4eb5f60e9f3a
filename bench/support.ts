// What the benchmarks share: the broker/registry/Redis they run on, random prefixes and their
// clean-up, order statistics, Prometheus scraping and the printed tables. Benchmarks print
// figures; nothing here asserts a time.
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Kafka, logLevel } from 'kafkajs';
import { Redis } from 'ioredis';
import { loadConsoleConfig } from '../services/console/src/config.ts';
import { startConsole } from '../services/console/src/main.ts';
import { waitFor } from '../test/support/pipeline.ts';

/** The infrastructure, from the environment as the services read it, defaulting to the local stack. */
export const benchInfra = (): { kafkaBrokers: string; schemaRegistryUrl: string; redisUrl: string } => {
  const infra = {
    kafkaBrokers: process.env.KAFKA_BROKERS ?? '127.0.0.1:9092',
    schemaRegistryUrl: process.env.SCHEMA_REGISTRY_URL ?? 'http://127.0.0.1:8081/apis/ccompat/v7',
    redisUrl: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379',
  };
  // test/support/pipeline.ts reads these from process.env.
  process.env.KAFKA_BROKERS = infra.kafkaBrokers;
  process.env.SCHEMA_REGISTRY_URL = infra.schemaRegistryUrl;
  process.env.REDIS_URL = infra.redisUrl;
  return infra;
};

/** A run's own topic and Redis key prefixes, so runs never see each other's data. */
export const newRunPrefixes = (
  bench: string,
): { runId: string; topicPrefix: string; redisPrefix: string } => {
  const runId = randomBytes(4).toString('hex');
  return { runId, topicPrefix: `bench-${bench}-${runId}-`, redisPrefix: `bench:${bench}:${runId}:` };
};

/** An integer from the environment (BENCH_*), or the default. */
export const envInt = (name: string, fallback: number): number => {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value < 0)
    throw new Error(`${name} must be a non-negative number, got ${raw}`);
  return Math.floor(value);
};

const started = performance.now();
/** A progress line with the seconds since the benchmark started. */
export const progress = (line: string): void => {
  console.log(`[${((performance.now() - started) / 1000).toFixed(1).padStart(6)} s] ${line}`);
};

/** CPU time (utime + stime) a process has used, in ms, from Linux's /proc (clock ticks of 10 ms). */
export const processCpuMs = (pid: number): number => {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name may hold spaces: the fields after it start after its closing parenthesis.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const CLOCK_TICKS_PER_S = 100;
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS_PER_S;
};

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export const median = (values: readonly number[]): number => {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1
    ? (sorted[middle] ?? Number.NaN)
    : ((sorted[middle - 1] ?? 0) + (sorted[middle] ?? 0)) / 2;
};

/** Nearest-rank percentile (p in 0..100) of raw samples. */
export const percentile = (values: readonly number[], p: number): number => {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length)));
  return sorted[rank - 1] ?? Number.NaN;
};

export const fmt = (value: number, digits = 0): string =>
  Number.isFinite(value) ? value.toFixed(digits) : 'n/a';

/** Prints rows as an aligned table under a title. */
export const printTable = (title: string, rows: readonly Record<string, string | number>[]): void => {
  console.log(`\n${title}`);
  const first = rows[0];
  if (!first) return;
  const columns = Object.keys(first);
  const cell = (row: Record<string, string | number>, column: string): string => String(row[column] ?? '');
  const widths = columns.map((column) =>
    Math.max(column.length, ...rows.map((row) => cell(row, column).length)),
  );
  const line = (values: readonly string[]): string =>
    values.map((value, index) => value.padEnd(widths[index] ?? 0)).join(' | ');
  console.log(line(columns));
  console.log(widths.map((width) => '-'.repeat(width)).join('-|-'));
  for (const row of rows) console.log(line(columns.map((column) => cell(row, column))));
};

/** Polls until `check` gives a value, or throws naming what it waited for (the test harness's). */
export const waitUntil = waitFor;

// Prometheus text format -------------------------------------------------------------------------

export type Sample = {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
};

export const parsePrometheus = (text: string): Sample[] => {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const match = /^([A-Za-z_:][A-Za-z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!match) continue;
    const labels: Record<string, string> = {};
    for (const pair of (match[2] ?? '').matchAll(/([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"/g))
      labels[pair[1] ?? ''] = pair[2] ?? '';
    samples.push({ name: match[1] ?? '', labels, value: Number(match[3]) });
  }
  return samples;
};

export const scrape = async (metricsPort: number): Promise<Sample[]> => {
  const response = await fetch(`http://127.0.0.1:${metricsPort}/metrics`);
  return parsePrometheus(await response.text());
};

/** Sum of a counter's samples whose labels include `where`. */
export const sumOf = (
  samples: readonly Sample[],
  name: string,
  where: Readonly<Record<string, string>> = {},
): number =>
  samples
    .filter(
      (sample) =>
        sample.name === name && Object.entries(where).every(([key, value]) => sample.labels[key] === value),
    )
    .reduce((total, sample) => total + sample.value, 0);

/**
 * A quantile (0..1) from a Prometheus histogram, summed over its series, interpolated linearly
 * inside the bucket as histogram_quantile() does: only as precise as the buckets.
 */
export const histogramQuantile = (samples: readonly Sample[], name: string, q: number): number => {
  const byBound = new Map<number, number>();
  for (const sample of samples) {
    if (sample.name !== `${name}_bucket`) continue;
    const bound = sample.labels.le === '+Inf' ? Number.POSITIVE_INFINITY : Number(sample.labels.le);
    byBound.set(bound, (byBound.get(bound) ?? 0) + sample.value);
  }
  const buckets = [...byBound].sort(([a], [b]) => a - b);
  const total = buckets.at(-1)?.[1] ?? 0;
  if (total === 0) return Number.NaN;
  const rank = q * total;
  let previousBound = 0;
  let previousCount = 0;
  for (const [bound, count] of buckets) {
    if (count >= rank) {
      if (!Number.isFinite(bound)) return previousBound;
      return (
        previousBound +
        ((bound - previousBound) * (rank - previousCount)) / Math.max(1, count - previousCount)
      );
    }
    previousBound = bound;
    previousCount = count;
  }
  return previousBound;
};

/** The bucket (its upper bound; Infinity for the last) that holds quantile q: what the histogram can actually tell. */
export const histogramBucketBound = (samples: readonly Sample[], name: string, q: number): number => {
  const byBound = new Map<number, number>();
  for (const sample of samples) {
    if (sample.name !== `${name}_bucket`) continue;
    const bound = sample.labels.le === '+Inf' ? Number.POSITIVE_INFINITY : Number(sample.labels.le);
    byBound.set(bound, (byBound.get(bound) ?? 0) + sample.value);
  }
  const buckets = [...byBound].sort(([a], [b]) => a - b);
  const total = buckets.at(-1)?.[1] ?? 0;
  return buckets.find(([, count]) => total > 0 && count >= q * total)?.[0] ?? Number.NaN;
};

/** How many observations of a histogram were above `bound` (which must be one of its buckets). */
export const histogramCountAbove = (samples: readonly Sample[], name: string, bound: number): number => {
  const at = (le: string): number => sumOf(samples, `${name}_bucket`, { le });
  return at('+Inf') - at(String(bound));
};

// Kafka ------------------------------------------------------------------------------------------

export const benchKafka = (brokers: string, clientId: string): Kafka =>
  new Kafka({
    clientId,
    brokers: brokers.split(','),
    logLevel: logLevel.NOTHING,
    retry: { retries: 5, initialRetryTime: 100 },
  });

/** Records on a topic (sum of high watermarks: the topics are fresh, nothing is deleted). */
export const topicRecordCount = async (kafka: Kafka, topic: string): Promise<number> => {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const offsets = await admin.fetchTopicOffsets(topic);
    return offsets.reduce((total, { high, low }) => total + Number(high) - Number(low), 0);
  } finally {
    await admin.disconnect();
  }
};

// Clean-up: only this run's own prefix, never anything else ----------------------------------------

/** Deletes every Redis key under `prefix` (SCAN + UNLINK; never FLUSHDB). Returns how many. */
export const deleteRedisKeys = async (redisUrl: string, prefix: string): Promise<number> => {
  if (prefix.length < 8) throw new Error(`refusing to delete Redis keys under the short prefix "${prefix}"`);
  const redis = new Redis(redisUrl, { lazyConnect: false, maxRetriesPerRequest: 3 });
  const pattern = `${prefix.replace(/[*?[\]\\]/g, '\\$&')}*`;
  let deleted = 0;
  try {
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
      cursor = next;
      if (keys.length > 0) deleted += await redis.unlink(...keys);
    } while (cursor !== '0');
  } finally {
    redis.disconnect();
  }
  return deleted;
};

/** Deletes the topics under `prefix` and the consumer groups named after it. */
export const deleteKafkaPrefix = async (brokers: string, prefix: string): Promise<void> => {
  if (!prefix.startsWith('bench-')) throw new Error(`refusing to delete Kafka topics under "${prefix}"`);
  const admin = benchKafka(brokers, 'bench-cleanup').admin();
  await admin.connect();
  try {
    const topics = (await admin.listTopics()).filter((topic) => topic.startsWith(prefix));
    if (topics.length > 0) await admin.deleteTopics({ topics, timeout: 10000 });
    const groups = (await admin.listGroups()).groups
      .map((group) => group.groupId)
      .filter((group) => group.startsWith(prefix));
    if (groups.length > 0) await admin.deleteGroups(groups).catch(() => undefined);
  } finally {
    await admin.disconnect();
  }
};

/** Deletes the schema-registry subjects the run registered (best effort: soft, then permanent). */
export const deleteSchemaSubjects = async (registryUrl: string, prefix: string): Promise<void> => {
  if (!prefix.startsWith('bench-')) throw new Error(`refusing to delete subjects under "${prefix}"`);
  const base = registryUrl.replace(/\/$/, '');
  const subjects = (await (await fetch(`${base}/subjects`)).json()) as string[];
  for (const subject of subjects.filter((name) => name.startsWith(prefix))) {
    const url = `${base}/subjects/${encodeURIComponent(subject)}`;
    await fetch(url, { method: 'DELETE' }).catch(() => undefined);
    await fetch(`${url}?permanent=true`, { method: 'DELETE' }).catch(() => undefined);
  }
};

/** Everything a run left under its prefixes. */
export const cleanUpRun = async (
  infra: ReturnType<typeof benchInfra>,
  prefixes: { topicPrefix: string; redisPrefix: string },
): Promise<void> => {
  const results = await Promise.allSettled([
    deleteRedisKeys(infra.redisUrl, prefixes.redisPrefix),
    deleteKafkaPrefix(infra.kafkaBrokers, prefixes.topicPrefix),
    deleteSchemaSubjects(infra.schemaRegistryUrl, prefixes.topicPrefix),
  ]);
  for (const result of results)
    if (result.status === 'rejected') progress(`clean-up problem (ignored): ${String(result.reason)}`);
};

/** Env for startTestPipeline: this run's prefixes, quiet logs unless BENCH_LOG_LEVEL is set. */
export const pipelineEnv = (
  prefixes: { topicPrefix: string; redisPrefix: string },
  extra: Record<string, string> = {},
): Record<string, string> => ({
  KAFKA_TOPIC_PREFIX: prefixes.topicPrefix,
  REDIS_KEY_PREFIX: prefixes.redisPrefix,
  LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? 'silent',
  ...extra,
});

/**
 * Runs one measurement; when it fails (other engineers' test runs may restart the local broker
 * or registry), says so, waits for the infrastructure to answer again and tries once more. A
 * retried run is reported, never hidden.
 */
export const measureWithOneRetry = async <T>(label: string, run: () => Promise<T>): Promise<T> => {
  try {
    return await run();
  } catch (error) {
    progress(
      `${label}: FAILED (${error instanceof Error ? error.message : String(error)}); waiting for Kafka and the registry, then retrying once`,
    );
    const infra = benchInfra();
    await waitUntil(
      'Kafka and the schema registry to answer',
      async () => {
        try {
          const admin = benchKafka(infra.kafkaBrokers, 'bench-probe').admin();
          await admin.connect();
          await admin.listTopics();
          await admin.disconnect();
          return (await fetch(`${infra.schemaRegistryUrl.replace(/\/$/, '')}/subjects`)).ok;
        } catch {
          return false;
        }
      },
      180_000,
      2000,
    );
    return run();
  }
};

/** HubSpot requests the fake recorded, counted by the pipeline's purpose: "refetch_message=100 note=100 …". */
export const hubspotCallsByPurpose = (
  requests: readonly {
    readonly method: string;
    readonly path: string;
    readonly query: Record<string, string>;
  }[],
): string => {
  const purposeOf = ({ method, path, query }: (typeof requests)[number]): string => {
    if (method === 'POST') return 'post_reply';
    if (query.association === 'TICKET') return 'ticket_lookup';
    if (path.startsWith('/crm/v3/objects/notes/')) return 'note';
    if (/\/messages\/[^/]+$/.test(path)) return 'refetch_message';
    if (path.endsWith('/messages')) return 'thread_history';
    return `${method} ${path}`;
  };
  const calls = new Map<string, number>();
  for (const request of requests) calls.set(purposeOf(request), (calls.get(purposeOf(request)) ?? 0) + 1);
  return [...calls].map(([purpose, n]) => `${purpose}=${n}`).join(' ');
};

/**
 * Registers organisations through a console of this process's own (the admin API lives on the
 * console service, not on ingest), with the services' environment (the same SECRETS_KEY), then
 * stops it. The services learn of the organisations through the orgs topic.
 */
export const withConsole = async <T>(
  env: Record<string, string>,
  use: (consoleUrl: string) => Promise<T>,
): Promise<T> => {
  const running = await startConsole(
    loadConsoleConfig({ ...env, PORT: '0', METRICS_PORT: '0', LOG_LEVEL: 'silent' }),
  );
  try {
    return await use(`http://127.0.0.1:${running.port}`);
  } finally {
    await running.stop();
  }
};
