/**
 * processor: raw HubSpot events in, domain events out.
 * Data path: raw topic → KeyedConsumer (one queue per conversation) → handleRawEvent:
 * decode → parse → resolve organisation → dedup claim (Redis SET NX) → re-fetch from HubSpot
 * (rate limited per portal) → the seed's rules (rules/, pure) → domain events (Avro) → confirm.
 * Failures: the handler returns an outcome; the consumer retries transient ones, writes a
 * poison event's dead letter (once, lib/dead-letters) and goes on with its conversation.
 */
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { createGroupMembership, readinessProbe, watchDependencies } from '../../../lib/dependency-health.ts';
import { createTenantGate } from '../../../lib/kafka/index.ts';
import { createLogger, type Logger } from '../../../lib/log.ts';
import { closeServer, createMetricsRegistry, serveMetrics } from '../../../lib/metrics.ts';
import { registerOrgDirectoryMetrics } from '../../../lib/orgs/index.ts';
import { isEntryPoint, runAsProcess } from '../../../lib/service.ts';
import { loadProcessorConfig, type ProcessorConfig } from './config.ts';
import { createProcessorMetrics } from './metrics.ts';
import { connectProcessor, rawEventConsumer } from './raw-event-consumer.ts';
import { startReconciling } from './reconcile/index.ts';

export type RunningProcessor = { readonly metricsPort: number; readonly stop: () => Promise<void> };

export const startProcessor = async (
  config: ProcessorConfig,
  logger: Logger = createLogger('processor', config.LOG_LEVEL),
): Promise<RunningProcessor> => {
  const instance = `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
  const registry = createMetricsRegistry('processor');
  // Tenants (the raw topic's key: an organisation, or `portal:<id>` for one ingest did not know)
  // this replica waits for: their events are parked, not held in memory.
  const gate = createTenantGate({
    initialBackoffMs: config.PARK_PROBE_INITIAL_MS,
    maxBackoffMs: config.PARK_PROBE_MAX_MS,
  });
  const metrics = createProcessorMetrics(registry, gate.waiting);

  // Connections: Kafka (topics, Avro, producer, the domain events' publisher), organisations and
  // session links, Redis.
  const { connections, redis, events, close } = await connectProcessor(config, 'processor', logger);
  const { topics } = connections;
  registerOrgDirectoryMetrics(registry, connections.orgs);

  // Adapters and the data path: one queue per conversation, offsets committed behind the slowest.
  const joinRawEvents = rawEventConsumer({
    config,
    connections,
    redis,
    gate,
    metrics,
    publish: (domainEvents) => events.publish(topics.domainEvents.name, domainEvents),
    instance,
    logger,
  });

  // Consumers, built anew on each (re)join: a replica that cannot reach Redis or Kafka steps aside.
  const dependencies = watchDependencies({
    redis,
    brokers: config.KAFKA_BROKERS,
    clientId: 'processor',
    graceMs: config.DEPENDENCY_GRACE_MS,
    logger,
  });
  const consumer = createGroupMembership({ join: joinRawEvents, health: dependencies.health, logger });

  // The reconciler: what HubSpot has that never arrived (a lost webhook) onto the raw topic.
  const reconciling =
    config.RECONCILE_INTERVAL_MS > 0
      ? await startReconciling({
          config,
          connections,
          redis,
          gate,
          registry,
          onHubSpotCall: (portalId, purpose) =>
            metrics.hubspotCalls.inc({ portal_id: String(portalId), purpose }),
          instance,
          logger,
        })
      : undefined;

  // Start: join the group, then serve metrics, liveness and readiness.
  await consumer.start();
  const metricsServer = await serveMetrics(
    registry,
    config.METRICS_PORT,
    readinessProbe(dependencies.health, consumer),
  );
  const address = metricsServer.address();
  logger.info({ instance, topic: topics.rawEvents.name }, 'processor consuming');

  return {
    metricsPort: typeof address === 'object' && address ? address.port : config.METRICS_PORT,
    stop: async () => {
      await reconciling?.stop();
      await consumer.stop();
      await dependencies.stop();
      await close();
      await closeServer(metricsServer);
    },
  };
};

if (isEntryPoint(import.meta.url)) {
  runAsProcess('processor', () => {
    const config = loadProcessorConfig(process.env);
    return startProcessor(config, createLogger('processor', config.LOG_LEVEL));
  });
}
