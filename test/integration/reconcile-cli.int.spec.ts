/**
 * `npm run reconcile` (issue 23: reconcile one organisation now), on the real broker, registry
 * and Redis, against the fake HubSpot, with the whole pipeline running and the scheduled
 * reconciler off: whatever reaches the raw topic with the `reconciled` header was written by
 * the command under test.
 */
import assert from 'node:assert/strict';
import type { Kafka } from 'kafkajs';
import { decodeRawWebhookEvent } from '../../lib/contracts/index.ts';
import { createKafka, topicsFor } from '../../lib/kafka/index.ts';
import { createLogger } from '../../lib/log.ts';
import type { Redis } from '../../lib/redis.ts';
import { AvroCodec } from '../../lib/registry.ts';
import { createRedisReconcileLease } from '../../services/processor/src/reconcile/index.ts';
import { EXIT_LEASED, runReconcile, type Output } from '../../tools/reconcile/cli.ts';
import * as fixtures from '../fakes/hubspot-fixtures.ts';
import type { HubSpotMessage } from '../fakes/hubspot.ts';
import { startTestPipeline, waitFor, type TestOrg, type TestPipeline } from '../support/pipeline.ts';
import { createTestRedis } from '../support/redis.ts';
import { readTopicToEnd } from '../support/topic-reader.ts';

/** runReconcile in this process, its output kept. */
const reconcile = async (
  args: readonly string[],
  env: Record<string, string>,
): Promise<{ code: number; out: string; err: string }> => {
  let out = '';
  let err = '';
  const output: Output = {
    out: (text) => void (out += text),
    err: (text) => void (err += text),
    isTTY: false,
  };
  const code = await runReconcile(args, env, output);
  return { code, out, err };
};

describe('npm run reconcile: one organisation reconciled with HubSpot now (real Kafka, registry, Redis; fake HubSpot)', function () {
  this.timeout(120_000);
  let pipeline: TestPipeline;
  let org: TestOrg;
  let kafka: Kafka;
  let codec: AvroCodec;
  let redis: Redis;

  const rawTopic = (): string => topicsFor(pipeline.env.KAFKA_TOPIC_PREFIX ?? '').rawEvents.name;
  /** The message ids of the raw records written with the `reconciled` header for the organisation. */
  const reconciledOnRawTopic = async (): Promise<string[]> => {
    const ids: string[] = [];
    for (const record of await readTopicToEnd(kafka, rawTopic())) {
      if (record.headers?.reconciled?.toString() !== '1' || !record.value) continue;
      const raw = decodeRawWebhookEvent(await codec.decodeRecord(record.value));
      if (raw.orgId !== org.orgId) continue;
      ids.push((JSON.parse(raw.event) as { messageId: string }).messageId);
    }
    return ids;
  };
  /** Keys on the watermarks topic: the command must write none. */
  const watermarkKeys = async (): Promise<string[]> => {
    const topic = topicsFor(pipeline.env.KAFKA_TOPIC_PREFIX ?? '').reconcileWatermarks.name;
    return (await readTopicToEnd(kafka, topic)).map((record) => record.key?.toString() ?? '');
  };
  /** How many times each customer message's text reached OpenCX for the organisation. */
  const atOpenCx = (): Map<string, number> => {
    const texts = new Map<string, number>();
    for (const session of pipeline.opencx.sessions.values())
      if (session.apiKey === org.apiKey)
        for (const sent of session.messages) texts.set(sent.text, (texts.get(sent.text) ?? 0) + 1);
    return texts;
  };
  /** Customer chat messages on `threads` threads in the fake HubSpot, `perThread` each. */
  const conversations = (threads: number, perThread: number, label: string): HubSpotMessage[] => {
    const start = Date.now() - 60_000;
    const messages: HubSpotMessage[] = [];
    for (let thread = 0; thread < threads; thread++) {
      const threadId = fixtures.newThreadId();
      for (let index = 0; index < perThread; index++)
        messages.push(
          fixtures.message({
            kind: 'customer-chat',
            threadId,
            text: `${label} thread ${thread} message ${index}`,
            createdAt: new Date(start + messages.length * 1000).toISOString(),
          }),
        );
    }
    for (const message of messages) pipeline.hubspot.addMessage(message, { portalId: org.portalId });
    return messages;
  };
  const deliver = async (messages: readonly HubSpotMessage[]): Promise<void> => {
    const response = await pipeline.postBatch(
      messages.map((message) => fixtures.webhookEventFor(message, { portalId: org.portalId })),
    );
    assert.equal(response.status, 200);
  };

  before(async () => {
    // The scheduled reconciler stays off (the test pipeline's default): only the command writes.
    pipeline = await startTestPipeline();
    org = await pipeline.createOrg();
    // The AI answers nothing: HubSpot's threads then hold the customers' messages alone, and
    // what a run reads is exact.
    pipeline.opencx.setAiResponder(() => null);
    kafka = createKafka({
      clientId: 'reconcile-cli-test',
      brokers: (pipeline.env.KAFKA_BROKERS ?? '').split(','),
      logger: createLogger('reconcile-cli-test', 'silent'),
    });
    codec = new AvroCodec({
      url: pipeline.env.SCHEMA_REGISTRY_URL ?? '',
      subjectPrefix: pipeline.env.KAFKA_TOPIC_PREFIX ?? '',
    });
    redis = createTestRedis('reconcile-cli-test');
  });
  after(async () => {
    redis?.disconnect();
    await pipeline?.stop();
  });

  it('given messages whose webhooks never came, when dry-run, run and run again, then the dry run lists exactly them and writes nothing, the run writes each once and OpenCX gets them once, and the second run writes nothing', async () => {
    const messages = conversations(2, 3, 'cli');
    const lost = [messages[1], messages[5]].map((message) => message?.id ?? '');
    await deliver(messages.filter((message) => !lost.includes(message.id)));
    await waitFor('the four delivered messages at OpenCX', () => atOpenCx().size === 4, 30_000);

    const dry = await reconcile(['--org', org.orgId, '--since', '10m', '--dry-run'], pipeline.env);

    assert.equal(dry.code, 0, dry.err);
    const listed = [
      ...dry.out.matchAll(/^would write {2}message (\S+) {2}thread (\S+) {2}created (\S+) {2}"(.*)"$/gm),
    ];
    assert.deepEqual(
      listed.map(([, id, thread, created, text]) => [id, thread, created, text]),
      [messages[1], messages[5]].map((message) => [
        message?.id,
        message?.conversationsThreadId,
        message?.createdAt,
        message?.text,
      ]),
      dry.out,
    );
    assert.match(dry.out, /^2 threads, 6 messages read, 2 gaps \(HubSpot calls: 3\)$/m);
    assert.ok(
      dry.out.includes(`\ndry run: would write 2 record(s) to ${rawTopic()}; nothing written\n`),
      dry.out,
    );
    assert.match(dry.err, /^reconcile: 2 threads, 6 messages read, 2 gaps/m, 'progress on stderr');
    // The run returned: anything it wrote was acknowledged by then, so it is on the topic now.
    assert.deepEqual(await reconciledOnRawTopic(), [], 'a dry run writes nothing');

    const real = await reconcile(['--org', org.orgId, '--since', '10m'], pipeline.env);

    assert.equal(real.code, 0, real.err);
    assert.deepEqual(
      [...real.out.matchAll(/^wrote {2}message (\S+) /gm)].map(([, id]) => id),
      lost,
      real.out,
    );
    assert.ok(real.out.includes(`\nwrote 2 record(s) to ${rawTopic()} (header reconciled: 1)`), real.out);
    assert.deepEqual((await reconciledOnRawTopic()).sort(), [...lost].sort(), 'each lost message once');
    await waitFor('all six messages at OpenCX', () => atOpenCx().size === 6, 30_000);

    const again = await reconcile(['--org', org.orgId, '--since', '10m'], pipeline.env);

    assert.equal(again.code, 0, again.err);
    assert.match(again.out, /^2 threads, 6 messages read, 0 gaps/m, again.out);
    assert.match(again.out, /^no message was missed: nothing to write$/m);
    assert.deepEqual((await reconciledOnRawTopic()).sort(), [...lost].sort(), 'nothing more written');
    assert.deepEqual(
      [...atOpenCx()].filter(([, count]) => count !== 1),
      [],
      'every message at OpenCX exactly once',
    );
    assert.ok(!(await watermarkKeys()).includes(org.orgId), 'the watermark is not moved');
  });

  it("given another run holding the organisation's lease, when a real run starts, then it exits 75 naming the holder and writes nothing; once the lease is let go, it writes", async () => {
    const [message] = conversations(1, 1, 'leased');
    assert.ok(message);
    const replica = createRedisReconcileLease(redis, {
      prefix: pipeline.env.REDIS_KEY_PREFIX ?? '',
      owner: 'replica-7f3a',
      leaseMs: 60_000,
    });
    assert.equal(await replica.take(org.orgId), true);
    let held;
    try {
      held = await reconcile(['--org', org.orgId, '--since', '10m'], pipeline.env);
      assert.equal(await replica.renew(org.orgId), true, 'the lease is still the replica’s');
    } finally {
      await replica.release(org.orgId);
    }

    assert.equal(held.code, EXIT_LEASED);
    assert.equal(held.out, '');
    assert.match(
      held.err,
      new RegExp(
        `^reconcile: organisation ${org.orgId} is being reconciled now by replica-7f3a \\(its lease runs out in (60|59) s unless that run renews it\\): wait for that run to end, then run this again\\n$`,
      ),
    );
    assert.ok(!(await reconciledOnRawTopic()).includes(message.id), 'nothing written under the lease');

    const free = await reconcile(['--org', org.orgId, '--since', '10m'], pipeline.env);

    assert.equal(free.code, 0, free.err);
    assert.deepEqual(
      (await reconciledOnRawTopic()).filter((id) => id === message.id),
      [message.id],
      'written once the lease was free',
    );
  });

  it('given bad options, when it runs, then it exits 2 naming the option and prints the usage; an organisation nobody registered exits 1 saying what to check', async () => {
    for (const [args, error] of [
      [['--since', '2h'], /^reconcile: --org is required/],
      [['--org', org.orgId, '--since', 'yesterday'], /^reconcile: --since "yesterday" is not an ISO date/],
      [['--org', org.orgId, '--since', '1h', '--until', '2h'], /^reconcile: --until .* is not after --since/],
      [['--org', org.orgId, '--dry'], /^reconcile: Unknown option '--dry'/],
    ] as const) {
      const run = await reconcile(args, pipeline.env);
      assert.equal(run.code, 2, args.join(' '));
      const [first, usage, ...more] = run.err.trim().split('\n');
      assert.match(first ?? '', error);
      assert.match(usage ?? '', /^usage: npm run reconcile -- --org ORG_ID \[--since/);
      assert.deepEqual(more, []);
      assert.equal(run.out, '');
    }

    const unknown = await reconcile(['--org', 'no-such-org', '--dry-run'], pipeline.env);

    assert.equal(unknown.code, 1);
    assert.match(
      unknown.err,
      /^reconcile: organisation "no-such-org" is not known .*check --org and KAFKA_TOPIC_PREFIX/,
    );
    assert.equal(unknown.out, '');
  });
});
