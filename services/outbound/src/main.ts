/**
 * outbound: domain events in, effects on OpenCX out; AI replies back to HubSpot.
 * Data path 1: domain-events topic → KeyedConsumer (one queue per conversation) → decode →
 *   applyDomainEvent (one OpenCX call per event type, Idempotency-Key = event id; the first
 *   customer message of a thread creates its session and records the link) → a non-empty AI
 *   answer becomes an ai-reply event.
 * Data path 2: ai-replies topic → postAiReply (MESSAGE from the AI actor with the AI marker;
 *   COMMENT draft in Assist Mode; nothing after a handoff).
 * Failures: retriable ones retried with backoff (holding only that conversation), then the
 *   dead-letter topic, from which `npm run dlq -- replay` puts them back.
 */
import { hostname } from 'node:os';
import { randomUUID } from 'node:crypto';
import type { KafkaMessage } from 'kafkajs';
import { writeDeadLetter } from '../../../lib/dead-letters.ts';
import { createRedisDedupStore } from '../../../lib/dedup-store.ts';
import { createGroupMembership, readinessProbe, watchDependencies } from '../../../lib/dependency-health.ts';
import { createDomainEventPublisher } from '../../../lib/domain-event-publisher.ts';
import type { AiReply, PipelineEvent } from '../../../lib/domain-events.ts';
import { ErrorCode, PipelineError, describeError } from '../../../lib/errors.ts';
import { createPortalClients } from '../../../lib/hubspot/index.ts';
import { KeyedConsumer } from '../../../lib/kafka/index.ts';
import { createLogger, type Logger } from '../../../lib/log.ts';
import { closeServer, createMetricsRegistry, serveMetrics } from '../../../lib/metrics.ts';
import type { Org } from '../../../lib/orgs/index.ts';
import { connectToPipeline } from '../../../lib/pipeline-connections.ts';
import { createRedisRateLimiter } from '../../../lib/rate-limiter.ts';
import { createRedis } from '../../../lib/redis.ts';
import { sleep, withRetry } from '../../../lib/retry.ts';
import { isEntryPoint, runAsProcess } from '../../../lib/service.ts';
import type { SessionLinks } from '../../../lib/session-links.ts';
import { applyDomainEvent, type ApplyOutcome } from './apply-domain-event.ts';
import { loadOutboundConfig, type OutboundConfig } from './config.ts';
import { createOutboundMetrics } from './metrics.ts';
import { createOpenCxApi, type OpenCxApi } from './opencx/client.ts';
import { postAiReply } from './post-ai-reply.ts';

export type RunningOutbound = { readonly metricsPort: number; readonly stop: () => Promise<void> };

export const DeadLetterReason = {
  undecodable: 'undecodable',
  opencxRejected: 'opencx_rejected',
  opencxUnauthorized: 'opencx_unauthorized',
  hubspotRejected: 'hubspot_rejected',
  hubspotUnauthorized: 'hubspot_unauthorized',
  retriesExhausted: 'retries_exhausted',
} as const;

const deadLetterReasonOf = (error: PipelineError): string => {
  if (error.retriable) return DeadLetterReason.retriesExhausted;
  if (error.upstream === 'hubspot')
    return error.code === ErrorCode.upstreamUnauthorized
      ? DeadLetterReason.hubspotUnauthorized
      : DeadLetterReason.hubspotRejected;
  return error.code === ErrorCode.upstreamUnauthorized
    ? DeadLetterReason.opencxUnauthorized
    : DeadLetterReason.opencxRejected;
};

export const startOutbound = async (
  config: OutboundConfig,
  logger: Logger = createLogger('outbound', config.LOG_LEVEL),
): Promise<RunningOutbound> => {
  const instance = `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
  const registry = createMetricsRegistry('outbound');
  const metrics = createOutboundMetrics(registry);

  // Adapters: Kafka (topics, Avro, producer), organisations and session links, Redis, OpenCX, HubSpot.
  const connections = await connectToPipeline(config, {
    clientId: 'outbound',
    logger,
    withSessionLinks: true,
  });
  const { kafka, topics, codec, producer, orgs, links } = connections;
  if (!links) throw new Error('session links were not started');
  const redis = createRedis(config.REDIS_URL, logger);
  const events = await createDomainEventPublisher({ kafka, codec, topics: [topics.aiReplies.name], logger });
  const openCxLimiter = createRedisRateLimiter(redis, {
    prefix: config.REDIS_KEY_PREFIX,
    max: config.OPENCX_RATE_LIMIT_MAX,
    windowMs: config.OPENCX_RATE_LIMIT_WINDOW_MS,
  });
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
    }),
  });

  const retryPolicy = {
    attempts: config.OPENCX_RETRY_ATTEMPTS,
    initialDelayMs: config.OPENCX_RETRY_INITIAL_MS,
    maxDelayMs: config.OPENCX_RETRY_MAX_MS,
  };
  const retry = <T>(target: 'opencx' | 'hubspot', work: () => Promise<T>): Promise<T> =>
    withRetry(retryPolicy, work, {
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

  /** Decode, apply, count; a failure that retrying cannot fix goes to the dead-letter topic. */
  const handleWith =
    (apply: (event: PipelineEvent) => Promise<ApplyOutcome & { posted?: string }>) =>
    async (message: KafkaMessage, partition: number, topic: string): Promise<void> => {
      const deadLetter = async (
        reason: string,
        error: string,
        event: PipelineEvent | undefined,
        attempts: number,
      ): Promise<void> => {
        await writeDeadLetter(
          producer,
          codec,
          topics.deadLetters.name,
          { message, topic, partition },
          {
            service: 'outbound',
            reason,
            error,
            attempts,
            orgId: event?.orgId ?? null,
            eventType: event?.type ?? null,
            eventId: event?.eventId ?? null,
          },
          Date.now(),
        );
        metrics.deadLettered.inc({ reason });
        logger.warn(
          { reason, error, orgId: event?.orgId, eventId: event?.eventId, offset: message.offset },
          'event dead-lettered',
        );
      };
      let event: PipelineEvent;
      try {
        if (!message.value) throw new Error('record has no value');
        event = await codec.decodeEvent(message.value);
      } catch (error) {
        return deadLetter(DeadLetterReason.undecodable, describeError(error), undefined, 1);
      }
      const log = logger.child({
        orgId: event.orgId,
        portalId: event.portalId,
        eventId: event.eventId,
        type: event.type,
      });
      const started = performance.now();
      try {
        const outcome = await apply(event);
        metrics.applyLatency.observe({ type: event.type }, (performance.now() - started) / 1000);
        if (outcome.kind === 'skipped') {
          metrics.skipped.inc({ type: event.type, reason: outcome.reason });
          log.debug({ reason: outcome.reason }, 'nothing to apply');
        } else {
          metrics.applied.inc({ type: event.type });
          if (outcome.posted) metrics.aiRepliesPosted.inc({ kind: outcome.posted });
          log.info('applied');
        }
      } catch (error) {
        if (
          !(error instanceof PipelineError) ||
          error.code === ErrorCode.kafkaUnavailable ||
          error.code === ErrorCode.dedupInFlight
        )
          throw error;
        return deadLetter(
          deadLetterReasonOf(error),
          error.message,
          event,
          error.retriable ? retryPolicy.attempts : 1,
        );
      }
      return undefined;
    };

  const applyDeps = {
    orgs,
    links: {
      forThread: links.forThread.bind(links),
      forTicket: links.forTicket.bind(links),
      write: (entries: Parameters<SessionLinks['write']>[1]) => links.write(producer, entries),
    },
    openCxFor,
    hubspotFor,
    emitAiReply: (reply: AiReply) => events.publish(topics.aiReplies.name, [reply]),
    retry,
    logger,
    now: Date.now,
  };
  const postDeps = {
    orgs,
    links,
    hubspotFor,
    dedup,
    markAttempt: async (key: string) =>
      (await redis.set(`${config.REDIS_KEY_PREFIX}attempt:${key}`, '1', 'PX', config.DEDUP_TTL_MS, 'NX')) ===
      'OK',
    retry,
    claim: { leaseMs: config.DEDUP_CLAIM_LEASE_MS, now: Date.now, sleep },
  };

  // The data paths, built anew on each (re)join: a replica that cannot reach Redis or Kafka steps aside.
  const dependencies = watchDependencies({
    redis,
    brokers: config.KAFKA_BROKERS,
    clientId: 'outbound',
    graceMs: config.DEPENDENCY_GRACE_MS,
    logger,
  });
  const joinBothGroups = () => {
    const domainConsumer = new KeyedConsumer({
      consumer: kafka.consumer({
        groupId: `${config.KAFKA_TOPIC_PREFIX}outbound`,
        allowAutoTopicCreation: false,
        sessionTimeout: config.KAFKA_SESSION_TIMEOUT_MS,
        heartbeatInterval: 1000,
      }),
      topics: [topics.domainEvents.name],
      orderingKey: (message) => message.key?.toString() ?? '',
      handle: handleWith((event) =>
        event.type === 'ai-reply'
          ? Promise.reject(new Error('ai-reply on the domain topic'))
          : applyDomainEvent(event, applyDeps),
      ),
      logger,
      onHandlerError: () => metrics.handlerFailures.inc(),
      maxBufferedMessages: config.KAFKA_PARTITION_BUFFER,
    });
    const replyConsumer = new KeyedConsumer({
      consumer: kafka.consumer({
        groupId: `${config.KAFKA_TOPIC_PREFIX}outbound.ai-replies`,
        allowAutoTopicCreation: false,
        sessionTimeout: config.KAFKA_SESSION_TIMEOUT_MS,
        heartbeatInterval: 1000,
      }),
      topics: [topics.aiReplies.name],
      orderingKey: (message) => message.key?.toString() ?? '',
      handle: handleWith((event) =>
        event.type === 'ai-reply'
          ? postAiReply(event, postDeps)
          : Promise.reject(new Error(`${event.type} on the ai-replies topic`)),
      ),
      logger,
      onHandlerError: () => metrics.handlerFailures.inc(),
      maxBufferedMessages: config.KAFKA_PARTITION_BUFFER,
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
      await consumers.stop();
      await dependencies.stop();
      await events.drain();
      await connections.close();
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
