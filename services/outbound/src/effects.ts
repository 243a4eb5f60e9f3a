import { createRedisDedupStore } from '../../../lib/dedup-store.ts';
import type { PipelineEvent } from '../../../lib/domain-events.ts';
import { createBudgetedPortalClients } from '../../../lib/hubspot/index.ts';
import type { TenantGate } from '../../../lib/kafka/index.ts';
import type { RecordWriter } from '../../../lib/kafka/record-writer.ts';
import type { Logger } from '../../../lib/log.ts';
import type { PipelineConnections } from '../../../lib/pipeline-connections.ts';
import type { PostedReplies } from '../../../lib/posted-replies.ts';
import type { Redis } from '../../../lib/redis.ts';
import { sleep } from '../../../lib/retry.ts';
import type { SessionLinks } from '../../../lib/session-links.ts';
import type { ApplyDeps } from './apply-domain-event.ts';
import { createCallRetry } from './call-retry.ts';
import type { OutboundConfig } from './config.ts';
import { startHeldTickets } from './held-tickets.ts';
import type { OutboundMetrics } from './metrics.ts';
import { createOpenCxClients } from './opencx-clients.ts';
import { createRedisOwedTicketLookUps } from './owed-ticket-look-ups.ts';
import type { PostAiReplyDeps } from './post-ai-reply.ts';
import { createRedisReplyAttempts } from './reply-attempts.ts';

export type OutboundEffectParts = {
  readonly config: OutboundConfig;
  readonly connections: Pick<PipelineConnections, 'kafka' | 'topics' | 'orgs'> & {
    readonly links: SessionLinks;
  };
  readonly redis: Redis;
  /** Domain events wait while OpenCX fails; AI replies while HubSpot's budget is spent or it fails. */
  readonly gates: { readonly openCx: TenantGate; readonly hubspot: TenantGate };
  /** Publishes AI replies and hold checks durably. */
  readonly publish: (topic: string, events: readonly PipelineEvent[]) => Promise<void>;
  /** Writes the compacted tables' records: session links, posted replies, held ticket events. */
  readonly tableWrites: RecordWriter;
  readonly postedReplies: PostedReplies;
  readonly metrics: OutboundMetrics;
  /** This replica, as the owner of its dedup claims. */
  readonly instance: string;
  readonly logger: Logger;
};

/**
 * What outbound's two effects call: OpenCX and HubSpot (each behind its tenant's gate and its
 * shared budget, retried with backoff), session links, ticket look-ups owed, ticket and note
 * events held for their ticket's link (Kafka, compacted) with their checks, the posted replies
 * and the AI reply claims.
 */
export const startOutboundEffects = async (parts: OutboundEffectParts) => {
  const { config, connections, redis, gates, metrics, logger } = parts;
  const { kafka, topics, orgs, links } = connections;
  const owedTicketLookUps = createRedisOwedTicketLookUps(redis, config.REDIS_KEY_PREFIX);
  const heldTickets = await startHeldTickets({
    kafka,
    topics: { held: topics.heldTicketEvents.name, domainEvents: topics.domainEvents.name },
    groupPrefix: config.KAFKA_TOPIC_PREFIX,
    links,
    writer: parts.tableWrites,
    publish: parts.publish,
    owed: owedTicketLookUps,
    metrics,
    holdMs: config.TICKET_HOLD_MS,
    clockTtlMs: config.DEDUP_TTL_MS,
    instance: parts.instance,
    logger,
  });
  const hubspotFor = createBudgetedPortalClients(redis, config, {
    onThrottled: (bucket, _waitMs, callClass) =>
      metrics.hubspotThrottled.inc({ portal_id: bucket.replace('hubspot:', ''), class: callClass }),
    onCall: (portalId, purpose) => metrics.hubspotCalls.inc({ portal_id: String(portalId), purpose }),
    customerMaxWaitMs: config.PARK_AFTER_MS,
    waitingUntil: (org) => gates.hubspot.waitingUntil(org.orgId),
  });
  const retry = createCallRetry(
    {
      attempts: config.OPENCX_RETRY_ATTEMPTS,
      initialDelayMs: config.OPENCX_RETRY_INITIAL_MS,
      maxDelayMs: config.OPENCX_RETRY_MAX_MS,
    },
    metrics,
    logger,
  );
  const writableLinks: ApplyDeps['links'] = {
    forThread: links.forThread.bind(links),
    forTicket: links.forTicket.bind(links),
    write: (entries) => links.write(parts.tableWrites, entries),
    catchUp: () => links.catchUp(),
  };
  const applyDeps: ApplyDeps = {
    orgs,
    links: writableLinks,
    openCxFor: createOpenCxClients(config, redis, gates.openCx),
    hubspotFor,
    owedTicketLookUps,
    held: heldTickets.applyDeps,
    emitAiReply: (reply) => parts.publish(topics.aiReplies.name, [reply]),
    sessionsCreated: metrics.sessionsCreated,
    retry,
    logger,
    now: Date.now,
  };
  const { postedReplies } = parts;
  const replyAttempts = createRedisReplyAttempts(redis, config.REDIS_KEY_PREFIX, config.DEDUP_TTL_MS);
  const postDeps: PostAiReplyDeps = {
    orgs,
    links: { forThread: links.forThread.bind(links), catchUp: () => links.catchUp() },
    hubspotFor,
    posted: {
      alreadyPosted: (reply) => postedReplies.alreadyPosted(reply),
      record: (reply) => postedReplies.record(parts.tableWrites, reply, Date.now()),
      catchUp: () => postedReplies.catchUp(),
    },
    dedup: createRedisDedupStore(redis, {
      prefix: config.REDIS_KEY_PREFIX,
      owner: parts.instance,
      leaseMs: config.DEDUP_CLAIM_LEASE_MS,
      doneTtlMs: config.DEDUP_TTL_MS,
    }),
    markAttempt: replyAttempts.mark,
    clearAttempt: replyAttempts.clear,
    maybePostedSettleMs: config.HUBSPOT_TIMEOUT_MS,
    retry,
    claim: { leaseMs: config.DEDUP_CLAIM_LEASE_MS, now: Date.now, sleep },
  };
  return { applyDeps, postDeps, hubspotFor, links: writableLinks, owedTicketLookUps, heldTickets };
};
