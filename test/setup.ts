/**
 * Mocha global setup: a real Kafka broker, schema registry and Redis for the integration tests,
 * from KAFKA_BROKERS/SCHEMA_REGISTRY_URL/REDIS_URL when set, else testcontainers when a container
 * runtime answers, else infra/local started here (and stopped at the end if this run started it).
 * The Redis topology of the services under test: TEST_REDIS_TOPOLOGY (test/support/redis.ts).
 */
import { acquireInfra } from './support/infra.ts';
import { testRedisEnv, testRedisTopology } from './support/redis.ts';

let release: (() => Promise<void>) | undefined;

export const mochaGlobalSetup = async (): Promise<void> => {
  // TEST_REDIS_TOPOLOGY=cluster without REDIS_CLUSTER_NODES stops the run here, not in every spec.
  const clusterNodes = testRedisEnv().REDIS_CLUSTER_NODES;
  if (clusterNodes !== undefined)
    process.stderr.write(`[test infra] Redis: TEST_REDIS_TOPOLOGY=${testRedisTopology()}, ${clusterNodes}\n`);
  const infra = await acquireInfra();
  process.env.KAFKA_BROKERS = infra.kafkaBrokers.join(',');
  process.env.SCHEMA_REGISTRY_URL = infra.schemaRegistryUrl;
  process.env.REDIS_URL = infra.redisUrl;
  release = () => infra.release();
};

export const mochaGlobalTeardown = async (): Promise<void> => {
  await release?.();
};

/**
 * Wall time per spec file, printed at the end of the run (CI's `npm test` must stay under 15
 * minutes: this says where the minutes go). A file's time runs from the end of the previous
 * file's last test to the end of its own last one, so its `before` hooks count to it.
 */
const fileTimes = new Map<string, number>();
let lastEnd = Date.now();
export const mochaHooks = {
  beforeAll() {
    lastEnd = Date.now();
  },
  afterEach(this: Mocha.Context) {
    const file = this.currentTest?.file;
    if (!file) return;
    const now = Date.now();
    fileTimes.set(file, (fileTimes.get(file) ?? 0) + (now - lastEnd));
    lastEnd = now;
  },
  afterAll() {
    if (process.env.TEST_FILE_TIMES === '0' || fileTimes.size < 2) return;
    const rows = [...fileTimes].sort((a, b) => b[1] - a[1]).slice(0, 12);
    console.log('\n  slowest spec files (wall time, with their before hooks):');
    for (const [file, ms] of rows)
      console.log(`    ${(ms / 1000).toFixed(1).padStart(6)} s  ${file.replace(`${process.cwd()}/`, '')}`);
  },
};
