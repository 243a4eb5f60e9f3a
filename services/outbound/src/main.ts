/**
 * outbound: domain events in, effects on OpenCX out; AI replies back to HubSpot.
 * Data path 1: domain-events topic → KeyedConsumer (one queue per conversation) → decode →
 *   applyDomainEvent (one OpenCX call per event type, Idempotency-Key = event id; the first
 *   customer message of a thread creates its session and records the link) → a non-empty AI
 *   answer becomes an ai-reply event.
 * Data path 2: ai-replies topic → postAiReply (MESSAGE from the AI actor with the AI marker;
 *   COMMENT draft in Assist Mode; nothing after a handoff).
 * Failures: retriable calls retried with backoff (holding only that conversation); the handler
 *   (handle-domain-event.ts) returns an outcome and the consumer writes the dead letter (once,
 *   lib/dead-letters), from which `npm run dlq -- replay` puts it back.
 */
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { createGroupMembership, readinessProbe, watchDependencies } from '../../../lib/dependency-health.ts';
import { createTenantGate } from '../../../lib/kafka/index.ts';
import { createLogger, type Logger } from '../../../lib/log.ts';
import { closeServer, createMetricsRegistry, serveMetrics } from '../../../lib/metrics.ts';
import { registerOrgDirectoryMetrics } from '../../../lib/orgs/index.ts';
import { connectWithSessionLinks } from '../../../lib/pipeline-connections.ts';
import { createRedis } from '../../../lib/redis.ts';
import { isEntryPoint, runAsProcess } from '../../../lib/service.ts';
import { loadOutboundConfig, type OutboundConfig } from './config.ts';
import { outboundConsumers } from './consumers.ts';
import { startOutboundEffects } from './effects.ts';
import { createOutboundMetrics } from './metrics.ts';
import { startOutboundWriters } from './outbound-writers.ts';
import { startOwedTicketLookUps } from './owed-ticket-look-ups.ts';

export type RunningOutbound = { readonly metricsPort: number; readonly stop: () => Promise<void> };

export const startOutbound = async (
  config: OutboundConfig,
  logger: Logger = createLogger('outbound', config.LOG_LEVEL),
): Promise<RunningOutbound> => {
  const instance = `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
  const registry = createMetricsRegistry('outbound');
  // Organisations this replica waits for: their events are parked, not held in memory, and their
  // calls fail at once until they are tried again. One gate per outside system, so an organisation
  // whose HubSpot budget is spent (AI replies wait; ticket look-ups are owed) still gets its OpenCX
  // events (which wait while OpenCX fails).
  const gateOptions = {
    initialBackoffMs: config.PARK_PROBE_INITIAL_MS,
    maxBackoffMs: config.PARK_PROBE_MAX_MS,
  };
  const gates = { openCx: createTenantGate(gateOptions), hubspot: createTenantGate(gateOptions) };
  let heldTicketCount = (): number => 0;
  const metrics = createOutboundMetrics(
    registry,
    (now) => [...gates.openCx.waiting(now), ...gates.hubspot.waiting(now)],
    () => heldTicketCount(),
  );

  // Connections: Kafka (topics, Avro, producers, posted replies), organisations, session links, Redis.
  const connections = await connectWithSessionLinks(config, { clientId: 'outbound', logger });
  const { kafka, topics, orgs, links } = connections;
  registerOrgDirectoryMetrics(registry, orgs);
  const redis = createRedis(config, logger);
  const { postedReplies, events, tableWrites } = await startOutboundWriters(connections, config, logger);

  // Adapters: OpenCX, HubSpot, ticket look-ups owed, held ticket events, what each effect calls.
  const effects = await startOutboundEffects({
    config,
    connections: { kafka, topics, orgs, links },
    redis,
    gates,
    publish: events.publish,
    tableWrites,
    postedReplies,
    metrics,
    instance,
    logger,
  });
  const { heldTickets } = effects;
  heldTicketCount = heldTickets.size;

  // Consumers, built anew on each (re)join: a replica that cannot reach Redis or Kafka steps aside.
  const dependencies = watchDependencies({
    redis,
    brokers: config.KAFKA_BROKERS,
    clientId: 'outbound',
    graceMs: config.DEPENDENCY_GRACE_MS,
    logger,
  });
  const joinBothGroups = outboundConsumers({
    config,
    connections,
    redis,
    metrics,
    gates,
    applyDeps: effects.applyDeps,
    postDeps: effects.postDeps,
    domainPartitionsAssigned: () => heldTickets.partitionsAssigned(),
    logger,
  });
  const consumers = createGroupMembership({ join: joinBothGroups, health: dependencies.health, logger });

  // Start: join the groups; make the ticket look-ups owed to new sessions when the portals'
  // budgets have room (any replica); serve metrics, liveness and readiness.
  await consumers.start();
  const ticketLookUps = startOwedTicketLookUps({
    owed: effects.owedTicketLookUps,
    orgs,
    links: effects.links,
    hubspotFor: effects.hubspotFor,
    awaited: heldTickets.isWaiting,
    logger,
    now: Date.now,
    counted: (outcome) => metrics.ticketLookUps.inc({ outcome }),
  });
  const metricsServer = await serveMetrics(
    registry,
    config.METRICS_PORT,
    readinessProbe(dependencies.health, consumers),
  );
  const address = metricsServer.address();
  logger.info({ instance }, 'outbound consuming');

  return {
    metricsPort: typeof address === 'object' && address ? address.port : config.METRICS_PORT,
    stop: async () => {
      heldTickets.stopChecks();
      await ticketLookUps.stop();
      await consumers.stop();
      await dependencies.stop();
      await Promise.all([events.drain(), tableWrites.close()]);
      await Promise.all([connections.close(), postedReplies.stop(), heldTickets.stop()]);
      redis.disconnect();
      await closeServer(metricsServer);
    },
  };
};

if (isEntryPoint(import.meta.url)) {
  runAsProcess('outbound', () => {
    const config = loadOutboundConfig(process.env);
    return startOutbound(config, createLogger('outbound', config.LOG_LEVEL));
  });
}
