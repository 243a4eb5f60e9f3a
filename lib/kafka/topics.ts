import { ErrorCode, PipelineError } from '../errors.ts';

/**
 * Every topic the pipeline uses. Names get KAFKA_TOPIC_PREFIX so deployments and test runs can
 * share a cluster.
 */
export type TopicSpec = {
  readonly name: string;
  readonly compacted: boolean;
  /** Compacted state topics are read whole by every replica: one partition keeps that simple. */
  readonly partitions?: number;
  /** retention.ms set when the topic is created, and raised at start-up on a topic that keeps less. */
  readonly retentionMs?: number;
};

export type Topics = {
  /** Raw HubSpot webhook events, keyed by organisation (or `portal:<id>` when unrouted). */
  readonly rawEvents: TopicSpec;
  /** customer-message, rep-reply, handoff, ticket-field-changed, note-mirrored; keyed by conversation. */
  readonly domainEvents: TopicSpec;
  /** ai-reply events (OpenCX → HubSpot), keyed by conversation. */
  readonly aiReplies: TopicSpec;
  /** Organisation configuration, one record per organisation. */
  readonly orgs: TopicSpec;
  /** HubSpot thread/ticket ↔ OpenCX session links and handoff state. */
  readonly sessionLinks: TopicSpec;
  /** Events that could not be applied, with the reason and attempts. */
  readonly deadLetters: TopicSpec;
  /** The last AI reply posted to each HubSpot thread (outbound's guard against posting twice). */
  readonly postedReplies: TopicSpec;
  /** Ticket and note events waiting for their ticket's session link, one record per ticket. */
  readonly heldTicketEvents: TopicSpec;
  /** Per organisation, how far the reconciler checked HubSpot's own lists (processor). */
  readonly reconcileWatermarks: TopicSpec;
};

/**
 * Dead letters wait for an operator: a holiday weekend and a slow week must not expire them
 * (the broker's default is 7 days). DEAD_LETTER_RETENTION_MS overrides it.
 */
export const DEFAULT_DEAD_LETTER_RETENTION_MS = 14 * 24 * 60 * 60 * 1000;

export const topicsFor = (
  prefix: string,
  options: { readonly deadLetterRetentionMs?: number } = {},
): Topics => ({
  rawEvents: { name: `${prefix}hubspot.webhook-events`, compacted: false },
  domainEvents: { name: `${prefix}pipeline.domain-events`, compacted: false },
  aiReplies: { name: `${prefix}pipeline.ai-replies`, compacted: false },
  orgs: { name: `${prefix}pipeline.orgs`, compacted: true, partitions: 1 },
  sessionLinks: { name: `${prefix}pipeline.session-links`, compacted: true, partitions: 1 },
  deadLetters: {
    name: `${prefix}pipeline.dead-letters`,
    compacted: false,
    retentionMs: options.deadLetterRetentionMs ?? DEFAULT_DEAD_LETTER_RETENTION_MS,
  },
  postedReplies: { name: `${prefix}pipeline.ai-replies-posted`, compacted: true, partitions: 1 },
  heldTicketEvents: { name: `${prefix}pipeline.held-ticket-events`, compacted: true, partitions: 1 },
  reconcileWatermarks: { name: `${prefix}pipeline.reconcile-watermarks`, compacted: true, partitions: 1 },
});

/**
 * The services' consumer groups, each with the one topic it reads. Named here, beside the topics,
 * because more than the services need them: the Helm chart's KEDA triggers scale on these groups'
 * lag (scripts/ci/helm-assertions.ts checks the rendered names against this), and the soak waits
 * for them to drain.
 */
export const consumerGroupsFor = (prefix: string) => {
  const topics = topicsFor(prefix);
  return {
    processor: { groupId: `${prefix}processor`, topic: topics.rawEvents.name },
    outboundDomainEvents: { groupId: `${prefix}outbound`, topic: topics.domainEvents.name },
    outboundAiReplies: { groupId: `${prefix}outbound.ai-replies`, topic: topics.aiReplies.name },
  } as const;
};

/**
 * The min.insync.replicas the services give their topics: KAFKA_MIN_INSYNC_REPLICAS, else 2 when
 * topics get 2 or more replicas (an acknowledged write is then on at least two brokers, and one
 * broker may be lost without refusing writes), else none (the broker's default). More than the
 * replication factor is refused: no acks=all write could ever succeed.
 */
export const minInsyncReplicasFor = (
  replicationFactor: number | undefined,
  configured: number | undefined,
): number | undefined => {
  if (configured !== undefined && replicationFactor !== undefined && configured > replicationFactor)
    throw new PipelineError(
      ErrorCode.config,
      `invalid configuration: KAFKA_MIN_INSYNC_REPLICAS = ${configured} is more than KAFKA_REPLICATION_FACTOR = ${replicationFactor}: every acks=all write would be refused`,
      { retriable: false },
    );
  if (configured !== undefined) return configured;
  return replicationFactor !== undefined && replicationFactor > 1 ? 2 : undefined;
};

/** Header naming the conversation (or object) a record belongs to: consumers keep each in order. */
export const ORDERING_KEY_HEADER = 'ordering-key';
