import assert from 'node:assert/strict';
import type { Kafka, Producer } from 'kafkajs';
import {
  readDeadLetters,
  type ArchivedDeadLetter,
  type DeadLetterFilter,
} from '../../lib/dead-letters/index.ts';
import { orderingKeyOf, type RepReply } from '../../lib/domain-events.ts';
import { deriveEventId } from '../../lib/ids.ts';
import { createDurableProducer, createKafka, ORDERING_KEY_HEADER, topicsFor } from '../../lib/kafka/index.ts';
import { createLogger } from '../../lib/log.ts';
import { AvroCodec } from '../../lib/registry.ts';
import * as fixtures from '../fakes/hubspot-fixtures.ts';
import { startTestPipeline, waitFor, type TestOrg, type TestPipeline } from '../support/pipeline.ts';

/**
 * Issue 7: three poison payloads that stalled their conversation forever (retried without end,
 * the offset never committed, nothing on the dead-letter topic). Each must end as one dead letter,
 * survive a restart of its consumer without a second letter, and let the conversation go on.
 */
describe('poison records end as one dead letter and their conversation goes on (real Kafka, registry, Redis)', function () {
  this.timeout(180000);
  let pipeline: TestPipeline;
  let kafka: Kafka;
  let codec: AvroCodec;
  let producer: Producer;
  let org: TestOrg;
  let topics: ReturnType<typeof topicsFor>;
  let prefix: string;

  before(async () => {
    pipeline = await startTestPipeline();
    org = await pipeline.createOrg();
    prefix = pipeline.env.KAFKA_TOPIC_PREFIX ?? '';
    topics = topicsFor(prefix);
    kafka = createKafka({
      clientId: 'poison-records-test',
      brokers: (pipeline.env.KAFKA_BROKERS ?? '').split(','),
      logger: createLogger('poison-records-test', 'silent'),
    });
    codec = new AvroCodec({ url: pipeline.env.SCHEMA_REGISTRY_URL ?? '', subjectPrefix: prefix });
    await codec.registerAll();
    producer = createDurableProducer(kafka);
    await producer.connect();
  });
  after(async () => {
    await producer?.disconnect();
    await pipeline?.stop();
  });

  const sentTexts = (): string[] =>
    pipeline.opencx.effects
      .filter((effect) => effect.kind === 'message-sent')
      .map((effect) => (effect.body as { message: { text: string } }).message.text);

  /** A live-chat thread of `org`, and a way to post its customer's messages through ingest. */
  const conversation = () => {
    const threadId = fixtures.newThreadId();
    pipeline.hubspot.setThread(fixtures.thread({ id: threadId }), { portalId: org.portalId });
    return {
      threadId,
      async say(text: string): Promise<void> {
        const message = fixtures.message({ threadId, kind: 'customer-chat', text });
        pipeline.hubspot.addMessage(message, { portalId: org.portalId });
        const event = fixtures.webhookEventFor(message, { portalId: org.portalId });
        assert.equal((await pipeline.postBatch([event])).status, 200);
      },
    };
  };

  /** Every record on the dead-letter topic, duplicates included (the reader would hide those). */
  const recordsOnDeadLetterTopic = async (): Promise<number> => {
    const admin = kafka.admin();
    await admin.connect();
    try {
      return (await admin.fetchTopicOffsets(topics.deadLetters.name)).reduce(
        (sum, { high }) => sum + Number(high),
        0,
      );
    } finally {
      await admin.disconnect();
    }
  };
  const lettersFor = async (filter: DeadLetterFilter): Promise<readonly ArchivedDeadLetter[]> =>
    (await readDeadLetters({ kafka, codec, topic: topics.deadLetters.name, filter })).letters;

  const committedOffset = async (groupId: string, topic: string, partition: number): Promise<number> => {
    const admin = kafka.admin();
    await admin.connect();
    try {
      const [offsets] = await admin.fetchOffsets({ groupId, topics: [topic] });
      return Number(offsets?.partitions.find((entry) => entry.partition === partition)?.offset ?? -1);
    } finally {
      await admin.disconnect();
    }
  };

  /**
   * The letter is there once, the later message of its conversation reached OpenCX; then the
   * consuming service is stopped and a new one started: a marker message sent after the restart
   * reaches OpenCX, there is still one letter, and the group's offset is past the poison.
   */
  const assertEndedOnce = async (options: {
    service: 'processor' | 'outbound';
    chat: ReturnType<typeof conversation>;
    letterFilter: DeadLetterFilter & { eventType: string };
    lettersBefore: number;
  }): Promise<ArchivedDeadLetter> => {
    const letters = (await lettersFor(options.letterFilter)).filter(
      ({ letter }) => letter.eventType === options.letterFilter.eventType,
    );
    assert.equal(letters.length, 1, 'one dead letter');
    assert.equal(await recordsOnDeadLetterTopic(), options.lettersBefore + 1, 'written once');
    const [archived] = letters as [ArchivedDeadLetter];
    assert.equal(archived.letter.service, options.service);

    if (options.service === 'processor') {
      await pipeline.stopProcessor();
      await pipeline.startProcessor();
    } else {
      await pipeline.stopOutbound();
      await pipeline.startOutbound();
    }
    const marker = `marker after restarting ${options.service} (${options.chat.threadId})`;
    await options.chat.say(marker);
    await waitFor('the marker after the restart at OpenCX', () => sentTexts().includes(marker), 60000);

    assert.equal(
      await recordsOnDeadLetterTopic(),
      options.lettersBefore + 1,
      'no second letter after the restart',
    );
    const committed = await committedOffset(
      `${prefix}${options.service}`,
      archived.letter.sourceTopic,
      archived.letter.partition,
    );
    assert.ok(
      committed > Number(archived.letter.offset),
      `committed offset ${committed} is past the poison at ${archived.letter.offset}`,
    );
    return archived;
  };

  it('(a) given a raw newMessage with occurredAt 1.5 (its domain event fails Avro encoding), then one malformed_event letter, and the thread goes on, across a processor restart', async () => {
    const chat = conversation();
    const lettersBefore = await recordsOnDeadLetterTopic();
    const poison = fixtures.message({ threadId: chat.threadId, kind: 'customer-chat', text: 'poison (a)' });
    pipeline.hubspot.addMessage(poison, { portalId: org.portalId });
    const event = fixtures.webhookEventFor(poison, { portalId: org.portalId, occurredAt: 1.5 });
    // Ingest refuses it now, so it is written as ingest wrote it before: keyed by organisation.
    await producer.send({
      topic: topics.rawEvents.name,
      acks: -1,
      messages: [
        {
          key: org.orgId,
          headers: { [ORDERING_KEY_HEADER]: `${org.orgId}:thread:${chat.threadId}` },
          value: await codec.encodeRecord('io.opencx.pipeline.RawWebhookEvent', {
            receivedAt: Date.now(),
            route: 'OAUTH_APP',
            orgId: org.orgId,
            portalId: org.portalId,
            subscriptionType: event.subscriptionType,
            event: JSON.stringify(event),
          }),
        },
      ],
    });
    await chat.say('after poison (a)');

    await waitFor(
      'the later message of the thread at OpenCX',
      () => sentTexts().includes('after poison (a)'),
      60000,
    );
    await waitFor('the letter', async () => (await recordsOnDeadLetterTopic()) > lettersBefore);
    const archived = await assertEndedOnce({
      service: 'processor',
      chat,
      letterFilter: { orgId: org.orgId, reason: 'malformed_event', eventType: 'conversation.newMessage' },
      lettersBefore,
    });
    assert.equal(archived.letter.sourceTopic, topics.rawEvents.name);
    assert.match(archived.letter.error, /long/);
    assert.ok(!sentTexts().includes('poison (a)'));
  });

  it('(b) given a 1.2 MB message (its domain event is over the broker record limit), then one record_too_large letter, and the thread goes on, across a processor restart', async () => {
    const chat = conversation();
    const lettersBefore = await recordsOnDeadLetterTopic();
    const huge = `poison (b) ${'x'.repeat(1_200_000)}`;
    await chat.say(huge);
    await chat.say('after poison (b)');

    await waitFor(
      'the later message of the thread at OpenCX',
      () => sentTexts().includes('after poison (b)'),
      90000,
    );
    await waitFor('the letter', async () => (await recordsOnDeadLetterTopic()) > lettersBefore);
    const archived = await assertEndedOnce({
      service: 'processor',
      chat,
      letterFilter: { orgId: org.orgId, reason: 'record_too_large', eventType: 'conversation.newMessage' },
      lettersBefore,
    });
    assert.equal(archived.letter.sourceTopic, topics.rawEvents.name);
    assert.ok(!sentTexts().includes(huge));
  });

  it('(c) given a rep COMMENT with occurredAt 9e15 on the domain topic (no ISO date), then one malformed_event letter, and the thread goes on, across an outbound restart', async () => {
    const chat = conversation();
    await chat.say('before poison (c)');
    await waitFor('the thread to have its session', () => sentTexts().includes('before poison (c)'), 60000);
    const lettersBefore = await recordsOnDeadLetterTopic();
    const poison: RepReply = {
      type: 'rep-reply',
      eventId: deriveEventId('poison-c', chat.threadId),
      orgId: org.orgId,
      portalId: org.portalId,
      threadId: chat.threadId,
      occurredAt: 9e15,
      messageId: fixtures.newMessageId(),
      text: 'internal note with an impossible date',
      actorId: 'A-2620022',
      internal: true,
      channelId: null,
    };
    await producer.send({
      topic: topics.domainEvents.name,
      acks: -1,
      messages: [
        {
          key: orderingKeyOf(poison),
          value: await codec.encodeEvent(poison),
          headers: { 'event-type': poison.type, 'event-id': poison.eventId },
        },
      ],
    });
    await chat.say('after poison (c)');

    await waitFor(
      'the later message of the thread at OpenCX',
      () => sentTexts().includes('after poison (c)'),
      60000,
    );
    await waitFor('the letter', async () => (await recordsOnDeadLetterTopic()) > lettersBefore);
    const archived = await assertEndedOnce({
      service: 'outbound',
      chat,
      letterFilter: { orgId: org.orgId, reason: 'malformed_event', eventType: 'rep-reply' },
      lettersBefore,
    });
    assert.equal(archived.letter.sourceTopic, topics.domainEvents.name);
    assert.equal(archived.letter.eventId, poison.eventId);
    assert.match(archived.letter.error, /occurredAt 9000000000000000/);
    assert.equal(archived.letter.headers?.['event-type'], 'rep-reply', 'the original headers are kept');
    assert.deepEqual(pipeline.opencx.violations, []);
  });
});
