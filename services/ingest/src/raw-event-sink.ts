/**
 * The data path's last step: a verified batch becomes raw records keyed by organisation,
 * written durably. Each record is the Avro of its envelope (written once per batch for the
 * events that share it: time, route, organisation, portal, type) followed by the event's bytes
 * exactly as received.
 */
import { RAW_WEBHOOK_EVENT_RECORD, type WebhookRoute } from '../../../lib/contracts/index.ts';
import type { Kafka } from 'kafkajs';
import {
  BatchingPublisher,
  ORDERING_KEY_HEADER,
  createDurableProducer,
  type TopicLimit,
} from '../../../lib/kafka/index.ts';
import type { Logger } from '../../../lib/log.ts';
import type { Org } from '../../../lib/orgs/index.ts';
import { withAvroStringTail, type AvroCodec } from '../../../lib/registry.ts';
import type { RawEventSink } from './deps.ts';

/**
 * The raw topic's writer. Concurrent webhook requests share acks=all writes; 4 s leaves an
 * answer within HubSpot's 5 s. Its own producer (not the shared one that writes organisations):
 * it may be replaced after a failed send. One send at a time keeps the raw topic in the order
 * requests arrived.
 */
export const createRawTopicPublisher = (options: {
  readonly kafka: Kafka;
  readonly limits: ReadonlyMap<string, TopicLimit>;
  readonly logger: Logger;
  readonly onProducerRebuilt: () => void;
}): BatchingPublisher =>
  new BatchingPublisher({
    createProducer: () => createDurableProducer(options.kafka),
    limits: options.limits,
    // No timer: a send starts at the end of the event loop's turn that read its first request
    // (the requests read in that turn share it). A linger would hold every 1-event request for
    // its whole length.
    lingerMs: 0,
    // Up to 3,000 records a send: fewer acks=all round trips per event (the patched kafkajs groups
    // a send by partition in linear time), and faster than 1,000 or 5,000 in bench:ingest
    // (bench/README.md). The publisher still splits a send at one record batch's bytes per partition.
    maxBatchMessages: 3000,
    sendTimeoutMs: 4000,
    failingForMs: 30000,
    logger: options.logger,
    onProducerRebuilt: options.onProducerRebuilt,
  });

export const createRawEventSink = (deps: {
  readonly codec: Pick<AvroCodec, 'encodeRecordHead'>;
  readonly publisher: Pick<BatchingPublisher, 'publish'>;
  readonly topic: string;
  readonly now: () => number;
}): RawEventSink => {
  const { codec, publisher, topic } = deps;
  // The last envelope written, kept across calls: 1-event webhooks arriving in the same
  // millisecond from one portal (thousands a second when busy) share it.
  let last:
    | {
        receivedAt: number;
        route: WebhookRoute;
        org: Org | undefined;
        portalId: number;
        subscriptionType: string;
        head: Buffer;
      }
    | undefined;
  return async (route, events) => {
    const receivedAt = deps.now();
    const heads = new Map<string, Buffer>();
    const messages = events.map(({ event, org }) => {
      const key = org ? org.orgId : `portal:${event.portalId}`;
      let head: Buffer | undefined;
      // Most events of a batch share the previous one's envelope: no look-up key to build then.
      if (
        last !== undefined &&
        last.receivedAt === receivedAt &&
        last.route === route &&
        last.org === org &&
        last.portalId === event.portalId &&
        last.subscriptionType === event.subscriptionType
      )
        head = last.head;
      else {
        const headKey = `${key}\0${event.portalId}\0${event.subscriptionType}`;
        head = heads.get(headKey);
        if (head === undefined) {
          head = codec.encodeRecordHead(RAW_WEBHOOK_EVENT_RECORD, {
            receivedAt,
            route,
            orgId: org?.orgId ?? null,
            portalId: event.portalId,
            subscriptionType: event.subscriptionType,
          });
          heads.set(headKey, head);
        }
        last = {
          receivedAt,
          route,
          org,
          portalId: event.portalId,
          subscriptionType: event.subscriptionType,
          head,
        };
      }
      return {
        key,
        headers: { [ORDERING_KEY_HEADER]: `${key}:${event.objectKey}` },
        // `event` is the body's bytes, which ingest decoded as strict UTF-8: a valid Avro string.
        value: withAvroStringTail(head, event.json),
      };
    });
    // Rejects a record the topic cannot store (recordTooLarge → 413) before it joins a shared send.
    await publisher.publish(topic, messages);
  };
};
