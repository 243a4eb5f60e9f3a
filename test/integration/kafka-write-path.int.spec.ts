import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { Kafka } from 'kafkajs';
import { createDomainEventPublisher, type DomainEventPublisher } from '../../lib/domain-event-publisher.ts';
import type { CustomerMessage } from '../../lib/domain-events.ts';
import { ErrorCode, PipelineError } from '../../lib/errors.ts';
import { createKafka, ensureTopics, topicsFor } from '../../lib/kafka/index.ts';
import { createLogger } from '../../lib/log.ts';
import { AvroCodec } from '../../lib/registry.ts';
import { MAX_BODY_BYTES } from '../../lib/http-server.ts';
import * as fixtures from '../fakes/hubspot-fixtures.ts';
import { startTestPipeline, waitFor, type TestPipeline } from '../support/pipeline.ts';
import { readTopicToEnd } from '../support/topic-reader.ts';

/**
 * Regression for issue 7: bodies of about 1 MiB (under ingest's body limit, over the broker's
 * default 1,048,588-byte record limit) during a flood of small batches made kafkajs fail whole
 * shared sends and roll back idempotent sequence numbers of partitions the broker had written:
 * events answered 200 were never stored, small requests got 503, partitions stayed stuck.
 */
describe('Kafka write path: nothing acknowledged is lost (issue 7)', function () {
  this.timeout(180000);
  const logger = createLogger('kafka-write-path-test', process.env.TEST_LOG_LEVEL ?? 'silent');

  describe('ingest flooded by concurrent senders with ~1 MiB bodies among small batches', () => {
    let pipeline: TestPipeline;
    let kafka: Kafka;
    let codec: AvroCodec;

    before(async () => {
      pipeline = await startTestPipeline({ processor: false, outbound: false });
      kafka = createKafka({
        clientId: 'kafka-write-path-test',
        brokers: (process.env.KAFKA_BROKERS ?? '').split(','),
        logger,
      });
      codec = new AvroCodec({
        url: pipeline.env.SCHEMA_REGISTRY_URL ?? '',
        subjectPrefix: pipeline.env.KAFKA_TOPIC_PREFIX ?? '',
      });
    });
    after(async () => {
      await pipeline?.stop();
    });

    it('given 16 senders for 15 s, when the raw topic is read back, then every event answered 200 is on it as sent, ~1 MiB bodies got 413 and no other request 503', async () => {
      const senders = 16;
      const floodMs = 15000;
      const maxRequestsPerSender = 300;
      const runTag = randomBytes(3).toString('hex');
      let nextEventId = 1;
      // Unrouted portals, many of them: records spread over every partition of the raw topic.
      const portalIds = Array.from({ length: 40 }, (_, index) => 30_000_000 + index);
      const eventOf = (portalId: number, text: string) =>
        fixtures.webhookEvent({
          portalId,
          eventId: nextEventId++,
          messageId: `flood-${runTag}-${nextEventId}`,
          ...{ text },
        });
      type Sent = { kind: 'small' | 'medium' | 'oversized'; events: object[]; status: number; body: unknown };
      const sent: Sent[] = [];

      /** One event whose body is just under ingest's 1 MiB limit: its record is over the broker's. */
      const oversized = (portalId: number) => {
        const event = eventOf(portalId, '');
        const padding = MAX_BODY_BYTES - 40 - JSON.stringify([event]).length;
        return [{ ...event, text: 'x'.repeat(padding) }];
      };

      const deadline = Date.now() + floodMs;
      const sender = async (index: number) => {
        for (let request = 0; request < maxRequestsPerSender && Date.now() < deadline; request++) {
          const portalId = portalIds[(index * 7 + request) % portalIds.length] as number;
          let kind: Sent['kind'] = 'small';
          let events: object[];
          if (request % 40 === 10 && index % 4 === 0) {
            kind = 'oversized';
            events = oversized(portalId);
          } else if (request % 40 === 20 && index % 2 === 1) {
            // Fits alone; two on one partition do not (1.2 MB > 1,048,588).
            kind = 'medium';
            events = [eventOf(portalId, 'm'.repeat(600_000))];
          } else {
            events = Array.from({ length: 1 + (request % 3) }, (_, n) =>
              eventOf(portalIds[(request + n) % 40] ?? portalId, `hello ${n}`),
            );
          }
          const response = await pipeline.postBatch(events);
          sent.push({ kind, events, status: response.status, body: await response.json() });
        }
      };
      await Promise.all(Array.from({ length: senders }, (_, index) => sender(index)));

      const count = (kind: Sent['kind'], status: number) =>
        sent.filter((entry) => entry.kind === kind && entry.status === status).length;
      const figures = Object.fromEntries(
        (['small', 'medium', 'oversized'] as const).map((kind) => [
          kind,
          Object.fromEntries(
            [...new Set(sent.filter((entry) => entry.kind === kind).map((entry) => entry.status))].map(
              (status) => [status, count(kind, status)],
            ),
          ),
        ]),
      );
      console.log(`      flood: ${sent.length} requests by status ${JSON.stringify(figures)}`);

      const stored = new Map<number, string[]>();
      for (const record of await readTopicToEnd(
        kafka,
        `${pipeline.env.KAFKA_TOPIC_PREFIX}hubspot.webhook-events`,
      )) {
        const decoded = await codec.decodeRecord(record.value as Buffer);
        const json = decoded.record.event as string;
        const eventId = (JSON.parse(json) as { eventId: number }).eventId;
        stored.set(eventId, [...(stored.get(eventId) ?? []), json]);
      }
      const acknowledged = sent.filter((entry) => entry.status === 200).flatMap((entry) => entry.events);
      const missing = acknowledged.filter((event) => !stored.has((event as { eventId: number }).eventId));
      const altered = acknowledged.filter((event) =>
        (stored.get((event as { eventId: number }).eventId) ?? []).some(
          (json) => json !== JSON.stringify(event),
        ),
      );
      console.log(
        `      raw topic: ${acknowledged.length} events answered 200, ${missing.length} missing, ${stored.size} distinct stored`,
      );

      assert.deepEqual(missing.length, 0, 'every event answered 200 is on the raw topic');
      assert.deepEqual(altered.length, 0, 'stored exactly as sent');
      assert.deepEqual(
        sent
          .filter((entry) => entry.kind === 'oversized' && entry.status !== 413)
          .map((entry) => entry.status),
        [],
        'a body whose record the topic cannot store is refused with 413',
      );
      const refused = sent.find((entry) => entry.kind === 'oversized');
      assert.equal((refused?.body as { error?: string } | undefined)?.error, 'record_too_large');
      assert.deepEqual(
        sent
          .filter((entry) => entry.kind !== 'oversized' && entry.status !== 200)
          .map((entry) => entry.status),
        [],
        'every other request is answered 200',
      );
      assert.ok(count('oversized', 413) > 0 && count('medium', 200) > 0, 'the flood had large bodies in it');
      const ready = await fetch(`${pipeline.ingestUrl}/readyz`);
      assert.equal(ready.status, 200, 'ingest is ready after the flood');
    });

    it('given a raw topic configured to store less than the broker, when a body over its max.message.bytes is posted, then 413 and a smaller one 200', async () => {
      const prefix = `test-${randomBytes(4).toString('hex')}-`;
      const admin = kafka.admin();
      await admin.connect();
      try {
        await admin.createTopics({
          topics: [
            {
              topic: `${prefix}hubspot.webhook-events`,
              numPartitions: 3,
              replicationFactor: 1,
              configEntries: [{ name: 'max.message.bytes', value: '200000' }],
            },
          ],
          waitForLeaders: true,
        });
      } finally {
        await admin.disconnect();
      }
      const small = await startTestPipeline({
        processor: false,
        outbound: false,
        env: { KAFKA_TOPIC_PREFIX: prefix },
      });
      try {
        const tooLarge = await small.postBatch([
          fixtures.webhookEvent({ portalId: 30_000_001, ...{ text: 'x'.repeat(250_000) } }),
        ]);
        assert.equal(tooLarge.status, 413);
        assert.equal(((await tooLarge.json()) as { error: string }).error, 'record_too_large');
        const fits = await small.postBatch([
          fixtures.webhookEvent({ portalId: 30_000_001, ...{ text: 'x'.repeat(150_000) } }),
        ]);
        assert.equal(fits.status, 200);
      } finally {
        await small.stop();
      }
    });
  });

  describe('ingest readiness follows its writes', () => {
    it('given the raw topic deleted under a running ingest, when writes fail, then /readyz answers 503; when the topic is back and a write succeeds, 200 again', async () => {
      const pipeline = await startTestPipeline({ processor: false, outbound: false });
      const kafka = createKafka({
        clientId: 'kafka-write-path-test',
        brokers: (process.env.KAFKA_BROKERS ?? '').split(','),
        logger,
      });
      const rawTopic = `${pipeline.env.KAFKA_TOPIC_PREFIX}hubspot.webhook-events`;
      const admin = kafka.admin();
      await admin.connect();
      try {
        assert.equal(
          (await pipeline.postBatch([fixtures.webhookEvent({ portalId: 30_000_002 })])).status,
          200,
        );
        assert.equal((await fetch(`${pipeline.ingestUrl}/readyz`)).status, 200);

        await admin.deleteTopics({ topics: [rawTopic] });
        await waitFor('a write to fail with 503', async () => {
          const response = await pipeline.postBatch([fixtures.webhookEvent({ portalId: 30_000_002 })]);
          return response.status === 503;
        });
        const notReady = await fetch(`${pipeline.ingestUrl}/readyz`);
        assert.equal(notReady.status, 503, 'not ready while writes fail, though the producer is connected');
        assert.equal(((await notReady.json()) as { error: string }).error, 'not_ready');

        await ensureTopics(admin, [topicsFor(pipeline.env.KAFKA_TOPIC_PREFIX ?? '').rawEvents], {
          partitions: 3,
          replicationFactor: 1,
        });
        await waitFor(
          'a write to succeed again',
          async () =>
            (await pipeline.postBatch([fixtures.webhookEvent({ portalId: 30_000_002 })])).status === 200,
          60000,
          500,
        );
        assert.equal(
          (await fetch(`${pipeline.ingestUrl}/readyz`)).status,
          200,
          'ready after a successful write',
        );
      } finally {
        await admin.disconnect();
        await pipeline.stop();
      }
    });
  });

  describe('domain-event publisher with too-large events among concurrent publishes', () => {
    const runId = randomBytes(4).toString('hex');
    const prefix = `test-${runId}-`;
    const topics = topicsFor(prefix);
    let kafka: Kafka;
    let codec: AvroCodec;
    let publisher: DomainEventPublisher;

    before(async () => {
      kafka = createKafka({
        clientId: 'kafka-write-path-test',
        brokers: (process.env.KAFKA_BROKERS ?? '').split(','),
        logger,
      });
      const admin = kafka.admin();
      await admin.connect();
      try {
        await ensureTopics(admin, [topics.domainEvents], { partitions: 3, replicationFactor: 1 });
      } finally {
        await admin.disconnect();
      }
      codec = new AvroCodec({ url: process.env.SCHEMA_REGISTRY_URL ?? '', subjectPrefix: prefix });
      await codec.registerAll();
      publisher = await createDomainEventPublisher({
        kafka,
        codec,
        topics: [topics.domainEvents.name],
        logger,
      });
    });
    after(async () => {
      await publisher?.drain();
    });

    it('given 1.2 MB customer messages among 400 concurrent publishes, when the topic is read back, then every publish that resolved is on it and the large ones failed as recordTooLarge (not retriable)', async () => {
      const message = (index: number, text: string): CustomerMessage => ({
        type: 'customer-message',
        eventId: `evt-${runId}-${index}`,
        orgId: `org-${index % 13}`,
        portalId: 1,
        occurredAt: Date.now(),
        threadId: `thread-${index % 29}`,
        messageId: `msg-${index}`,
        text,
        subject: null,
        channelId: '1000',
        channelAccountId: '2000',
        channelType: 'chat',
        senderActorId: 'V-1',
        senderName: null,
        senderDeliveryType: null,
        senderDeliveryValue: null,
      });
      const large = new Set([25, 100, 175, 250, 325]);
      const outcomes: { eventId: string; large: boolean; error: unknown }[] = [];
      // Four waves of 100, so later sends follow the failed ones (where lost writes showed up).
      for (let wave = 0; wave < 4; wave++) {
        await Promise.all(
          Array.from({ length: 100 }, async (_, n) => {
            const index = wave * 100 + n;
            const isLarge = large.has(index);
            const event = message(index, isLarge ? 'L'.repeat(1_200_000) : `hello ${index}`);
            const error = await publisher.publish(topics.domainEvents.name, [event]).then(
              () => undefined,
              (reason: unknown) => reason,
            );
            outcomes.push({ eventId: event.eventId, large: isLarge, error });
          }),
        );
      }
      const stored = new Set<string>();
      for (const record of await readTopicToEnd(kafka, topics.domainEvents.name))
        stored.add((await codec.decodeEvent(record.value as Buffer)).eventId);

      const resolved = outcomes.filter((outcome) => outcome.error === undefined);
      assert.deepEqual(
        resolved.filter((outcome) => !stored.has(outcome.eventId)).map((outcome) => outcome.eventId),
        [],
        'every publish that resolved is on the domain topic',
      );
      assert.deepEqual(
        outcomes
          .filter((outcome) => outcome.large)
          .map((outcome) =>
            outcome.error instanceof PipelineError
              ? [outcome.error.code, outcome.error.retriable]
              : [String(outcome.error)],
          ),
        Array.from({ length: large.size }, () => [ErrorCode.recordTooLarge, false]),
      );
      assert.equal(resolved.length, 400 - large.size, 'every other publish resolved');
    });
  });
});
