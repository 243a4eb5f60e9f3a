/**
 * Fuzzing a REAL ingest (issue 7): BENCH_FUZZ_REQUESTS (100,000) requests from the same
 * generators as the unit property test (test/support/ingest-fuzz.ts): random methods, paths,
 * headers and bodies, validly signed or not, against startIngest on the real broker, registry
 * and Redis, with its own topic and key prefixes. Loopback only; BENCH_FUZZ_CONCURRENCY (16)
 * requests in flight; stops at BENCH_FUZZ_MAX_SECONDS (900) whatever the count.
 *
 * Prints progress, the status histogram, the property violations (none expected), and RSS and
 * heap before and after (each after a full GC: run with --expose-gc, as `npm run bench:fuzz`
 * does). Ingest and the client share this process, so the figures are the pair's.
 *
 *   npm run bench:fuzz
 */
import fc from 'fast-check';
import { createLogger } from '../lib/log.ts';
import { loadConsoleConfig } from '../services/console/src/config.ts';
import { startConsole } from '../services/console/src/main.ts';
import { loadIngestConfig } from '../services/ingest/src/config.ts';
import { startIngest } from '../services/ingest/src/main.ts';
import { OAUTH_SECRET, PRIVATE_SECRET } from '../test/support/ingest-app.ts';
import {
  checkAnswer,
  fuzzCases,
  keepAliveAgent,
  send,
  signedHeaders,
  type FuzzCase,
} from '../test/support/ingest-fuzz.ts';
import {
  benchInfra,
  cleanUpRun,
  envInt,
  fmt,
  newRunPrefixes,
  printTable,
  progress,
  waitUntil,
} from './support.ts';

const REQUESTS = envInt('BENCH_FUZZ_REQUESTS', 100_000);
const CONCURRENCY = envInt('BENCH_FUZZ_CONCURRENCY', 16);
const MAX_SECONDS = envInt('BENCH_FUZZ_MAX_SECONDS', 900);
const ADMIN_TOKEN = 'bench-fuzz-admin-token-0123456789';
const CHUNK = 1000;

const memory = (): { rssMiB: number; heapUsedMiB: number } => {
  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
  const usage = process.memoryUsage();
  return { rssMiB: usage.rss / 2 ** 20, heapUsedMiB: usage.heapUsed / 2 ** 20 };
};

const main = async (): Promise<void> => {
  const infra = benchInfra();
  if (!(globalThis as { gc?: unknown }).gc)
    progress('warning: no --expose-gc, memory is measured without a full GC first');
  const prefixes = newRunPrefixes('fuzz');
  const env = {
    KAFKA_BROKERS: infra.kafkaBrokers,
    SCHEMA_REGISTRY_URL: infra.schemaRegistryUrl,
    REDIS_URL: infra.redisUrl,
    KAFKA_TOPIC_PREFIX: prefixes.topicPrefix,
    REDIS_KEY_PREFIX: prefixes.redisPrefix,
    KAFKA_REPLICATION_FACTOR: '1',
    PORT: '0',
    NODE_ENV: 'test',
    HUBSPOT_CLIENT_ID: 'bench-client-id',
    HUBSPOT_CLIENT_SECRET: OAUTH_SECRET,
    ADMIN_TOKEN,
    HUBSPOT_API_BASE_URL: 'http://127.0.0.1:9',
  };
  const ingest = await startIngest(
    loadIngestConfig(env),
    createLogger('ingest', process.env.BENCH_LOG_LEVEL ?? 'silent'),
  );
  const base = `http://127.0.0.1:${ingest.port}`;
  const consoleService = await startConsole(
    loadConsoleConfig({ ...env, PORT: '0', INGEST_PUBLIC_URL: base }),
    createLogger('console', process.env.BENCH_LOG_LEVEL ?? 'silent'),
  );
  try {
    // The generators' private-app URL is /webhooks/hubspot/private/tok-123: a real org's stands in.
    const created = await fetch(`http://127.0.0.1:${consoleService.port}/admin/orgs/acme`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        hubspot: {
          portalId: 77,
          accessToken: 'pat-bench',
          privateAppClientSecret: PRIVATE_SECRET,
          aiActorId: 'A-1',
        },
        opencx: { apiKey: 'ocx-bench' },
        settings: { assistMode: false, ticketingEnabled: true },
      }),
    });
    if (created.status !== 201) throw new Error(`PUT /admin/orgs/acme answered ${created.status}`);
    const privatePath = new URL(((await created.json()) as { legacyWebhookUrl: string }).legacyWebhookUrl)
      .pathname;
    // Ingest learns of the organisation through the orgs topic.
    await waitUntil('ingest to know the organisation', () => ingest.orgs.stored('acme') !== undefined);
    const onRealIngest = (fuzzCase: FuzzCase): FuzzCase =>
      // A real Kafka cannot be made to fail on cue: the sink-failure cases run with a working sink.
      ({ ...fuzzCase, sinkFails: false });

    const before = memory();
    progress(
      `ingest on ${base}, topics ${prefixes.topicPrefix}*; ${REQUESTS} requests, ${CONCURRENCY} in flight; ` +
        `before: RSS ${fmt(before.rssMiB, 1)} MiB, heap ${fmt(before.heapUsedMiB, 1)} MiB`,
    );
    const agent = keepAliveAgent();
    const statuses = new Map<number, number>();
    const violations: string[] = [];
    let transportErrors = 0;
    let sent = 0;
    let seed = 7;
    const deadline = performance.now() + MAX_SECONDS * 1000;
    const started = performance.now();
    while (sent < REQUESTS && performance.now() < deadline) {
      const cases = fc
        .sample(fuzzCases(Date.now()), { numRuns: Math.min(CHUNK, REQUESTS - sent), seed: seed++ })
        .map(onRealIngest);
      let next = 0;
      const worker = async (): Promise<void> => {
        for (let index = next++; index < cases.length; index = next++) {
          const generated = cases[index];
          if (!generated) continue;
          const fuzzCase = generated.path.startsWith('/webhooks/hubspot/private/tok-123')
            ? { ...generated, path: generated.path.replace('/webhooks/hubspot/private/tok-123', privatePath) }
            : generated;
          const now = Date.now();
          const headers = signedHeaders(
            fuzzCase,
            base,
            { oauth: OAUTH_SECRET, privateApp: PRIVATE_SECRET },
            now,
          );
          try {
            const answer = await send(base, fuzzCase, headers, agent);
            statuses.set(answer.status, (statuses.get(answer.status) ?? 0) + 1);
            try {
              checkAnswer(
                {
                  ...fuzzCase,
                  path: fuzzCase.path.replace(privatePath, '/webhooks/hubspot/private/tok-123'),
                },
                answer,
                'unobserved',
                now,
              );
            } catch (error) {
              violations.push((error as Error).message.slice(0, 800));
            }
          } catch (error) {
            transportErrors++;
            if (transportErrors <= 5) progress(`transport error: ${String(error)}`);
          }
        }
      };
      await Promise.all(Array.from({ length: CONCURRENCY }, worker));
      sent += cases.length;
      if (sent % 10_000 === 0 || sent === REQUESTS)
        progress(
          `${sent} requests (${fmt(sent / ((performance.now() - started) / 1000))}/s), ` +
            `${violations.length} violations, RSS ${fmt(process.memoryUsage().rss / 2 ** 20, 1)} MiB`,
        );
    }
    agent.destroy();
    const seconds = (performance.now() - started) / 1000;
    const healthy = (await fetch(`${base}/healthz`)).status === 200;
    const after = memory();

    printTable(
      `Status histogram (${sent} requests in ${fmt(seconds, 1)} s)`,
      [...statuses.entries()]
        .sort(([a], [b]) => a - b)
        .map(([status, count]) => ({ status, count, share: `${fmt((100 * count) / sent, 1)} %` })),
    );
    printTable('Memory (after a full GC)', [
      { when: 'before', 'RSS MiB': fmt(before.rssMiB, 1), 'heap used MiB': fmt(before.heapUsedMiB, 1) },
      { when: 'after', 'RSS MiB': fmt(after.rssMiB, 1), 'heap used MiB': fmt(after.heapUsedMiB, 1) },
    ]);
    console.log(
      `\nproperty violations: ${violations.length}; transport errors: ${transportErrors}; ` +
        `/healthz after: ${healthy ? '200' : 'NOT 200'}`,
    );
    for (const violation of violations.slice(0, 10)) console.log(`  ${violation}`);
    if (violations.length > 0 || !healthy) process.exitCode = 1;
  } finally {
    await consoleService.stop();
    await ingest.stop();
    await cleanUpRun(infra, prefixes);
  }
};

await main();
