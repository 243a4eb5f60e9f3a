import assert from 'node:assert/strict';
import type { Admin, Kafka } from 'kafkajs';
import { createDurableProducer, createKafka, topicsFor } from '../../lib/kafka/index.ts';
import { createLogger } from '../../lib/log.ts';
import { AvroCodec } from '../../lib/registry.ts';
import type * as fixtures from '../fakes/hubspot-fixtures.ts';
import { clusterBrokers, killBroker, replicationHealth, startBroker } from '../support/kafka-cluster.ts';
import { sleep, startTestPipeline, waitFor, type TestPipeline } from '../support/pipeline.ts';
import { readTopicToEnd } from '../support/topic-reader.ts';
import {
  assertEachOnceInOrder,
  disturbance,
  longestEffectGap,
  seconds,
  startLoad,
  statusCounts,
  threadsOf,
  type Thread,
} from '../support/webhook-load.ts';

/**
 * Issue 22: "acknowledged means kept" on a cluster of 3 brokers (topics with 3 replicas and
 * min.insync.replicas 2, the producer's acks=all), through the real services with fakes of
 * HubSpot and OpenCX. Needs the cluster of `infra/local/up.sh --brokers 3` from this checkout
 * (it kills and restarts its brokers with infra/local/broker.sh), named by KAFKA_CLUSTER_BROKERS;
 * skipped without it. .ci/run runs it in its step "kafka cluster", not in npm test.
 */
const brokers = clusterBrokers();

describe('a Kafka cluster of 3 brokers loses brokers under webhook load (issue 22)', function () {
  this.timeout(300000);
  const logger = createLogger('kafka-cluster-test', process.env.TEST_LOG_LEVEL ?? 'silent');
  let pipeline: TestPipeline;
  let kafka: Kafka;
  let admin: Admin;
  let codec: AvroCodec;
  let threads: Thread[] = [];
  const killed = new Set<number>();

  const waitHealthy = async (what: string): Promise<number> => {
    const startedAt = Date.now();
    await waitFor(
      what,
      async () => {
        const health = await replicationHealth(admin).catch(() => undefined);
        return health !== undefined && health.underReplicated === 0 && health.offline === 0;
      },
      180000,
      500,
    );
    return Date.now() - startedAt;
  };

  /** Event ids on the raw topic, duplicates folded. */
  const rawEventIds = async (): Promise<Set<number>> => {
    const ids = new Set<number>();
    const topic = topicsFor(pipeline.env.KAFKA_TOPIC_PREFIX ?? '').rawEvents.name;
    for (const record of await readTopicToEnd(kafka, topic, 120000)) {
      const decoded = await codec.decodeRecord(record.value as Buffer);
      ids.add((JSON.parse(decoded.record.event as string) as { eventId: number }).eventId);
    }
    return ids;
  };

  const assertOnRawTopic = async (
    acknowledged: readonly fixtures.NewMessageWebhookEvent[],
  ): Promise<void> => {
    const stored = await rawEventIds();
    const missing = acknowledged.filter((event) => !stored.has(event.eventId));
    console.log(`      raw topic: ${acknowledged.length} events answered 200, ${missing.length} missing`);
    assert.equal(missing.length, 0, 'every event answered 200 is on the raw topic');
  };

  const kill = async (index: number): Promise<void> => {
    killed.add(index);
    await killBroker(index);
  };
  const start = async (index: number): Promise<void> => {
    await startBroker(index);
    killed.delete(index);
  };

  before(async function () {
    if (!brokers) {
      console.log(
        '      skipped: KAFKA_CLUSTER_BROKERS is not set. Run infra/local/up.sh --brokers 3, source its .local/env, then this file (.ci/run: step "kafka cluster")',
      );
      this.skip();
    }
    assert.ok(
      brokers.length >= 3,
      `KAFKA_CLUSTER_BROKERS names ${brokers.length} brokers; this test needs 3`,
    );
    pipeline = await startTestPipeline({
      env: { KAFKA_BROKERS: brokers.join(','), KAFKA_REPLICATION_FACTOR: '3' },
    });
    kafka = createKafka({ clientId: 'kafka-cluster-test', brokers, logger });
    admin = kafka.admin();
    await admin.connect();
    codec = new AvroCodec({
      url: pipeline.env.SCHEMA_REGISTRY_URL ?? '',
      subjectPrefix: pipeline.env.KAFKA_TOPIC_PREFIX ?? '',
    });
    for (let index = 0; index < 3; index++)
      threads = [...threads, ...threadsOf(pipeline, await pipeline.createOrg(), index * 4, 4)];
  });

  after(async () => {
    // A test that failed half way leaves brokers down: the next run (and teardown) wants them up.
    for (const index of killed) await startBroker(index).catch(() => undefined);
    await admin?.disconnect();
    await pipeline?.stop();
  });

  it('given KAFKA_REPLICATION_FACTOR=3, when the services start, then their topics have 3 replicas and min.insync.replicas 2', async () => {
    const names = Object.values(topicsFor(pipeline.env.KAFKA_TOPIC_PREFIX ?? '')).map((spec) => spec.name);
    const metadata = await admin.fetchTopicMetadata({ topics: names });
    for (const topic of metadata.topics)
      for (const partition of topic.partitions)
        assert.equal(partition.replicas.length, 3, `${topic.name}[${partition.partitionId}] replicas`);
    const described = await admin.describeConfigs({
      includeSynonyms: false,
      resources: names.map((name) => ({ type: 2, name, configNames: ['min.insync.replicas'] })),
    });
    for (const resource of described.resources)
      assert.equal(
        resource.configEntries[0]?.configValue,
        '2',
        `${resource.resourceName} min.insync.replicas`,
      );
  });

  it('given webhook load, when broker 2 is killed -9, then every event answered 200 is on the raw topic and no message reaches OpenCX twice and each thread stays in order', async () => {
    await waitHealthy('a healthy cluster before the kill');
    const load = startLoad(pipeline, threads);
    await sleep(5000);
    const killedAt = Date.now();
    await kill(2);
    await sleep(25000);
    await load.stop();

    const refused = load.attempts.filter(
      (attempt) => attempt.answeredAt >= killedAt && attempt.status !== 200,
    );
    const gap = await longestEffectGap(pipeline.opencx, threads, killedAt);
    console.log(
      `      broker 2 killed: ${load.attempts.length} requests; since the kill ${disturbance(load, killedAt)}; OpenCX got nothing new for ${seconds(gap.gapMs)} (until ${seconds(gap.endedAt - killedAt)} after the kill)`,
    );
    assert.deepEqual(
      [...new Set(refused.map((attempt) => attempt.status))].filter((status) => status !== 503),
      [],
      'a request not stored is answered 503',
    );
    await assertOnRawTopic(load.acknowledged);
    await assertEachOnceInOrder(pipeline, threads, kafka);
  });

  it('given broker 2 down, when it is started again under load, then under-replicated partitions return to 0 and the pipeline keeps delivering', async () => {
    const load = startLoad(pipeline, threads);
    await sleep(2000);
    const startedAt = Date.now();
    await start(2);
    const servingMs = Date.now() - startedAt;
    const healMs = await waitHealthy('no under-replicated partition after the restart');
    await sleep(2000);
    await load.stop();
    console.log(
      `      broker 2 restarted: serving after ${seconds(servingMs)}, every partition fully in sync ${seconds(healMs)} later; since its start ${disturbance(load, startedAt)}`,
    );
    await assertOnRawTopic(load.acknowledged);
    await assertEachOnceInOrder(pipeline, threads, kafka);
  });

  it('given brokers 2 and 3 killed (one in-sync replica left), then ingest answers 503, never 200; once broker 3 is back, 200 again; nothing answered 200 is missing from the raw topic, nothing doubled at OpenCX', async () => {
    await waitHealthy('a healthy cluster before the kills');
    const load = startLoad(pipeline, threads);
    await sleep(3000);
    await Promise.all([kill(2), kill(3)]);
    const killedAt = Date.now();
    await sleep(20000);
    const restartAt = Date.now();
    await start(3);
    const servingAt = Date.now();
    const firstOk = await waitFor(
      'a 200 after broker 3 is back',
      () => load.attempts.find((attempt) => attempt.sentAt >= restartAt && attempt.status === 200),
      120000,
    );
    await sleep(5000);
    await load.stop();

    const down = load.attempts.filter(
      (attempt) => attempt.sentAt >= killedAt && attempt.answeredAt < restartAt,
    );
    const gap = await longestEffectGap(pipeline.opencx, threads, killedAt);
    console.log(
      `      brokers 2 and 3 killed for ${seconds(restartAt - killedAt)}: requests meanwhile by status ${JSON.stringify(statusCounts(down))}; broker 3 serving ${seconds(servingAt - restartAt)} after its start, first 200 ${seconds(firstOk.answeredAt - restartAt)} after its start; since the kills ${disturbance(load, killedAt)}; OpenCX got nothing new for ${seconds(gap.gapMs)} (until ${seconds(gap.endedAt - restartAt)} after broker 3's start)`,
    );
    assert.ok(down.length > 0, 'requests were sent while two brokers were down');
    assert.deepEqual(
      [...new Set(down.map((attempt) => attempt.status))],
      [503],
      'with one in-sync replica, every request is answered 503',
    );
    await assertOnRawTopic(load.acknowledged);
    await assertEachOnceInOrder(pipeline, threads, kafka);

    const healStartedAt = Date.now();
    await start(2);
    const servingMs = Date.now() - healStartedAt;
    const healMs = await waitHealthy('no under-replicated partition with all three back');
    console.log(
      `      broker 2 back too: serving after ${seconds(servingMs)}, every partition fully in sync ${seconds(healMs)} later`,
    );
  });
  it('given producers sending records for every partition in each send, when broker 1 is killed -9, then every record of a send that resolved is on the topic (a retry reaches the partitions that moved to a broker which had already answered)', async () => {
    await waitHealthy('a healthy cluster before the kill');
    const topic = `${pipeline.env.KAFKA_TOPIC_PREFIX ?? ''}producer-probe`;
    const partitions = 12;
    await admin.createTopics({
      waitForLeaders: true,
      topics: [
        {
          topic,
          numPartitions: partitions,
          replicationFactor: 3,
          configEntries: [{ name: 'min.insync.replicas', value: '2' }],
        },
      ],
    });
    const acknowledged: string[] = [];
    let failedSends = 0;
    let stopping = false;
    // Each producer sends two records per partition at a time, keyed by partition, so that
    // every send has requests for all three brokers.
    const sender = async (index: number): Promise<void> => {
      let producer = createDurableProducer(kafka);
      await producer.connect();
      for (let round = 0; !stopping; round++) {
        const values = Array.from({ length: partitions * 2 }, (_, slot) => `s${index}-r${round}-${slot}`);
        const sent = await producer
          .send({
            topic,
            acks: -1,
            messages: values.map((value, slot) => ({ partition: slot % partitions, value })),
          })
          .then(
            () => true,
            () => false,
          );
        if (sent) acknowledged.push(...values);
        else {
          // As the services' publishers do: a failed send may leave sequences out of step.
          failedSends++;
          await producer.disconnect().catch(() => undefined);
          producer = createDurableProducer(kafka);
          await producer.connect().catch(() => undefined);
        }
        await sleep(20);
      }
      await producer.disconnect().catch(() => undefined);
    };
    const running = Promise.all([0, 1, 2, 3].map(sender));
    await sleep(3000);
    const killedAt = Date.now();
    await kill(1);
    await sleep(20000);
    stopping = true;
    await running;
    const stored = new Set(
      (await readTopicToEnd(kafka, topic, 120000)).map((record) => record.value?.toString() ?? ''),
    );
    const missing = acknowledged.filter((value) => !stored.has(value));
    console.log(
      `      producers: ${acknowledged.length} records acknowledged, ${failedSends} sends failed (their records not counted), ${missing.length} acknowledged but missing ${seconds(Date.now() - killedAt)} after the kill${missing.length > 0 ? `: ${missing.slice(0, 5).join(', ')}` : ''}`,
    );
    assert.equal(missing.length, 0, 'every record of a send that resolved is on the topic');
    await start(1);
    await waitHealthy('no under-replicated partition with broker 1 back');
  });
});
