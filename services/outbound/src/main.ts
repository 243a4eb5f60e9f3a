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
import { hostname } from 'node:os';
import type { KafkaMessage } from 'kafkajs';
import { randomUUID } from 'node:crypto';
import { createDeadLetterWriter } from '../../../lib/dead-letters/index.ts';
import { createRedisDedupStore } from '../../../lib/dedup-store.ts';
import { createGroupMembership, readinessProbe, watchDependencies } from '../../../lib/dependency-health.ts';
import { createDomainEventPublisher } from '../../../lib/domain-event-publisher.ts';
import { createRecordWriter } from '../../../lib/kafka/record-writer.ts';
import { orgOfOrderingKey, type AiReply } from '../../../lib/domain-events.ts';
import { ErrorCode, PipelineError, describeError } from '../../../lib/errors.ts';
import { createPortalClients, parkOnRateLimit } from '../../../lib/hubspot/index.ts';
import {
  CONSUMER_FETCH_MAX_WAIT_MS,
  createTenantGate,
  DEFAULT_CRASH_BUDGET,
  KeyedConsumer,
  type TenantGate,
} from '../../../lib/kafka/index.ts';
import { createLogger, type Logger } from '../../../lib/log.ts';
import { closeServer, createMetricsRegistry, serveMetrics } from '../../../lib/metrics.ts';
import type { Org } from '../../../lib/orgs/index.ts';
import { registerOrgDirectoryMetrics } from '../../../lib/orgs/index.ts';
import { PostedReplies } from '../../../lib/posted-replies.ts';
import { connectToPipeline } from '../../../lib/pipeline-connections.ts';
import { createRedisRateLimiter } from '../../../lib/rate-limiter.ts';
import { createRedis } from '../../../lib/redis.ts';
import { sleep, withRetry } from '../../../lib/retry.ts';
import { isEntryPoint, runAsProcess } from '../../../lib/service.ts';
import type { SessionLinks } from '../../../lib/session-links.ts';
import { applyDomainEvent, malformed } from './apply-domain-event.ts';
import { startHeldTickets } from './held-tickets.ts';
import { loadOutboundConfig, type OutboundConfig } from './config.ts';
import { createPipelineEventHandler } from './handle-domain-event.ts';
import { createOutboundMetrics } from './metrics.ts';
import { createOpenCxApi, type OpenCxApi } from './opencx/client.ts';
import { createRedisOwedTicketLookUps, startOwedTicketLookUps } from './owed-ticket-look-ups.ts';
import { postAiReply } from './post-ai-reply.ts';
import { createRedisReplyAttempts } from './reply-attempts.ts';

export type RunningOutbound = { readonly metricsPort: number; readonly stop: () => Promise<void> };

export const startOutbound = async (
  config: OutboundConfig,
  logger: Logger = createLogger('outbound', config.LOG_LEVEL),
): Promise<RunningOutbound> => {
  const instance = `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
  const registry = createMetricsRegistry('outbound');
  // Organisations this replica waits for: their events are parked, not held in memory, and
  // their calls fail at once until they are tried again. One gate per outside system, so an
  // organisation whose HubSpot budget is spent (AI replies wait) still gets its OpenCX events.
  const gateOptions = {
    initialBackoffMs: config.PARK_PROBE_INITIAL_MS,
    maxBackoffMs: config.PARK_PROBE_MAX_MS,
  };
  /** OpenCX failing (domain events wait). */
  const openCxGate = createTenantGate(gateOptions);
  /** HubSpot budget spent or HubSpot failing (AI replies wait; ticket look-ups are owed). */
  const hubspotGate = createTenantGate(gateOptions);

  // Adapters: Kafka (topics, Avro, producer), organisations and session links, Redis, OpenCX, HubSpot.
  const connections = await connectToPipeline(config, {
    clientId: 'outbound',
    logger,
    withSessionLinks: true,
  });
  const { kafka, topics, codec, producer, orgs, links } = connections;
  if (!links) throw new Error('session links were not started');
  let heldTicketCount = (): number => 0;
  const metrics = createOutboundMetrics(
    registry,
    (now) => [...openCxGate.waiting(now), ...hubspotGate.waiting(now)],
    () => heldTicketCount(),
  );
  // The last AI reply posted per thread (Kafka, compacted): no reply is posted twice even when
  // Redis, which holds the claims, lost its data.
  const postedReplies = new PostedReplies({
    kafka,
    topic: topics.postedReplies.name,
    groupPrefix: config.KAFKA_TOPIC_PREFIX,
    logger,
  });
  await postedReplies.start();
  registerOrgDirectoryMetrics(registry, orgs);
  const redis = createRedis(config.REDIS_URL, logger);
  const replyAttempts = createRedisReplyAttempts(redis, config.REDIS_KEY_PREFIX, config.DEDUP_TTL_MS);
  const events = await createDomainEventPublisher({
    kafka,
    codec,
    topics: [topics.aiReplies.name, topics.domainEvents.name],
    logger,
  });
  // Session links, posted replies, held ticket events: many conversations write at once, sharing requests.
  const tableWrites = await createRecordWriter({
    kafka,
    topics: [topics.sessionLinks.name, topics.postedReplies.name, topics.heldTicketEvents.name],
    logger,
  });
  const openCxLimiter = createRedisRateLimiter(redis, {
    prefix: config.REDIS_KEY_PREFIX,
    max: config.OPENCX_RATE_LIMIT_MAX,
    windowMs: config.OPENCX_RATE_LIMIT_WINDOW_MS,
  });
  const failIfWaitedFor = (org: Org): void => {
    const until = openCxGate.waitingUntil(org.orgId);
    if (until !== undefined)
      throw new PipelineError(
        ErrorCode.tenantWaiting,
        `organisation ${org.orgId} is waited for until ${new Date(until).toISOString()} (OpenCX kept failing)`,
        { retriable: false, retryAfterMs: Math.max(0, until - Date.now()), upstream: 'opencx' },
      );
  };
  // One OpenCX client per organisation and API key.
  const openCxClients = new Map<string, { apiKey: string; api: OpenCxApi }>();
  const openCxFor = (org: Org): OpenCxApi => {
    const cached = openCxClients.get(org.orgId);
    if (cached?.apiKey === org.opencx.apiKey) return cached.api;
    const api = createOpenCxApi({
      baseUrl: config.OPENCX_API_BASE_URL,
      apiKey: org.opencx.apiKey,
      timeoutMs: config.OPENCX_TIMEOUT_MS,
      beforeRequest: async () => {
        failIfWaitedFor(org);
        await openCxLimiter.acquire(`opencx:${org.orgId}`);
      },
    });
    openCxClients.set(org.orgId, { apiKey: org.opencx.apiKey, api });
    return api;
  };
  const hubspotFor = createPortalClients({
    baseUrl: config.HUBSPOT_API_BASE_URL,
    timeoutMs: config.HUBSPOT_TIMEOUT_MS,
    limiter: createRedisRateLimiter(redis, {
      prefix: config.REDIS_KEY_PREFIX,
      max: config.HUBSPOT_RATE_LIMIT_MAX,
      windowMs: config.HUBSPOT_RATE_LIMIT_WINDOW_MS,
      onThrottled: (bucket, _waitMs, callClass) =>
        metrics.hubspotThrottled.inc({ portal_id: bucket.replace('hubspot:', ''), class: callClass }),
    }),
    onCall: (portalId, purpose) => metrics.hubspotCalls.inc({ portal_id: String(portalId), purpose }),
    customerMaxWaitMs: config.PARK_AFTER_MS,
    waitingUntil: (org) => hubspotGate.waitingUntil(org.orgId),
  });
  const owedTicketLookUps = createRedisOwedTicketLookUps(redis, config.REDIS_KEY_PREFIX);

  const retryPolicy = {
    attempts: config.OPENCX_RETRY_ATTEMPTS,
    initialDelayMs: config.OPENCX_RETRY_INITIAL_MS,
    maxDelayMs: config.OPENCX_RETRY_MAX_MS,
  };
  const retry = <T>(target: 'opencx' | 'hubspot', work: () => Promise<T>): Promise<T> =>
    // A HubSpot 429 parks the organisation's AI replies until HubSpot's interval ends.
    withRetry(retryPolicy, target === 'hubspot' ? () => parkOnRateLimit(work) : work, {
      onRetry: ({ attempt, delayMs, error }) => {
        metrics.retries.inc({ target, code: error instanceof PipelineError ? error.code : 'unknown' });
        logger.info({ target, attempt, delayMs, err: describeError(error) }, 'call failed; retrying');
      },
    });
  const dedup = createRedisDedupStore(redis, {
    prefix: config.REDIS_KEY_PREFIX,
    owner: instance,
    leaseMs: config.DEDUP_CLAIM_LEASE_MS,
    doneTtlMs: config.DEDUP_TTL_MS,
  });

  // Ticket and note events waiting for their ticket's link (Kafka, compacted), and their checks.
  const heldTickets = await startHeldTickets({
    kafka,
    topics: { held: topics.heldTicketEvents.name, domainEvents: topics.domainEvents.name },
    groupPrefix: config.KAFKA_TOPIC_PREFIX,
    links,
    writer: tableWrites,
    publish: events.publish,
    owed: owedTicketLookUps,
    metrics,
    holdMs: config.TICKET_HOLD_MS,
    clockTtlMs: config.DEDUP_TTL_MS,
    instance,
    logger,
  });
  heldTicketCount = heldTickets.size;

  const applyDeps = {
    orgs,
    links: {
      forThread: links.forThread.bind(links),
      forTicket: links.forTicket.bind(links),
      write: (entries: Parameters<SessionLinks['write']>[1]) => links.write(tableWrites, entries),
      catchUp: () => links.catchUp(),
    },
    openCxFor,
    hubspotFor,
    owedTicketLookUps,
    held: heldTickets.applyDeps,
    emitAiReply: (reply: AiReply) => events.publish(topics.aiReplies.name, [reply]),
    sessionsCreated: metrics.sessionsCreated,
    retry,
    logger,
    now: Date.now,
  };
  const postDeps = {
    orgs,
    links: { forThread: links.forThread.bind(links), catchUp: () => links.catchUp() },
    hubspotFor,
    posted: {
      alreadyPosted: (reply: AiReply) => postedReplies.alreadyPosted(reply),
      record: (reply: AiReply) => postedReplies.record(tableWrites, reply, Date.now()),
      catchUp: () => postedReplies.catchUp(),
    },
    dedup,
    markAttempt: replyAttempts.mark,
    clearAttempt: replyAttempts.clear,
    maybePostedSettleMs: config.HUBSPOT_TIMEOUT_MS,
    retry,
    claim: { leaseMs: config.DEDUP_CLAIM_LEASE_MS, now: Date.now, sleep },
  };

  // The data paths, built anew on each (re)join: a replica that cannot reach Redis or Kafka steps
  // aside. Each record's outcome is acted on by its consumer (dead letters written once).
  const dependencies = watchDependencies({
    redis,
    brokers: config.KAFKA_BROKERS,
    clientId: 'outbound',
    graceMs: config.DEPENDENCY_GRACE_MS,
    logger,
  });
  const handlerDeps = {
    decode: (value: Buffer) => codec.decodeEvent(value),
    orgs,
    metrics,
    logger,
    retryAttempts: retryPolicy.attempts,
    transientRetryMs: 1000,
  };
  const consumerOptions = {
    deadLetters: createDeadLetterWriter({
      service: 'outbound',
      topic: topics.deadLetters.name,
      producer,
      codec,
      redis,
      keyPrefix: config.REDIS_KEY_PREFIX,
    }),
    logger,
    observer: {
      retried: () => metrics.transientRetries.inc(),
      crashed: () => metrics.handlerFailures.inc(),
      deadLettered: (reason: string) => metrics.deadLettered.inc({ reason }),
      parked: (reason: string) => metrics.parked.inc({ reason }),
      replayed: (count: number) => metrics.parkedReplayed.inc(count),
    },
    crashBudget: { ...DEFAULT_CRASH_BUDGET, attempts: config.HANDLER_CRASH_ATTEMPTS },
    maxBufferedMessages: config.KAFKA_PARTITION_BUFFER,
  };
  const parkingIn = (groupId: string, gate: TenantGate) => ({
    kafka,
    groupId,
    gate,
    // Keys are `<orgId>:thread:…` / `<orgId>:ticket:…`: the organisation is the tenant.
    tenantOf: (message: KafkaMessage) => orgOfOrderingKey(message.key?.toString() ?? ''),
    maxWaitMs: config.TENANT_MAX_WAIT_MS,
  });
  const domainGroup = `${config.KAFKA_TOPIC_PREFIX}outbound`;
  const repliesGroup = `${config.KAFKA_TOPIC_PREFIX}outbound.ai-replies`;
  const joinBothGroups = () => {
    const domainKafkaConsumer = kafka.consumer({
      groupId: domainGroup,
      allowAutoTopicCreation: false,
      sessionTimeout: config.KAFKA_SESSION_TIMEOUT_MS,
      heartbeatInterval: 1000,
      maxWaitTimeInMs: CONSUMER_FETCH_MAX_WAIT_MS,
    });
    domainKafkaConsumer.on(domainKafkaConsumer.events.GROUP_JOIN, () => {
      heldTickets.partitionsAssigned();
    });
    const domainConsumer = new KeyedConsumer({
      consumer: domainKafkaConsumer,
      topics: [topics.domainEvents.name],
      orderingKey: (message) => message.key?.toString() ?? '',
      parking: parkingIn(domainGroup, openCxGate),
      handle: createPipelineEventHandler({
        ...handlerDeps,
        apply: (event) =>
          event.type === 'ai-reply'
            ? Promise.resolve(malformed('an ai-reply on the domain-events topic'))
            : applyDomainEvent(event, applyDeps),
      }),
      ...consumerOptions,
    });
    const replyConsumer = new KeyedConsumer({
      consumer: kafka.consumer({
        groupId: repliesGroup,
        allowAutoTopicCreation: false,
        sessionTimeout: config.KAFKA_SESSION_TIMEOUT_MS,
        heartbeatInterval: 1000,
        maxWaitTimeInMs: CONSUMER_FETCH_MAX_WAIT_MS,
      }),
      topics: [topics.aiReplies.name],
      orderingKey: (message) => message.key?.toString() ?? '',
      parking: parkingIn(repliesGroup, hubspotGate),
      handle: createPipelineEventHandler({
        ...handlerDeps,
        apply: (event) =>
          event.type === 'ai-reply'
            ? postAiReply(event, postDeps)
            : Promise.resolve(malformed(`a ${event.type} on the ai-replies topic`)),
      }),
      ...consumerOptions,
    });
    return {
      start: async () => {
        await Promise.all([domainConsumer.start(), replyConsumer.start()]);
      },
      stop: async () => {
        await Promise.all([domainConsumer.stop(), replyConsumer.stop()]);
      },
    };
  };
  const consumers = createGroupMembership({ join: joinBothGroups, health: dependencies.health, logger });
  await consumers.start();
  // Ticket look-ups owed to new sessions, made when the portals' budgets have room (any replica).
  const ticketLookUps = startOwedTicketLookUps({
    owed: owedTicketLookUps,
    orgs,
    links: applyDeps.links,
    hubspotFor,
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
