import assert from 'node:assert/strict';
import { createTestRedis } from '../support/redis.ts';
import { fileURLToPath } from 'node:url';
import type { Kafka, Producer } from 'kafkajs';
import { createDurableProducer, createKafka, topicsFor } from '../../lib/kafka/index.ts';
import { createLogger } from '../../lib/log.ts';
import type { Redis } from '../../lib/redis.ts';
import { AvroCodec } from '../../lib/registry.ts';
import {
  DEAD_LETTER_ID_HEADER,
  DEAD_LETTER_RECORD,
  deadLetterId,
  REPLAYED_KEEP_MS,
  parseSince,
  readDeadLetters,
  replayDeadLetters,
  replayedMarkerKey,
  type ArchivedDeadLetter,
  type DeadLetterFilter,
} from '../../lib/dead-letters/index.ts';
import type { HubSpotMessage } from '../fakes/hubspot.ts';
import * as fixtures from '../fakes/hubspot-fixtures.ts';
import { sleep, startTestPipeline, waitFor, type TestOrg, type TestPipeline } from '../support/pipeline.ts';
import { runCommand, type CommandRun } from '../support/processes.ts';

const CLI = fileURLToPath(new URL('../../tools/dlq/dlq-cli.ts', import.meta.url));

/** Runs the dlq command as an operator would, in its own process. */
const runCli = (args: readonly string[], env: Record<string, string>): Promise<CommandRun> =>
  runCommand(process.execPath, [CLI, ...args], env);

describe('dead letters: an operator lists and replays them (real Kafka, registry, Redis)', function () {
  this.timeout(120000);
  let pipeline: TestPipeline;
  let kafka: Kafka;
  let codec: AvroCodec;
  let producer: Producer;
  let redis: Redis;
  let orgA: TestOrg;
  /** A second organisation, with a letter of its own (from the filters test on). */
  let orgB: TestOrg;
  let deadLetterTopic: string;
  let domainTopic: string;
  /** The customer message OpenCX refused in the first test, and its event id. */
  let refused: { message: HubSpotMessage; eventId: string };

  const read = async (filter: DeadLetterFilter): Promise<readonly ArchivedDeadLetter[]> =>
    (await readDeadLetters({ kafka, codec, topic: deadLetterTopic, filter })).letters;

  const recordsOn = async (topic: string): Promise<number> => {
    const admin = kafka.admin();
    await admin.connect();
    try {
      return (await admin.fetchTopicOffsets(topic)).reduce((sum, { high }) => sum + Number(high), 0);
    } finally {
      await admin.disconnect();
    }
  };

  const postCustomerMessage = async (org: TestOrg, text: string): Promise<HubSpotMessage> => {
    const message = fixtures.message({ kind: 'customer-chat', text });
    pipeline.hubspot.addMessage(message, { portalId: org.portalId });
    const response = await pipeline.postBatch([
      fixtures.webhookEventFor(message, { portalId: org.portalId }),
    ]);
    assert.equal(response.status, 200);
    return message;
  };

  /** OpenCX answers the next send with 422; returns once outbound has written the dead letter. */
  const postRefusedMessage = async (
    org: TestOrg,
    text: string,
  ): Promise<{ message: HubSpotMessage; eventId: string }> => {
    const lettersBefore = await recordsOn(deadLetterTopic);
    pipeline.opencx.failNext({
      method: 'POST',
      pathPattern: /\/send$/,
      status: 422,
      times: 1,
      body: { statusCode: 422, message: 'message rejected', error: 'Unprocessable Entity' },
    });
    const message = await postCustomerMessage(org, text);
    const refusedSend = await waitFor('OpenCX to refuse the send', () =>
      pipeline.opencx.requests.find(
        (request) =>
          request.path.endsWith('/send') &&
          (request.body as { message?: { text?: string } }).message?.text === text,
      ),
    );
    await waitFor(
      'the dead letter to be written',
      async () => (await recordsOn(deadLetterTopic)) > lettersBefore,
    );
    return { message, eventId: String(refusedSend.headers['idempotency-key']) };
  };

  const sendsOf = (eventId: string): number =>
    pipeline.opencx.requests.filter(
      (request) => request.path.endsWith('/send') && request.headers['idempotency-key'] === eventId,
    ).length;
  const deliveredTexts = (text: string): number =>
    [...pipeline.opencx.sessions.values()]
      .flatMap((session) => session.messages)
      .filter((sent) => sent.text === text).length;

  before(async () => {
    pipeline = await startTestPipeline();
    orgA = await pipeline.createOrg();
    const prefix = pipeline.env.KAFKA_TOPIC_PREFIX ?? '';
    deadLetterTopic = topicsFor(prefix).deadLetters.name;
    domainTopic = topicsFor(prefix).domainEvents.name;
    kafka = createKafka({
      clientId: 'dead-letters-test',
      brokers: (pipeline.env.KAFKA_BROKERS ?? '').split(','),
      logger: createLogger('dead-letters-test', 'silent'),
    });
    codec = new AvroCodec({ url: pipeline.env.SCHEMA_REGISTRY_URL ?? '', subjectPrefix: prefix });
    await codec.registerAll();
    producer = createDurableProducer(kafka);
    await producer.connect();
    redis = createTestRedis();
  });
  after(async () => {
    await producer?.disconnect();
    redis?.disconnect();
    await pipeline?.stop();
  });

  it('given OpenCX refusing a customer message with 422, when processed, then an opencx_rejected dead letter is listed and other threads go on', async () => {
    refused = await postRefusedMessage(orgA, 'First: this one OpenCX refuses');
    const next = await postCustomerMessage(orgA, 'Second: on another thread');

    await waitFor(
      'the second thread to reach OpenCX',
      () => deliveredTexts('Second: on another thread') === 1,
    );
    const letters = await read({ orgId: orgA.orgId });
    assert.equal(letters.length, 1);
    const [{ letter }] = letters as [ArchivedDeadLetter];
    assert.equal(letter.reason, 'opencx_rejected');
    assert.equal(letter.service, 'outbound');
    assert.equal(letter.orgId, orgA.orgId);
    assert.equal(letter.eventType, 'customer-message');
    assert.equal(letter.eventId, refused.eventId);
    assert.equal(letter.sourceTopic, domainTopic);
    assert.match(letter.error, /422/);
    assert.ok(letter.value && letter.value.length > 0, 'the original record travels with the letter');
    assert.equal(letter.headers?.['event-type'], 'customer-message', 'and its headers, restored on replay');
    assert.equal(deliveredTexts('First: this one OpenCX refuses'), 0);
    assert.notEqual(next.conversationsThreadId, refused.message.conversationsThreadId);
  });

  it('given that dead letter, when OpenCX is fixed and it is replayed, then OpenCX gets the message once; a second replay produces nothing', async () => {
    const text = 'First: this one OpenCX refuses';
    const letters = await read({ orgId: orgA.orgId });
    assert.equal(sendsOf(refused.eventId), 1, 'only the refused attempt so far');

    const first = await replayDeadLetters({
      letters,
      producer,
      redis,
      keyPrefix: pipeline.env.REDIS_KEY_PREFIX ?? '',
    });

    assert.deepEqual(
      { ...first, failures: first.failures.length },
      { replayed: 1, alreadyReplayed: 0, failed: 0, failures: 0 },
    );
    await waitFor('the replayed message to reach OpenCX', () => deliveredTexts(text) === 1);
    const session = [...pipeline.opencx.sessions.values()].find(
      (candidate) => candidate.customData.hubspot_thread_id === refused.message.conversationsThreadId,
    );
    assert.deepEqual(
      session?.messages.map((sent) => sent.text),
      [text],
      'on the session of its own thread',
    );
    const marker = replayedMarkerKey(pipeline.env.REDIS_KEY_PREFIX ?? '', letters[0]!);
    assert.equal(await redis.get(marker), 'replayed');
    assert.ok((await redis.pttl(marker)) > REPLAYED_KEEP_MS - 60000, 'the marker is kept for 30 days');

    const domainRecords = await recordsOn(domainTopic);
    const sends = sendsOf(refused.eventId);
    const second = await replayDeadLetters({
      letters: await read({ orgId: orgA.orgId }),
      producer,
      redis,
      keyPrefix: pipeline.env.REDIS_KEY_PREFIX ?? '',
    });

    assert.deepEqual(
      { ...second, failures: second.failures.length },
      { replayed: 0, alreadyReplayed: 1, failed: 0, failures: 0 },
    );
    await sleep(1500);
    assert.equal(await recordsOn(domainTopic), domainRecords, 'nothing was produced');
    assert.equal(sendsOf(refused.eventId), sends, 'OpenCX was not called again');
    assert.equal(deliveredTexts(text), 1);
    assert.deepEqual(pipeline.opencx.violations, []);
  });

  it('given letters of two organisations at different times, when filtered by org, since, reason and limit, then each selects the right ones', async () => {
    orgB = await pipeline.createOrg({ portalId: 55_000_000 + Math.floor(Math.random() * 1_000_000) });
    const fromB = await postRefusedMessage(orgB, 'Third: refused for the other organisation');
    const [letterB] = await read({ orgId: orgB.orgId });
    assert.ok(letterB, 'org B has its letter');
    const eventIds = (letters: readonly ArchivedDeadLetter[]): (string | null)[] =>
      letters.map(({ letter }) => letter.eventId);

    assert.deepEqual(eventIds(await read({ orgId: orgB.orgId })), [fromB.eventId]);
    assert.deepEqual(eventIds(await read({ orgId: orgA.orgId })), [refused.eventId]);
    assert.deepEqual(
      eventIds(await read({ since: letterB.letter.failedAt })),
      [fromB.eventId],
      'since is inclusive and drops older letters',
    );
    assert.deepEqual(
      eventIds(
        await read({ since: parseSince(new Date(letterB.letter.failedAt).toISOString(), Date.now()) }),
      ),
      [fromB.eventId],
    );
    assert.deepEqual(
      eventIds(await read({ since: parseSince('1h', Date.now()) })),
      [refused.eventId, fromB.eventId],
      'oldest first',
    );
    assert.deepEqual(eventIds(await read({ orgId: orgA.orgId, since: letterB.letter.failedAt })), []);
    assert.deepEqual(eventIds(await read({ reason: 'retries_exhausted' })), []);
    assert.deepEqual(eventIds(await read({ reason: 'opencx_rejected', limit: 1 })), [refused.eventId]);
  });

  it('given the CLI, when run with list --org, then it prints the letter and a count by reason', async () => {
    const run = await runCli(['list', '--org', orgA.orgId], pipeline.env);

    assert.equal(run.code, 0, run.stderr);
    const lines = run.stdout.trim().split('\n');
    assert.equal(lines.length, 2, run.stdout);
    assert.match(
      lines[0]!,
      new RegExp(
        `^\\d{4}-\\d{2}-\\d{2}T\\S+Z  outbound  opencx_rejected  org=${orgA.orgId}  customer-message  event=${refused.eventId}  from=${domainTopic}/\\d+@\\d+  .*422`,
      ),
    );
    assert.equal(lines[1], '1 dead letter: opencx_rejected 1');
  });

  it('given the CLI, when run with replay twice, then the letter reaches OpenCX once and the second run reports it as already replayed', async () => {
    const text = 'Third: refused for the other organisation';
    assert.equal(deliveredTexts(text), 0, 'not delivered before the replay');

    const first = await runCli(['replay', '--org', orgB.orgId], pipeline.env);

    assert.equal(first.code, 0, first.stderr);
    assert.equal(first.stdout.trim(), 'replayed 1, already replayed 0, failed 0');
    assert.match(first.stderr, /replayed 1\/1/, 'plain progress lines when stderr is not a terminal');
    await waitFor('the replayed message to reach OpenCX', () => deliveredTexts(text) === 1);
    const second = await runCli(['replay', '--org', orgB.orgId], pipeline.env);
    assert.equal(second.code, 0, second.stderr);
    assert.equal(second.stdout.trim(), 'replayed 0, already replayed 1, failed 0');
    await sleep(1000);
    assert.equal(deliveredTexts(text), 1);
  });

  it("given a processor's letter (HubSpot 404), when the CLI lists by reason, then it shows it with its service", async () => {
    const orgC = await pipeline.createOrg({ portalId: 56_000_000 + Math.floor(Math.random() * 1_000_000) });
    const gone = fixtures.webhookEvent({ portalId: orgC.portalId });
    assert.equal((await pipeline.postBatch([gone])).status, 200);
    await waitFor('the processor letter', async () => (await read({ orgId: orgC.orgId })).length === 1);

    const run = await runCli(['list', '--org', orgC.orgId], pipeline.env);

    assert.equal(run.code, 0, run.stderr);
    const lines = run.stdout.trim().split('\n');
    assert.match(
      lines[0]!,
      new RegExp(
        `  processor  hubspot_rejected  org=${orgC.orgId}  conversation\\.newMessage  event=-  from=`,
      ),
    );
    assert.equal(lines[1], '1 dead letter: hubspot_rejected 1');
  });

  it('given the same letter twice on the topic (a crash between its write and its marker), when read, then it is listed once', async () => {
    const [original] = await read({ orgId: orgA.orgId });
    assert.ok(original);
    const copy = await codec.encodeRecord(DEAD_LETTER_RECORD, { ...original.letter, orgId: 'org-twice' });
    const id = deadLetterId('outbound', 'some-topic', 0, '42');
    await producer.send({
      topic: deadLetterTopic,
      acks: -1,
      messages: [1, 2].map(() => ({ key: 'k', value: copy, headers: { [DEAD_LETTER_ID_HEADER]: id } })),
    });

    assert.equal((await read({ orgId: 'org-twice' })).length, 1);
  });

  it('given bad arguments, when the CLI runs, then it exits 2 with the error and a usage line', async () => {
    for (const args of [['list', '--limit', 'many'], ['purge'], ['list', '--since', 'yesterday'], []]) {
      const run = await runCli(args, pipeline.env);
      assert.equal(run.code, 2, `${args.join(' ')}: ${run.stderr}`);
      const [error, usage] = run.stderr.trim().split('\n');
      assert.match(error ?? '', /^dlq: /);
      assert.match(usage ?? '', /^usage: npm run dlq -- list\|replay/);
      assert.equal(run.stdout, '');
    }
  });

  it('given Kafka unreachable, when the CLI runs, then it exits 1 with one line saying what to check', async () => {
    const run = await runCli(['list'], { ...pipeline.env, KAFKA_BROKERS: '127.0.0.1:1' });

    assert.equal(run.code, 1);
    assert.equal(run.stderr.trim().split('\n').length, 1, run.stderr);
    assert.match(run.stderr, /^dlq: cannot reach Kafka at 127\.0\.0\.1:1 .*check KAFKA_BROKERS/);
  });
});
