/**
 * console: the operators' room. The admin API (/admin/orgs/{orgId}, Bearer ADMIN_TOKEN) and the
 * web console (/console: organisations, event search, dead letters), both reading and editing
 * through the same Kafka topics as the pipeline. Not on the webhook path: a slow search here
 * never holds a HubSpot delivery. Health and metrics on the same port.
 */
import { listen } from '../../../lib/http-server.ts';
import { createLogger, type Logger } from '../../../lib/log.ts';
import { closeServer, createMetricsRegistry } from '../../../lib/metrics.ts';
import { registerOrgDirectoryMetrics } from '../../../lib/orgs/index.ts';
import { connectToPipeline } from '../../../lib/pipeline-connections.ts';
import { ReconcileWatermarks } from '../../../lib/reconcile-watermarks.ts';
import { createRedis } from '../../../lib/redis.ts';
import { isEntryPoint, runAsProcess } from '../../../lib/service.ts';
import { createOAuthTokens } from '../../../lib/signed-tokens.ts';
import { createConsoleApp } from './app.ts';
import { loadConsoleConfig, type ConsoleConfig } from './config.ts';
import { CONSOLE_DEFAULT_LIMITS } from './routes/index.ts';

export type RunningConsole = { readonly port: number; readonly stop: () => Promise<void> };

export const startConsole = async (
  config: ConsoleConfig,
  logger: Logger = createLogger('console', config.LOG_LEVEL),
): Promise<RunningConsole> => {
  // Adapters: Kafka (topics, Avro, the organisations' table and repository) and Redis.
  const connections = await connectToPipeline(config, {
    clientId: 'console',
    logger,
  });
  const { kafka, topics, codec, orgs, orgRepository, secretsKey } = connections;
  // What the processor's reconciler recorded per organisation (the organisations page shows it).
  const watermarks = new ReconcileWatermarks({
    kafka,
    topic: topics.reconcileWatermarks.name,
    groupPrefix: config.KAFKA_TOPIC_PREFIX,
    logger,
  });
  await watermarks.start();
  const redis = createRedis(config, logger);
  const registry = createMetricsRegistry('console');
  registerOrgDirectoryMetrics(registry, orgs);

  let stopping = false;
  const app = createConsoleApp({
    adminToken: config.ADMIN_TOKEN,
    secretsKey,
    ingestPublicUrl: config.INGEST_PUBLIC_URL,
    // The same key and purpose as ingest's: ingest's install link accepts these grants.
    installGrants: config.HUBSPOT_CLIENT_ID ? createOAuthTokens(secretsKey, Date.now) : undefined,
    kafka,
    codec,
    topics,
    orgs,
    orgRepository,
    watermarks,
    redis,
    redisKeyPrefix: config.REDIS_KEY_PREFIX,
    logger,
    now: Date.now,
    limits: CONSOLE_DEFAULT_LIMITS,
    trustProxy: config.TRUST_PROXY,
    bodyTimeoutMs: config.HTTP_BODY_TIMEOUT_MS,
    registry,
    isReady: () => !stopping,
  });
  const server = await listen(app, {
    port: config.PORT,
    host: '0.0.0.0',
    bodyTimeoutMs: config.HTTP_BODY_TIMEOUT_MS,
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : config.PORT;
  logger.info({ port, adminApi: config.ADMIN_TOKEN !== undefined }, 'console listening');

  return {
    port,
    stop: async () => {
      stopping = true;
      await closeServer(server);
      await watermarks.stop();
      await connections.close();
      redis.disconnect();
    },
  };
};

if (isEntryPoint(import.meta.url)) {
  runAsProcess('console', () => {
    const config = loadConsoleConfig(process.env);
    return startConsole(config, createLogger('console', config.LOG_LEVEL));
  });
}
