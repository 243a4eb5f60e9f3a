import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import type { Admin, ConfigResourceTypes, Kafka, KafkaMessage, Producer } from 'kafkajs';
import { createDeadLetterWriter, deadLetterId } from '../../lib/dead-letters/index.ts';
import { replayAtRate } from '../../tools/dlq/paced-replay.ts';
import { createDurableProducer, createKafka, ensureTopics, topicsFor } from '../../lib/kafka/index.ts';
import { DEFAULT_DEAD_LETTER_RETENTION_MS } from '../../lib/kafka/topics.ts';
import { createLogger } from '../../lib/log.ts';
import { connectToPipeline } from '../../lib/pipeline-connections.ts';
import { createRedis, type Redis } from '../../lib/redis.ts';
import { AvroCodec } from '../../lib/registry.ts';
import * as fixtures from '../fakes/hubspot-fixtures.ts';
import { readTopicToEnd, bareMessageAt } from '../support/topic-reader.ts';
import { runCommand, type CommandRun } from '../support/processes.ts';

const CLI = fileURLToPath(new URL('../../tools/dlq/dlq-cli.ts', import.meta.url));
const TOPIC_RESOURCE = 2 as ConfigResourceTypes;

/** Runs the dlq command as an operator would, in its own process. */
const runCli = (args: readonly string[], env: Record<string, string>): Promise<CommandRun> =>
  runCommand(process.execPath, [CLI, ...args], env);

const topicConfig = async (admin: Admin, topic: string, name: string): Promise<string | undefined> => {
  const described = await admin.describeConfigs({
    includeSynonyms: false,
    resources: [{ type: TOPIC_RESOURCE, name: topic, configNames: [name] }],
  });
  return described.resources[0]?.configEntries.find((entry) => entry.configName === name)?.configValue;
};

type ListedLetter = { id: string; reason: string; orgId: string; source: { offset: string } };

describe('the dlq command: show, --json, --dry-run, a rate cap; the topic keeps letters 14 days (real Kafka, registry, Redis)', function () {
  this.timeout(60000);
  const runId = randomBytes(4).toString('hex');
  const prefix = `test-dlq-${runId}-`;
  const env: Record<string, string> = {
    KAFKA_TOPIC_PREFIX: prefix,
    REDIS_KEY_PREFIX: `test:dlq:${runId}:`,
    LOG_LEVEL: 'silent',
  };
  const topics = topicsFor(prefix);
  /** Where the failed records came from: a replay puts them back here. */
  const sourceTopic = topics.rawEvents.name;
  const orgId = `org-dlq-${runId}`;
  let kafka: Kafka;
  let admin: Admin;
  let producer: Producer;
  let codec: AvroCodec;
  let redis: Redis;
  /** The messages whose raw events were dead-lettered, in order. */
  const messages: ReturnType<typeof fixtures.message>[] = [];

  const recordsOn = async (topic: string): Promise<number> =>
    (await admin.fetchTopicOffsets(topic)).reduce((sum, { high }) => sum + Number(high), 0);
  const replayedRecords = async (): Promise<(KafkaMessage & { partition: number })[]> =>
    (await readTopicToEnd(kafka, sourceTopic)).filter((record) => record.headers?.['dead-letter-replay']);
  const listJson = async (args: readonly string[]): Promise<ListedLetter[]> => {
    const run = await runCli(['list', '--org', orgId, '--json', ...args], env);
    assert.equal(run.code, 0, run.stderr);
    return (JSON.parse(run.stdout) as { letters: ListedLetter[] }).letters;
  };

  before(async () => {
    env.KAFKA_BROKERS = process.env.KAFKA_BROKERS ?? '';
    env.SCHEMA_REGISTRY_URL = process.env.SCHEMA_REGISTRY_URL ?? '';
    env.REDIS_URL = process.env.REDIS_URL ?? '';
    kafka = createKafka({
      clientId: 'dlq-cli-test',
      brokers: env.KAFKA_BROKERS.split(','),
      logger: createLogger('dlq-cli-test', 'silent'),
    });
    admin = kafka.admin();
    await admin.connect();
    await ensureTopics(admin, [topics.rawEvents, topics.deadLetters], {
      partitions: 2,
      replicationFactor: 1,
    });
    codec = new AvroCodec({ url: env.SCHEMA_REGISTRY_URL, subjectPrefix: prefix });
    await codec.registerAll();
    producer = createDurableProducer(kafka);
    await producer.connect();
    redis = createRedis(env.REDIS_URL, createLogger('dlq-cli-test', 'silent'));

    // Twelve raw events the processor dead-lettered (HubSpot refused the re-fetch), written by
    // the real writer: the letters an operator meets.
    const writer = createDeadLetterWriter({
      service: 'processor',
      topic: topics.deadLetters.name,
      producer,
      codec,
      redis,
      keyPrefix: env.REDIS_KEY_PREFIX ?? '',
    });
    for (let index = 0; index < 12; index++) {
      const message = fixtures.message({ kind: 'customer-chat', text: `letter ${index}` });
      messages.push(message);
      const event = fixtures.webhookEventFor(message, { portalId: 4242 });
      const value = await codec.encodeRecord('io.opencx.pipeline.RawWebhookEvent', {
        receivedAt: Date.now(),
        route: 'OAUTH_APP',
        orgId,
        portalId: 4242,
        subscriptionType: 'conversation.newMessage',
        event: JSON.stringify(event),
      });
      await writer.write(
        {
          topic: sourceTopic,
          partition: 0,
          message: {
            key: Buffer.from(orgId),
            value,
            offset: String(1000 + index),
            timestamp: String(Date.now()),
            attributes: 0,
            headers: { 'ordering-key': `${orgId}:thread:${message.conversationsThreadId}` },
          },
        },
        {
          reason: 'hubspot_rejected',
          error: `HubSpot answered 404 for message ${message.id}`,
          attempts: 1,
          orgId,
          eventType: 'conversation.newMessage',
          eventId: null,
        },
      );
    }
  });
  after(async () => {
    await producer?.disconnect();
    await admin?.disconnect();
    redis?.disconnect();
  });

  it('given 12 letters written, when the writer is asked about 20 source records in one turn, then one MGET answers all: the 12 written, the 8 others not', async () => {
    let mgets = 0;
    let gets = 0;
    const counted = {
      get: (key: string) => (gets++, redis.get(key)),
      set: redis.set.bind(redis),
      mget: (...keys: string[]) => (mgets++, redis.mget(...keys)),
    } as unknown as Redis;
    const writer = createDeadLetterWriter({
      service: 'processor',
      topic: topics.deadLetters.name,
      producer,
      codec,
      redis: counted,
      keyPrefix: env.REDIS_KEY_PREFIX ?? '',
    });
    const offsets = Array.from({ length: 20 }, (_, index) => 996 + index);
    const written = await Promise.all(
      offsets.map((offset) =>
        writer.alreadyWritten({
          topic: sourceTopic,
          partition: 0,
          message: bareMessageAt(offset),
        }),
      ),
    );
    assert.deepEqual(
      offsets.filter((_, index) => written[index]),
      Array.from({ length: 12 }, (_, index) => 1000 + index),
    );
    assert.equal(mgets, 1, 'one MGET for the turn');
    assert.equal(gets, 0);
  });

  it('given letters, when listed with --json, then each has its full id, its reason and source, and a count by reason', async () => {
    const run = await runCli(['list', '--org', orgId, '--json'], env);

    assert.equal(run.code, 0, run.stderr);
    const listed = JSON.parse(run.stdout) as { count: number; byReason: object; letters: ListedLetter[] };
    assert.equal(listed.count, 12);
    assert.deepEqual(listed.byReason, { hubspot_rejected: 12 });
    assert.deepEqual(
      listed.letters.map((letter) => letter.id),
      messages.map((_, index) => deadLetterId('processor', sourceTopic, 0, String(1000 + index))),
    );
    assert.equal(listed.letters[0]?.source.offset, '1000');
  });

  it('given a letter, when shown by the id list prints, then its fields and its decoded HubSpot event are printed', async () => {
    const list = await runCli(['list', '--org', orgId, '--limit', '1'], env);
    const shortId = /id=([0-9a-f]{12})/.exec(list.stdout)?.[1];
    assert.ok(shortId, list.stdout);

    const run = await runCli(['show', shortId], env);

    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /^id +[0-9a-f]{32}$/m);
    assert.match(run.stdout, /^reason +hubspot_rejected$/m);
    assert.match(run.stdout, new RegExp(`^source +${sourceTopic}/0@1000$`, 'm'));
    assert.match(run.stdout, /^payload \(io\.opencx\.pipeline\.RawWebhookEvent\):$/m);
    // The raw event's JSON text is shown parsed, as HubSpot sent it.
    assert.match(run.stdout, new RegExp(`"messageId": "${messages[0]?.id}"`));
  });

  it('given a letter, when shown with --json, then the payload is the decoded record', async () => {
    const [first] = await listJson(['--limit', '1']);
    assert.ok(first);

    const run = await runCli(['show', first.id, '--json'], env);

    assert.equal(run.code, 0, run.stderr);
    const shown = JSON.parse(run.stdout) as {
      id: string;
      payload: { kind: string; recordName: string; record: { orgId: string; event: { messageId: string } } };
    };
    assert.equal(shown.id, first.id);
    assert.equal(shown.payload.kind, 'avro');
    assert.equal(shown.payload.record.orgId, orgId);
    assert.equal(shown.payload.record.event.messageId, messages[0]?.id);
  });

  it('given an id no letter has, or not an id, when shown, then it says so and what to do', async () => {
    const unknown = await runCli(['show', '0123456789abcdef'], env);
    assert.equal(unknown.code, 1);
    assert.match(
      unknown.stderr,
      /^dlq: no dead letter has the id 0123456789abcdef; npm run dlq -- list shows/,
    );

    const bad = await runCli(['show', 'zz'], env);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /^dlq: "zz" is not a letter id/);
    const misplaced = await runCli(['list', '--dry-run'], env);
    assert.equal(misplaced.code, 2);
    assert.match(misplaced.stderr, /^dlq: --dry-run is for replay only/);
  });

  it('given letters, when replayed with --dry-run, then it lists what it would replay and writes nothing', async () => {
    const before = await recordsOn(sourceTopic);

    const run = await runCli(['replay', '--org', orgId, '--limit', '3', '--dry-run'], env);

    assert.equal(run.code, 0, run.stderr);
    const lines = run.stdout.trim().split('\n');
    assert.equal(lines.length, 4, run.stdout);
    for (const line of lines.slice(0, 3))
      assert.match(line, new RegExp(`^would replay  .*to=${sourceTopic}$`));
    assert.match(
      lines[3] ?? '',
      /^dry run: would replay 3 \(about 0\.1 s at 20\/s\), already replayed 0; nothing written$/,
    );
    assert.equal(await recordsOn(sourceTopic), before, 'nothing produced');
    const keys = await redis.keys(`${env.REDIS_KEY_PREFIX}dlq:replayed:*`);
    assert.deepEqual(keys, [], 'no replay marker or claim written');
  });

  it('given 10 letters, when replayed with --rate 5, then they reach the source topic no faster than 5 a second, and a dry run then counts them as replayed', async () => {
    const run = await runCli(['replay', '--org', orgId, '--limit', '10', '--rate', '5'], env);

    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout.trim(), 'replayed 10, already replayed 0, failed 0');
    assert.match(run.stderr, /replayed 10\/10/);
    const stamps = (await replayedRecords()).map((record) => Number(record.timestamp)).sort((a, b) => a - b);
    assert.equal(stamps.length, 10);
    // Letter i starts 200 ms × i after the first: 1.8 s from the first to the last.
    const span = (stamps.at(-1) ?? 0) - (stamps[0] ?? 0);
    assert.ok(span >= 1700, `10 letters at 5/s took ${span} ms from first to last`);
    for (const [index, stamp] of stamps.entries()) {
      const inOneSecond = stamps.filter((other) => other >= stamp && other < stamp + 1000).length;
      assert.ok(inOneSecond <= 6, `${inOneSecond} letters within 1 s of letter ${index}`);
    }

    const dry = await runCli(['replay', '--org', orgId, '--dry-run', '--json'], env);
    assert.equal(dry.code, 0, dry.stderr);
    const plan = JSON.parse(dry.stdout) as { wouldReplay: unknown[]; alreadyReplayed: unknown[] };
    assert.equal(plan.wouldReplay.length, 2);
    assert.equal(plan.alreadyReplayed.length, 10);
  });

  it('given a rate, when replayAtRate paces letters on a fake clock, then letter i starts at i / rate seconds', async () => {
    let clock = 0;
    const starts: number[] = [];
    const letters = Array.from({ length: 4 }, () => ({}) as never);
    await replayAtRate({
      letters,
      producer,
      redis,
      keyPrefix: 'unused',
      ratePerSecond: 4,
      now: () => clock,
      sleep: async (ms) => void (clock += ms),
      replay: async () => {
        starts.push(clock);
        clock += 10;
        return { replayed: 1, alreadyReplayed: 0, failed: 0, failures: [] };
      },
    });
    assert.deepEqual(starts, [0, 250, 500, 750]);
  });

  it('given a new pipeline, when it creates the dead-letter topic, then retention.ms is 14 days', async () => {
    assert.equal(
      await topicConfig(admin, topics.deadLetters.name, 'retention.ms'),
      String(DEFAULT_DEAD_LETTER_RETENTION_MS),
    );
    assert.equal(DEFAULT_DEAD_LETTER_RETENTION_MS, 14 * 24 * 60 * 60 * 1000);
  });

  it('given a dead-letter topic that keeps 1 hour, when a service starts with DEAD_LETTER_RETENTION_MS of 3 days, then it is raised and its other settings kept', async () => {
    const otherPrefix = `test-dlq-${runId}-short-`;
    const shortTopic = topicsFor(otherPrefix).deadLetters.name;
    await admin.createTopics({
      topics: [
        {
          topic: shortTopic,
          numPartitions: 1,
          replicationFactor: 1,
          configEntries: [
            { name: 'retention.ms', value: '3600000' },
            { name: 'max.message.bytes', value: '2000000' },
          ],
        },
      ],
      waitForLeaders: true,
    });
    const threeDays = 3 * 24 * 60 * 60 * 1000;

    const connections = await connectToPipeline(
      {
        NODE_ENV: 'test',
        KAFKA_BROKERS: env.KAFKA_BROKERS?.split(',') ?? [],
        KAFKA_TOPIC_PREFIX: otherPrefix,
        SCHEMA_REGISTRY_URL: env.SCHEMA_REGISTRY_URL ?? '',
        KAFKA_REPLICATION_FACTOR: 1,
        DEAD_LETTER_RETENTION_MS: threeDays,
      },
      { clientId: 'dlq-cli-test', logger: createLogger('dlq-cli-test', 'silent') },
    );
    await connections.close();

    assert.equal(await topicConfig(admin, shortTopic, 'retention.ms'), String(threeDays));
    assert.equal(await topicConfig(admin, shortTopic, 'max.message.bytes'), '2000000', 'other override kept');
  });
});
