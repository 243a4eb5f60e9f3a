/**
 * ingest: HubSpot webhook batches in, raw events on Kafka out.
 * Data path: POST /webhooks/hubspot → verify signature → parse batch → route each event to its
 * organisation by portalId → encode (Avro, registry) → one batched, acks=all write to the raw
 * topic keyed by organisation → 200. Nothing else happens inside the request. Besides: the
 * public app's OAuth install, health and metrics.
 */
import { readTopicLimits } from '../../../lib/kafka/index.ts';
import { listen } from '../../../lib/http-server.ts';
import { createLogger, type Logger } from '../../../lib/log.ts';
import { closeServer, createMetricsRegistry } from '../../../lib/metrics.ts';
import { registerOrgDirectoryMetrics, type OrgDirectory } from '../../../lib/orgs/index.ts';
import { connectToPipeline } from '../../../lib/pipeline-connections.ts';
import { createRedis } from '../../../lib/redis.ts';
import { isEntryPoint, runAsProcess } from '../../../lib/service.ts';
import { createOAuthTokens } from '../../../lib/signed-tokens.ts';
import { createIngestApp } from './app.ts';
import { loadIngestConfig, type IngestConfig } from './config.ts';
import { createIngestMetrics } from './metrics.ts';
import { createHubSpotOAuth, createRedisOAuthStateLedger } from './oauth.ts';
import { createRawEventSink, createRawTopicPublisher } from './raw-event-sink.ts';
import { startTokenRefresher } from './token-refresher.ts';

export type RunningIngest = {
  readonly port: number;
  /** The organisations as this replica sees them: edits made on the console reach it through Kafka. */
  readonly orgs: Pick<OrgDirectory, 'stored'>;
  readonly stop: () => Promise<void>;
};

export const startIngest = async (
  config: IngestConfig,
  logger: Logger = createLogger('ingest', config.LOG_LEVEL),
): Promise<RunningIngest> => {
  // Adapters: Kafka (topics, Avro, producer) and the organisations.
  const connections = await connectToPipeline(config, {
    clientId: 'ingest',
    logger,
  });
  const { kafka, topics, codec, orgs, orgRepository, secretsKey } = connections;
  const registry = createMetricsRegistry('ingest');
  const metrics = createIngestMetrics(registry);
  registerOrgDirectoryMetrics(registry, orgs);

  // What the raw topic can store, so a record it would refuse is answered 413 before it is sent.
  const admin = kafka.admin();
  await admin.connect();
  const limits = await readTopicLimits(admin, [topics.rawEvents.name]).finally(() => admin.disconnect());
  const publisher = createRawTopicPublisher({
    kafka,
    limits,
    logger,
    onProducerRebuilt: () => metrics.producerRebuilds.inc(),
  });
  await publisher.connect();
  // The data path: a verified batch becomes raw records keyed by organisation, written durably.
  const sink = createRawEventSink({ codec, publisher, topic: topics.rawEvents.name, now: Date.now });

  const redis = createRedis(config, logger);
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
          tokens: createOAuthTokens(secretsKey, Date.now),
          states: createRedisOAuthStateLedger(redis, config.REDIS_KEY_PREFIX, Date.now),
        }
      : undefined;

  // OAuth tokens live 30 minutes: refresh them ahead of time (one replica per org, via a Redis lock).
  const refresher =
    oauth &&
    startTokenRefresher(
      {
        orgs,
        oauth: oauth.client,
        orgRepository,
        redis,
        lockPrefix: config.REDIS_KEY_PREFIX,
        marginMs: config.OAUTH_REFRESH_MARGIN_MS,
        now: Date.now,
        logger,
        onRefreshed: (outcome) => metrics.tokenRefreshes.inc({ outcome }),
      },
      config.OAUTH_REFRESH_CHECK_MS,
    );

  const app = createIngestApp({
    config,
    orgs,
    orgRepository,
    sink,
    isReady: () => publisher.isWriting(),
    metrics,
    registry,
    logger,
    now: Date.now,
    oauth,
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
    orgs,
    stop: async () => {
      refresher?.stop();
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
