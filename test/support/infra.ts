/**
 * A real Kafka broker, schema registry (Confluent-compatible API) and Redis for the tests, from
 * the first of these that applies:
 *
 * 1. KAFKA_BROKERS, SCHEMA_REGISTRY_URL and REDIS_URL all set: used as they are; release() does nothing.
 * 2. A container runtime answers (testcontainers' getContainerRuntimeClient() does not throw):
 *    Kafka (@testcontainers/kafka, KRaft), Redis (@testcontainers/redis) and Apicurio Registry
 *    (GenericContainer) are started; release() stops them.
 * 3. Otherwise `bash infra/local/up.sh` (Kafka + Apicurio as local JVMs, Redis: the running one
 *    or a local redis-server); its progress shows on stderr. release() runs
 *    `infra/local/down.sh <what this call started>`, so infrastructure that was already up
 *    (a developer's, or another run's) is left running.
 *
 * TEST_INFRA=local skips the container probe; TEST_INFRA=containers makes a missing runtime an error.
 * Images: TEST_KAFKA_IMAGE, TEST_REDIS_IMAGE, TEST_APICURIO_IMAGE.
 *
 * Note: @testcontainers/kafka (11.x, and 12.x too) drives Confluent's image only (it runs
 * /etc/confluent/docker/run), so the container path uses confluentinc/cp-kafka 8.1 (Apache
 * Kafka 4.1, KRaft), not apache/kafka; infra/local and infra/compose use Apache Kafka itself.
 */
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';

export interface AcquiredInfra {
  kafkaBrokers: string[];
  schemaRegistryUrl: string;
  redisUrl: string;
  /** A property, not a method, so callers may keep it detached (`release = infra.release`). */
  release: () => Promise<void>;
}

const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
const CCOMPAT_PATH = '/apis/ccompat/v7';
const KAFKA_IMAGE = process.env.TEST_KAFKA_IMAGE ?? 'confluentinc/cp-kafka:8.1.0';
const REDIS_IMAGE = process.env.TEST_REDIS_IMAGE ?? 'redis:7-alpine';
// Same Apicurio line as infra/local (3.0.9: the newest that runs on the Java 17 of our machines).
const APICURIO_IMAGE = process.env.TEST_APICURIO_IMAGE ?? 'apicurio/apicurio-registry:3.0.9';
const RUNTIME_PROBE_TIMEOUT_MS = 10_000;

const say = (msg: string): void => {
  process.stderr.write(`[test infra] ${msg}\n`);
};

export async function acquireInfra(): Promise<AcquiredInfra> {
  const { KAFKA_BROKERS, SCHEMA_REGISTRY_URL, REDIS_URL } = process.env;
  if (KAFKA_BROKERS && SCHEMA_REGISTRY_URL && REDIS_URL) {
    say(
      `using KAFKA_BROKERS=${KAFKA_BROKERS} SCHEMA_REGISTRY_URL=${SCHEMA_REGISTRY_URL} REDIS_URL=${REDIS_URL}`,
    );
    return {
      kafkaBrokers: splitBrokers(KAFKA_BROKERS),
      schemaRegistryUrl: SCHEMA_REGISTRY_URL,
      redisUrl: REDIS_URL,
      release: async () => {},
    };
  }
  if (KAFKA_BROKERS || SCHEMA_REGISTRY_URL || REDIS_URL) {
    say(
      'only some of KAFKA_BROKERS / SCHEMA_REGISTRY_URL / REDIS_URL are set: ignoring them (set all three to use them)',
    );
  }

  const mode = process.env.TEST_INFRA;
  if (mode !== 'local') {
    const runtime = await containerRuntime();
    if (runtime) {
      say(
        `container runtime found (${runtime}): starting Kafka, Apicurio Registry and Redis with testcontainers`,
      );
      return startContainers();
    }
    if (mode === 'containers') {
      throw new Error(
        'TEST_INFRA=containers, but testcontainers found no container runtime (is Docker running?)',
      );
    }
    say('no container runtime: using infra/local (Kafka and Apicurio as local JVMs)');
  }
  return startLocal();
}

function splitBrokers(list: string): string[] {
  return list
    .split(',')
    .map((b) => b.trim())
    .filter((b) => b.length > 0);
}

/** The runtime's description when testcontainers finds one, else undefined (never throws). */
async function containerRuntime(): Promise<string | undefined> {
  let timer: NodeJS.Timeout | undefined;
  try {
    const { getContainerRuntimeClient } = await import('testcontainers');
    const probe = getContainerRuntimeClient().then((client) => client.info.containerRuntime.host);
    const timeout = new Promise<undefined>((resolve) => {
      timer = setTimeout(() => resolve(undefined), RUNTIME_PROBE_TIMEOUT_MS);
    });
    return await Promise.race([probe, timeout]);
  } catch {
    return undefined; // no runtime (or testcontainers not installed)
  } finally {
    clearTimeout(timer);
  }
}

interface Stoppable {
  stop(): Promise<unknown>;
}

async function startContainers(): Promise<AcquiredInfra> {
  const { GenericContainer, Wait } = await import('testcontainers');
  const { KafkaContainer } = await import('@testcontainers/kafka');
  const { RedisContainer } = await import('@testcontainers/redis');

  const kafkaP = new KafkaContainer(KAFKA_IMAGE)
    .withKraft()
    .withEnvironment({
      KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR: '1',
      KAFKA_SHARE_COORDINATOR_STATE_TOPIC_REPLICATION_FACTOR: '1',
      KAFKA_SHARE_COORDINATOR_STATE_TOPIC_MIN_ISR: '1',
      KAFKA_DEFAULT_REPLICATION_FACTOR: '1',
      KAFKA_MIN_INSYNC_REPLICAS: '1',
      KAFKA_NUM_PARTITIONS: '3',
    })
    .start();
  const redisP = new RedisContainer(REDIS_IMAGE).start();
  const registryP = new GenericContainer(APICURIO_IMAGE)
    .withExposedPorts(8080)
    .withEnvironment({
      // Apicurio 3 refuses deletes unless enabled; the Confluent API allows them.
      APICURIO_REST_DELETION_ARTIFACT_ENABLED: 'true',
      APICURIO_REST_DELETION_ARTIFACT_VERSION_ENABLED: 'true',
      APICURIO_REST_DELETION_GROUP_ENABLED: 'true',
    })
    .withWaitStrategy(Wait.forHttp(`${CCOMPAT_PATH}/subjects`, 8080).forStatusCode(200))
    .withStartupTimeout(180_000)
    .start();

  const results = await Promise.allSettled([kafkaP, redisP, registryP]);
  const started = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value as Stoppable] : []));
  const stopAll = async (): Promise<void> => {
    await Promise.allSettled(started.map((c) => c.stop()));
  };
  const [kafkaR, redisR, registryR] = results;
  if (kafkaR?.status !== 'fulfilled' || redisR?.status !== 'fulfilled' || registryR?.status !== 'fulfilled') {
    await stopAll();
    const reasons = results.flatMap((r) => (r.status === 'rejected' ? [String(r.reason)] : []));
    throw new Error(`testcontainers could not start the test infrastructure: ${reasons.join('; ')}`);
  }
  const kafka = kafkaR.value;
  const redis = redisR.value;
  const registry = registryR.value;
  const schemaRegistryUrl = `http://${registry.getHost()}:${registry.getMappedPort(8080)}${CCOMPAT_PATH}`;
  try {
    await setBackwardCompatibility(schemaRegistryUrl);
  } catch (err) {
    await stopAll();
    throw err;
  }
  const infra = {
    kafkaBrokers: [`${kafka.getHost()}:${kafka.getMappedPort(9093)}`],
    schemaRegistryUrl,
    redisUrl: redis.getConnectionUrl(),
  };
  say(`containers ready: ${JSON.stringify(infra)}`);
  let released = false;
  return {
    ...infra,
    release: async () => {
      if (released) return;
      released = true;
      say('stopping the test containers');
      await stopAll();
    },
  };
}

/**
 * Apicurio starts without a global compatibility rule (anything is accepted); Confluent's
 * registry defaults to BACKWARD. infra/local/up.sh does the same PUT (see the quirks noted there).
 */
async function setBackwardCompatibility(schemaRegistryUrl: string): Promise<void> {
  const res = await fetch(`${schemaRegistryUrl}/config`, {
    method: 'PUT',
    headers: { 'Content-Type': 'application/vnd.schemaregistry.v1+json' },
    body: JSON.stringify({ compatibility: 'BACKWARD' }),
  });
  if (!res.ok) {
    throw new Error(`PUT ${schemaRegistryUrl}/config answered ${res.status}: ${await res.text()}`);
  }
}

async function startLocal(): Promise<AcquiredInfra> {
  const up = await run('bash', [`${repoRoot}infra/local/up.sh`]);
  if (up.code !== 0) {
    throw new Error(
      `infra/local/up.sh exited with ${up.code}: see its messages above and .local/logs/ (set KAFKA_BROKERS, SCHEMA_REGISTRY_URL and REDIS_URL to use other infrastructure)`,
    );
  }
  const env = parseEnv(await readFile(`${repoRoot}.local/env`, 'utf8'));
  const startedLine = /^LOCAL_INFRA_STARTED="([^"]*)"$/m.exec(up.stdout);
  const started = (startedLine?.[1] ?? '').split(/\s+/).filter((s) => s.length > 0);
  const kafkaBrokers = env.KAFKA_BROKERS;
  const schemaRegistryUrl = env.SCHEMA_REGISTRY_URL;
  const redisUrl = env.REDIS_URL;
  if (!kafkaBrokers || !schemaRegistryUrl || !redisUrl) {
    throw new Error(`${repoRoot}.local/env lacks KAFKA_BROKERS, SCHEMA_REGISTRY_URL or REDIS_URL`);
  }
  let released = false;
  return {
    kafkaBrokers: splitBrokers(kafkaBrokers),
    schemaRegistryUrl,
    redisUrl,
    release: async () => {
      if (released) return;
      released = true;
      if (started.length === 0) {
        say('infra/local was already running before this run: leaving it up');
        return;
      }
      const down = await run('bash', [`${repoRoot}infra/local/down.sh`, ...started]);
      if (down.code !== 0) {
        throw new Error(`infra/local/down.sh ${started.join(' ')} exited with ${down.code}`);
      }
    },
  };
}

function parseEnv(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^([A-Z_][A-Z0-9_]*)=(.*)$/.exec(line.trim());
    if (m?.[1] !== undefined && m[2] !== undefined) out[m[1]] = m[2];
  }
  return out;
}

/** Runs a command with stdin closed and stderr shown; resolves with its exit code and stdout. */
function run(cmd: string, args: string[]): Promise<{ code: number; stdout: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: repoRoot, stdio: ['ignore', 'pipe', 'inherit'] });
    let stdout = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => {
      stdout += chunk;
    });
    child.on('error', reject);
    child.on('close', (code, signal) => {
      resolve({ code: code ?? (signal ? 128 : 1), stdout });
    });
  });
}
