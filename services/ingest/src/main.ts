/**
 * ingest: HubSpot webhook batches in, raw events on Kafka out.
 * Data path: POST /webhooks/hubspot → verify signature → parse batch → route each event to its
 * organisation by portalId → encode (Avro, registry) → one batched, acks=all write to the raw
 * topic keyed by organisation → 200. Nothing else happens inside the request.
 */
import {
  BatchingPublisher,
  ORDERING_KEY_HEADER,
  createDurableProducer,
  readTopicLimits,
} from '../../../lib/kafka/index.ts';
import { RAW_WEBHOOK_EVENT_RECORD } from '../../../lib/contracts/index.ts';
import { createLogger, type Logger } from '../../../lib/log.ts';
import { closeServer, createMetricsRegistry } from '../../../lib/metrics.ts';
import { registerOrgDirectoryMetrics, type Org } from '../../../lib/orgs/index.ts';
import { connectToPipeline } from '../../../lib/pipeline-connections.ts';
import { createRedis } from '../../../lib/redis.ts';
import { withAvroStringTail } from '../../../lib/registry.ts';
import { isEntryPoint, runAsProcess } from '../../../lib/service.ts';
import { createIngestApp, type RawEventSink } from './app.ts';
import { CONSOLE_DEFAULT_LIMITS } from './console/index.ts';
import { loadIngestConfig, type IngestConfig } from './config.ts';
import { createIngestMetrics } from './metrics.ts';
import { listen } from './http.ts';
import { createHubSpotOAuth, createRedisOAuthStateLedger, createSignedTokens } from './oauth.ts';
import { refreshExpiringTokens } from './token-refresher.ts';

export type RunningIngest = { readonly port: number; readonly stop: () => Promise<void> };

export const startIngest = async (
  config: IngestConfig,
  logger: Logger = createLogger('ingest', config.LOG_LEVEL),
): Promise<RunningIngest> => {
  // Adapters: Kafka (topics, Avro, producer) and the organisations.
  const connections = await connectToPipeline(config, {
    clientId: 'ingest',
    logger,
    withSessionLinks: false,
  });
  const { kafka, topics, codec, orgs, orgRepository, secretsKey } = connections;
  const registry = createMetricsRegistry('ingest');
  const metrics = createIngestMetrics(registry);
  registerOrgDirectoryMetrics(registry, orgs);

  // What the raw topic can store, so a record it would refuse is answered 413 before it is sent.
  const admin = kafka.admin();
  await admin.connect();
  const limits = await readTopicLimits(admin, [topics.rawEvents.name]).finally(() => admin.disconnect());
  // Concurrent webhook requests share acks=all writes; 4 s leaves an answer within HubSpot's 5 s.
  // Its own producer (not the shared one that writes organisations): it may be replaced after a
  // failed send. One send at a time keeps the raw topic in the order requests arrived.
  const publisher = new BatchingPublisher({
    createProducer: () => createDurableProducer(kafka),
    limits,
    // No timer: a send starts at the end of the event loop's turn that read its first request
    // (the requests read in that turn share it). A 2 ms linger held each 1-event request 1.9 ms:
    // 14k requests/s against 21k at 0, side by side.
    lingerMs: 0,
    // Up to 3,000 records a send (fewer acks=all round trips per event), now that the patched
    // kafkajs groups a send by partition in linear time. bench:ingest, 100-event batches,
    // alternating runs on one day: 3,000 gave 76k/81k/71k/66k events/s against 70k/55k at 1,000
    // and 62k/59k at 5,000. The publisher still splits a send at one record batch's bytes per partition.
    maxBatchMessages: 3000,
    sendTimeoutMs: 4000,
    failingForMs: 30000,
    logger,
    onProducerRebuilt: () => metrics.producerRebuilds.inc(),
  });
  await publisher.connect();

  // The data path: a verified batch becomes raw records keyed by organisation, written durably.
  // Each record is the Avro of its envelope (written once per batch for the events that share it:
  // time, route, organisation, portal, type) followed by the event's bytes exactly as received.
  const sink: RawEventSink = async (route, events) => {
    const receivedAt = Date.now();
    const heads = new Map<string, Buffer>();
    let last: { org: Org | undefined; portalId: number; subscriptionType: string; head: Buffer } | undefined;
    const messages = events.map(({ event, org }) => {
      const key = org ? org.orgId : `portal:${event.portalId}`;
      let head: Buffer | undefined;
      // Most events of a batch share the previous one's envelope: no look-up key to build then.
      if (
        last !== undefined &&
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
        last = { org, portalId: event.portalId, subscriptionType: event.subscriptionType, head };
      }
      return {
        key,
        headers: { [ORDERING_KEY_HEADER]: `${key}:${event.objectKey}` },
        // `event` is the body's bytes, which ingest decoded as strict UTF-8: a valid Avro string.
        value: withAvroStringTail(head, event.json),
      };
    });
    // Rejects a record the topic cannot store (recordTooLarge → 413) before it joins a shared send.
    await publisher.publish(topics.rawEvents.name, messages);
  };

  const redis = createRedis(config.REDIS_URL, logger);
  const oauth =
    config.HUBSPOT_CLIENT_ID && config.HUBSPOT_CLIENT_SECRET
      ? {
          client: createHubSpotOAuth({
            baseUrl: config.HUBSPOT_API_BASE_URL,
            clientId: config.HUBSPOT_CLIENT_ID,
            clientSecret: config.HUBSPOT_CLIENT_SECRET,
            timeoutMs: 10000,
            now: Date.now,
          }),
          tokens: createSignedTokens(secretsKey, 'hubspot-oauth', Date.now),
          states: createRedisOAuthStateLedger(redis, config.REDIS_KEY_PREFIX, Date.now),
        }
      : undefined;

  // OAuth tokens live 30 minutes: refresh them ahead of time (one replica per org, via a Redis lock).
  const refresher = oauth
    ? setInterval(() => {
        refreshExpiringTokens({
          orgs,
          oauth: oauth.client,
          orgRepository,
          redis,
          lockPrefix: config.REDIS_KEY_PREFIX,
          marginMs: config.OAUTH_REFRESH_MARGIN_MS,
          now: Date.now,
          logger,
          onRefreshed: (outcome) => metrics.tokenRefreshes.inc({ outcome }),
        }).catch((error: unknown) => logger.error({ err: error }, 'token refresh pass failed'));
      }, config.OAUTH_REFRESH_CHECK_MS)
    : undefined;

  const app = createIngestApp({
    config,
    orgs,
    orgRepository,
    sink,
    // Not ready while writes fail, not only when disconnected: a load balancer then sends elsewhere.
    isReady: () => publisher.isWriting(),
    metrics,
    registry,
    logger,
    now: Date.now,
    oauth,
    console: {
      adminToken: config.ADMIN_TOKEN,
      secretsKey,
      publicBaseUrl: config.PUBLIC_BASE_URL,
      kafka,
      codec,
      topics,
      orgs,
      orgRepository,
      redis,
      redisKeyPrefix: config.REDIS_KEY_PREFIX,
      installGrants: oauth?.tokens,
      logger,
      now: Date.now,
      limits: CONSOLE_DEFAULT_LIMITS,
    },
  });
  const server = await listen(app, {
    port: config.PORT,
    host: '0.0.0.0',
    bodyTimeoutMs: config.HTTP_BODY_TIMEOUT_MS,
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : config.PORT;
  logger.info({ port, topic: topics.rawEvents.name }, 'ingest listening');

  return {
    port,
    stop: async () => {
      clearInterval(refresher);
      await closeServer(server);
      await publisher.close();
      await connections.close();
      redis.disconnect();
    },
  };
};

if (isEntryPoint(import.meta.url)) {
  runAsProcess('ingest', () => {
    const config = loadIngestConfig(process.env);
    return startIngest(config, createLogger('ingest', config.LOG_LEVEL));
  });
}
