import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { Kafka, Partitioners, logLevel, type Admin } from 'kafkajs';
import { Redis } from 'ioredis';
import * as fixtures from '../fakes/hubspot-fixtures.ts';
import {
  startTestPipeline,
  sumCounter,
  waitFor,
  type TestOrg,
  type TestPipeline,
} from '../support/pipeline.ts';
import { freePort, kill, spawnService } from '../support/processes.ts';

/** A Redis server of this test's own (never the shared one on 6379): it is what the test cuts off. */
const startRedisServer = async (): Promise<{ port: number; process: ChildProcess }> => {
  const port = await freePort();
  const child = spawn('redis-server', ['--port', String(port), '--save', '', '--appendonly', 'no'], {
    stdio: 'ignore',
  });
  await waitFor('the private redis-server', async () => {
    const probe = new Redis(port, '127.0.0.1', {
      lazyConnect: true,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
    });
    probe.on('error', () => undefined);
    try {
      await probe.connect();
      return (await probe.ping()) === 'PONG';
    } catch {
      return false;
    } finally {
      probe.disconnect();
    }
  });
  return { port, process: child };
};

/**
 * A TCP proxy in front of Redis for one replica only: `cut()` drops its connections and refuses
 * new ones (Redis unreachable for that replica alone, the others keep it), `restore()` listens again.
 */
const startRedisProxy = async (redisPort: number) => {
  const port = await freePort();
  const sockets = new Set<Socket>();
  let server: Server | undefined;
  const listen = (): Promise<void> =>
    new Promise((resolve) => {
      server = createServer((client) => {
        const upstream = connect(redisPort, '127.0.0.1');
        for (const socket of [client, upstream]) {
          sockets.add(socket);
          socket.on('close', () => sockets.delete(socket));
          socket.on('error', () => undefined);
        }
        client.pipe(upstream).pipe(client);
      });
      server.listen(port, '127.0.0.1', resolve);
    });
  await listen();
  return {
    url: `redis://127.0.0.1:${port}`,
    cut: async (): Promise<void> => {
      const closing = server;
      server = undefined;
      // close() waits for open connections, so they are dropped first.
      const closed = new Promise<void>((resolve) => (closing ? closing.close(() => resolve()) : resolve()));
      for (const socket of sockets) socket.destroy();
      await closed;
    },
    restore: listen,
  };
};

const sentTexts = (pipeline: TestPipeline): string[] =>
  pipeline.opencx.effects
    .filter((effect) => effect.kind === 'message-sent')
    .map((effect) => (effect.body as { message: { text: string } }).message.text);

const readyz = async (port: number): Promise<number> =>
  fetch(`http://127.0.0.1:${port}/readyz`).then(
    (response) => response.status,
    () => 0,
  );

describe('a processor replica that cannot reach Redis steps aside (real broker, its own redis-server)', function () {
  this.timeout(180000);

  let redisServer: { port: number; process: ChildProcess } | undefined;
  let proxy: Awaited<ReturnType<typeof startRedisProxy>>;
  let pipeline: TestPipeline;
  let replicaA: ChildProcess & { metricsPort: number };
  let stderrOfA = '';
  // Made in `before`: KAFKA_BROKERS is set by the global setup (test/setup.ts), after this file
  // loads. Built at load time with a fallback, the test asked another broker about the group
  // (CI: the developer's Kafka on 9092) and waited for members that were never there.
  let admin: Admin;
  const orgs: TestOrg[] = [];

  const groupMembers = async (): Promise<number> => {
    const { groups } = await admin.describeGroups([`${pipeline.env.KAFKA_TOPIC_PREFIX}processor`]);
    return groups[0]?.state === 'Stable' ? (groups[0]?.members.length ?? 0) : -1;
  };
  const eventsHandledByA = async (): Promise<number> =>
    sumCounter(
      await (await fetch(`http://127.0.0.1:${replicaA.metricsPort}/metrics`)).text(),
      'processor_events_total',
      {},
    );
  /** One customer message per organisation (so on every partition); resolves once all are at OpenCX. */
  const messageEveryPartition = async (label: string): Promise<void> => {
    const texts = orgs.map((org) => `${label} from ${org.orgId}`);
    const events = orgs.map((org, index) => {
      const message = fixtures.message({ text: texts[index] });
      pipeline.hubspot.addMessage(message, { portalId: org.portalId });
      return fixtures.webhookEventFor(message, { portalId: org.portalId });
    });
    assert.equal((await pipeline.postBatch(events)).status, 200);
    await waitFor(
      `"${label}" of every organisation at OpenCX`,
      () => texts.every((text) => sentTexts(pipeline).includes(text)),
      45000,
    );
  };

  before(async () => {
    redisServer = await startRedisServer();
    proxy = await startRedisProxy(redisServer.port);
    const redisUrl = `redis://127.0.0.1:${redisServer.port}`;
    pipeline = await startTestPipeline({ processor: false, env: { REDIS_URL: redisUrl } });
    admin = new Kafka({
      clientId: 'dependency-outage-test',
      brokers: (pipeline.env.KAFKA_BROKERS ?? '').split(','),
      logLevel: logLevel.NOTHING,
    }).admin();
    await admin.connect();

    // Organisations whose keys cover every partition of the raw topic (3), as ingest keys them.
    const partitionOf = Partitioners.DefaultPartitioner();
    const partitionMetadata = [0, 1, 2].map((partitionId) => ({
      partitionErrorCode: 0,
      partitionId,
      leader: 0,
      replicas: [0],
      isr: [0],
    }));
    const covered = new Set<number>();
    for (let index = 0; covered.size < 3 || orgs.length < 6; index++) {
      const orgId = `org-outage-${pipeline.runId}-${index}`;
      const partition = partitionOf({
        topic: `${pipeline.env.KAFKA_TOPIC_PREFIX}hubspot.webhook-events`,
        partitionMetadata,
        message: { key: orgId, value: null },
      });
      if (covered.has(partition) && orgs.length >= 6) continue;
      covered.add(partition);
      orgs.push(await pipeline.createOrg({ orgId, portalId: 8_800_000 + index }));
    }

    replicaA = await spawnService(
      'processor',
      { ...pipeline.env, REDIS_URL: proxy.url, DEPENDENCY_GRACE_MS: '3000' },
      { stderr: 'pipe' },
    );
    replicaA.stderr?.on('data', (chunk: Buffer) => (stderrOfA += chunk.toString()));
    await pipeline.startProcessor();
    await waitFor(
      'both replicas in the consumer group',
      async () => (await groupMembers()) === 2,
      60000,
    ).catch((error: unknown) => {
      // Say why: A's own log tells whether it stepped aside (and on which dependency).
      throw new Error(`${String(error)}; replica A's stderr ends with:\n${stderrOfA.slice(-3000)}`);
    });
  });

  after(async () => {
    if (replicaA) await kill(replicaA);
    await pipeline?.stop();
    await admin?.disconnect();
    await proxy?.cut();
    if (redisServer) await kill(redisServer.process);
  });

  it('given replica A holding partitions, when its Redis stays unreachable, then A answers /readyz 503, leaves the group, and replica B handles A’s partitions', async () => {
    await messageEveryPartition('before');
    assert.ok((await eventsHandledByA()) > 0, 'replica A had partitions');
    assert.equal(await readyz(replicaA.metricsPort), 200);

    await proxy.cut();
    await waitFor('A to report not ready', async () => (await readyz(replicaA.metricsPort)) === 503, 20000);
    const body = (await (await fetch(`http://127.0.0.1:${replicaA.metricsPort}/readyz`)).json()) as {
      error: string;
      dependencies: { redis?: { reachable: boolean } };
    };
    assert.equal(body.error, 'not_ready');
    assert.equal(body.dependencies.redis?.reachable, false);
    assert.equal((await fetch(`http://127.0.0.1:${replicaA.metricsPort}/healthz`)).status, 200);
    await waitFor('A to leave the consumer group', async () => (await groupMembers()) === 1, 30000);

    await messageEveryPartition('during the outage');
    assert.doesNotMatch(stderrOfA, /ioredis|Unhandled error event|\n\s+at /, 'no ioredis stack traces');
  });

  it('given A cut off from Redis, when Redis is reachable again, then A rejoins the group and is ready', async () => {
    await proxy.restore();
    await waitFor('A ready again', async () => (await readyz(replicaA.metricsPort)) === 200, 30000);
    await waitFor('A back in the consumer group', async () => (await groupMembers()) === 2, 60000);
    await messageEveryPartition('after');
    assert.doesNotMatch(stderrOfA, /ioredis|Unhandled error event|\n\s+at /);
  });
});
