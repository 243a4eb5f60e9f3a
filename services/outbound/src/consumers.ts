import { orgOfOrderingKey, type PipelineEvent } from '../../../lib/domain-events.ts';
import { createDeadLetterWriter } from '../../../lib/dead-letters/index.ts';
import { consumerGroupsFor, createServiceConsumer, type TenantGate } from '../../../lib/kafka/index.ts';
import type { Logger } from '../../../lib/log.ts';
import type { PipelineConnections } from '../../../lib/pipeline-connections.ts';
import type { Redis } from '../../../lib/redis.ts';
import { applyDomainEvent, malformed, type ApplyDeps } from './apply-domain-event.ts';
import type { OutboundConfig } from './config.ts';
import { createPipelineEventHandler, type PipelineEventHandlerDeps } from './handle-domain-event.ts';
import type { OutboundMetrics } from './metrics.ts';
import { postAiReply, type PostAiReplyDeps } from './post-ai-reply.ts';

export type OutboundConsumerParts = {
  readonly config: OutboundConfig;
  readonly connections: Pick<PipelineConnections, 'kafka' | 'topics' | 'codec' | 'producer' | 'orgs'>;
  /** Where a dead letter's "written" marker is kept. */
  readonly redis: Redis;
  readonly metrics: OutboundMetrics;
  /** Domain events wait while OpenCX fails; AI replies while HubSpot's budget is spent or it fails. */
  readonly gates: { readonly openCx: TenantGate; readonly hubspot: TenantGate };
  readonly applyDeps: ApplyDeps;
  readonly postDeps: PostAiReplyDeps;
  /** The domain-events group (re)assigned this member its partitions. */
  readonly domainPartitionsAssigned: () => void;
  readonly logger: Logger;
};

/** Each topic's events go to their own effect; any other type on it is malformed. */
const applyOnDomainTopic = (deps: ApplyDeps) => (event: PipelineEvent) =>
  event.type === 'ai-reply'
    ? Promise.resolve(malformed('an ai-reply on the domain-events topic'))
    : applyDomainEvent(event, deps);
const postOnRepliesTopic = (deps: PostAiReplyDeps) => (event: PipelineEvent) =>
  event.type === 'ai-reply'
    ? postAiReply(event, deps)
    : Promise.resolve(malformed(`a ${event.type} on the ai-replies topic`));

/**
 * Outbound's two data paths, joined and left together: domain events → OpenCX (one group), AI
 * replies → HubSpot (another, so a HubSpot outage never holds OpenCX's events). Returns how to
 * join both groups: consumers built anew on each (re)join.
 */
export const outboundConsumers = (parts: OutboundConsumerParts) => {
  const { config, connections, metrics, logger } = parts;
  const { kafka, topics, codec, orgs } = connections;
  const handlerDeps: Omit<PipelineEventHandlerDeps, 'apply'> = {
    decode: (value: Buffer) => codec.decodeEvent(value),
    orgs,
    metrics,
    logger,
    retryAttempts: config.OPENCX_RETRY_ATTEMPTS,
    transientRetryMs: 1000,
  };
  const common = {
    kafka,
    // Keys are `<orgId>:thread:…` / `<orgId>:ticket:…`: one queue per conversation; the
    // organisation is the tenant.
    orderingKey: (message: { key: Buffer | null }) => message.key?.toString() ?? '',
    tenantOf: (message: { key: Buffer | null }) => orgOfOrderingKey(message.key?.toString() ?? ''),
    deadLetters: createDeadLetterWriter({
      service: 'outbound',
      topic: topics.deadLetters.name,
      producer: connections.producer,
      codec,
      redis: parts.redis,
      keyPrefix: config.REDIS_KEY_PREFIX,
    }),
    metrics,
    settings: config,
    logger,
  };
  return () => {
    const domainConsumer = createServiceConsumer({
      ...common,
      groupId: consumerGroupsFor(config.KAFKA_TOPIC_PREFIX).outboundDomainEvents.groupId,
      topic: topics.domainEvents.name,
      gate: parts.gates.openCx,
      handle: createPipelineEventHandler({ ...handlerDeps, apply: applyOnDomainTopic(parts.applyDeps) }),
      onGroupJoin: parts.domainPartitionsAssigned,
    });
    const replyConsumer = createServiceConsumer({
      ...common,
      groupId: consumerGroupsFor(config.KAFKA_TOPIC_PREFIX).outboundAiReplies.groupId,
      topic: topics.aiReplies.name,
      gate: parts.gates.hubspot,
      handle: createPipelineEventHandler({ ...handlerDeps, apply: postOnRepliesTopic(parts.postDeps) }),
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
};
