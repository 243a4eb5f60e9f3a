import assert from 'node:assert/strict';
import { createTestRedis } from '../support/redis.ts';
import type { DomainEvent } from '../../lib/domain-events.ts';
import { createTenantGate } from '../../lib/kafka/index.ts';
import { createLogger } from '../../lib/log.ts';
import type { Redis } from '../../lib/redis.ts';
import { Registry } from 'prom-client';
import { loadProcessorConfig } from '../../services/processor/src/config.ts';
import { createProcessorMetrics } from '../../services/processor/src/metrics.ts';
import { connectProcessor, rawEventConsumer } from '../../services/processor/src/raw-event-consumer.ts';
import { runReprocess, type Output } from '../../tools/reprocess/cli.ts';
import * as fixtures from '../fakes/hubspot-fixtures.ts';
import { startTestPipeline, waitFor, type TestOrg, type TestPipeline } from '../support/pipeline.ts';

/**
 * The processor as it was before a rule fix: the real handler, consumer, dedup store and property
 * clock of services/processor/src/raw-event-consumer.ts, except that the domain events `wronglySkips` picks are
 * never written. That stands for a rule that ignored them: afterwards Redis and the topics are as
 * an `ignore` leaves them (dedup key confirmed, clock raised, nothing on the domain topic, so
 * nothing at OpenCX). The handler's own rules cannot be swapped from outside, and this seam
 * changes nothing but what reaches the topic.
 */
const startProcessorWithRuleBug = async (
  env: Record<string, string>,
  wronglySkips: (event: DomainEvent) => boolean,
): Promise<{ stop: () => Promise<void> }> => {
  const config = loadProcessorConfig(env);
  const logger = createLogger('old-processor', 'silent');
  const { connections, redis, events, close } = await connectProcessor(config, 'old-processor', logger);
  const consumer = rawEventConsumer({
    config,
    connections,
    redis,
    gate: createTenantGate({ initialBackoffMs: 1000, maxBackoffMs: 5000 }),
    metrics: createProcessorMetrics(new Registry()),
    publish: (decided) =>
      events.publish(
        connections.topics.domainEvents.name,
        decided.filter((event) => !wronglySkips(event)),
      ),
    instance: 'old-processor',
    logger,
  })();
  await consumer.start();
  return {
    stop: async () => {
      await consumer.stop();
      await close();
    },
  };
};

/** runReprocess in this process, its output kept. */
const reprocess = async (
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
  const code = await runReprocess(args, env, output);
  return { code, out, err };
};

describe('npm run reprocess: a rule bug fixed after the fact is repaired from the raw log (real Kafka, registry, Redis)', function () {
  this.timeout(60000);
  let pipeline: TestPipeline;
  let org: TestOrg;
  let redis: Redis;
  /** The live processor of the first test, with last week's rules: it keeps running while reprocess runs. */
  let live: { stop: () => Promise<void> } | undefined;
  const texts = ['Where is my order?', 'I would like a refund, please', 'Can I change my address?'];

  const sendsOf = (text: string): number =>
    pipeline.opencx.effects.filter(
      (effect) =>
        effect.kind === 'message-sent' &&
        (effect.body as { message: { text: string } }).message.text === text,
    ).length;
  const domainRecords = async (): Promise<number> => {
    const kafka = (await import('../../lib/kafka/index.ts')).createKafka({
      clientId: 'reprocess-test',
      brokers: (pipeline.env.KAFKA_BROKERS ?? '').split(','),
      logger: createLogger('reprocess-test', 'silent'),
    });
    const admin = kafka.admin();
    await admin.connect();
    try {
      const topic = `${pipeline.env.KAFKA_TOPIC_PREFIX}pipeline.domain-events`;
      return (await admin.fetchTopicOffsets(topic)).reduce((sum, { high }) => sum + Number(high), 0);
    } finally {
      await admin.disconnect();
    }
  };

  before(async () => {
    pipeline = await startTestPipeline({ processor: false });
    org = await pipeline.createOrg();
    redis = createTestRedis('reprocess-test');
  });
  after(async () => {
    redis?.disconnect();
    await Promise.all([live?.stop(), pipeline?.stop()]);
  });

  it('given a processor whose rule wrongly skipped a refund question, when reprocessed with the fixed rules, then OpenCX gets exactly that message and nothing twice', async () => {
    // Last week's rule took messages mentioning a refund for automated notices.
    live = await startProcessorWithRuleBug(
      pipeline.env,
      (event) => event.type === 'customer-message' && /refund/i.test(event.text),
    );
    const messages = texts.map((text) => fixtures.message({ kind: 'customer-chat', text }));
    for (const message of messages) pipeline.hubspot.addMessage(message, { portalId: org.portalId });
    const response = await pipeline.postBatch(
      messages.map((message) => fixtures.webhookEventFor(message, { portalId: org.portalId })),
    );
    assert.equal(response.status, 200);
    await waitFor(
      'the two messages the old rules let through at OpenCX',
      () => sendsOf(texts[0]!) + sendsOf(texts[2]!) === 2,
      30000,
    );
    // The skipped one was handled too (its dedup key done), not merely late.
    await waitFor(
      'the old processor to have handled the refund question',
      async () =>
        (await redis.get(`${pipeline.env.REDIS_KEY_PREFIX}dedup:${org.orgId}:message:${messages[1]!.id}`)) ===
        'done',
    );
    assert.equal(sendsOf(texts[1]!), 0);
    const recordsBefore = await domainRecords();

    const dry = await reprocess(['--org', org.orgId, '--since', '10m', '--dry-run'], pipeline.env);

    assert.equal(dry.code, 0, dry.err);
    assert.match(dry.out, /^new effect +1 +customer-message 1$/m, dry.out);
    assert.match(dry.out, /^unchanged +2 /m, dry.out);
    assert.match(dry.out, /^newly skipped +0$/m, dry.out);
    assert.match(
      dry.out,
      new RegExp(
        `new effect: raw \\d+@\\d+ conversation\\.newMessage message:${messages[1]!.id}  customer-message [0-9a-f]{32}`,
      ),
    );
    assert.match(
      dry.out,
      /^dry run: would write 1 new domain event to .*pipeline\.domain-events; nothing written$/m,
    );
    assert.match(dry.err, /reprocessing: 3\/3/, 'progress on stderr');
    assert.equal(await domainRecords(), recordsBefore, 'a dry run writes nothing');

    const real = await reprocess(['--org', org.orgId, '--since', '10m'], pipeline.env);

    assert.equal(real.code, 0, real.err);
    assert.match(real.out, /^wrote 1 new domain event to .*; outbound applies them/m, real.out);
    await waitFor('the refund question at OpenCX', () => sendsOf(texts[1]!) === 1, 30000);

    const again = await reprocess(['--org', org.orgId, '--since', '10m'], pipeline.env);

    assert.equal(again.code, 0, again.err);
    assert.match(again.out, /^unchanged +3 /m, again.out);
    assert.match(again.out, /^no new domain events: nothing written$/m);
    // Nothing was written by the second run, so nothing more can reach OpenCX: the counts are final.
    assert.equal(await domainRecords(), recordsBefore + 1);
    assert.deepEqual(texts.map(sendsOf), [1, 1, 1]);
    const keys = pipeline.opencx.effects.map((effect) => `${effect.kind}:${effect.idempotencyKey}`);
    assert.equal(new Set(keys).size, keys.length, 'no effect applied twice');
    assert.equal(pipeline.opencx.effects.filter((effect) => effect.kind === 'session-created').length, 3);
  });

  it('given an organisation nobody registered, or a window without events, when reprocessed, then each says so and what to check', async () => {
    // Two independent runs at once: each spends most of its time leaving its consumer groups.
    const [unknown, empty] = await Promise.all([
      reprocess(['--org', 'no-such-org', '--since', '1h', '--dry-run'], pipeline.env),
      reprocess(
        [
          '--org',
          org.orgId,
          '--since',
          '2020-01-01T00:00:00Z',
          '--until',
          '2020-01-02T00:00:00Z',
          '--dry-run',
        ],
        pipeline.env,
      ),
    ]);

    assert.equal(unknown.code, 1);
    assert.match(
      unknown.err,
      /^reprocess: organisation "no-such-org" is not known .*check --org and KAFKA_TOPIC_PREFIX/,
    );
    assert.equal(unknown.out, '');
    assert.equal(empty.code, 0, empty.err);
    assert.match(
      empty.out,
      new RegExp(`^no raw events of ${org.orgId} in this window: nothing to reprocess`, 'm'),
    );
  });

  it('given bad options, when reprocess runs, then it exits 2 naming the option and prints the usage', async () => {
    for (const [args, error] of [
      [['--org', org.orgId, '--since', 'yesterday'], /^reprocess: --since "yesterday" is not an ISO date/],
      [['--org', org.orgId, '--since', '2h', '--until', '3h'], /^reprocess: --until .* is not after --since/],
      [['--since', '2h'], /^reprocess: --org is required/],
      [['--org', org.orgId], /^reprocess: --since is required/],
      [
        ['--org', org.orgId, '--since', '2h', '--max-records', '0'],
        /^reprocess: --max-records "0" is not a positive/,
      ],
    ] as const) {
      const run = await reprocess(args, pipeline.env);
      assert.equal(run.code, 2, args.join(' '));
      const [first, usage] = run.err.trim().split('\n');
      assert.match(first ?? '', error);
      assert.match(usage ?? '', /^usage: npm run reprocess -- --org ORG_ID --since/);
    }
  });
});
