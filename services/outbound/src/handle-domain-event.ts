import type { KafkaMessage } from 'kafkajs';
import { DeadLetterReason, WaitReason } from '../../../lib/contracts/index.ts';
import type { PipelineEvent } from '../../../lib/domain-events.ts';
import { ErrorCode, PipelineError, describeError, isDependencyUnavailable } from '../../../lib/errors.ts';
import { done, type HandlerOutcome } from '../../../lib/kafka/index.ts';
import type { Logger } from '../../../lib/log.ts';
import type { OrgDirectory } from '../../../lib/orgs/index.ts';
import type { ApplyOutcome } from './apply-domain-event.ts';
import type { OutboundMetrics } from './metrics.ts';

export type PipelineEventHandlerDeps = {
  readonly decode: (value: Buffer) => Promise<PipelineEvent>;
  /** One event's effect: applyDomainEvent on the domain topic, postAiReply on the replies topic. */
  readonly apply: (event: PipelineEvent) => Promise<ApplyOutcome & { posted?: 'message' | 'comment' }>;
  /** Tells an organisation whose record no configured key opens from one that does not exist. */
  readonly orgs: Pick<OrgDirectory, 'lookupById'>;
  readonly metrics: OutboundMetrics;
  readonly logger: Logger;
  /** The attempts a retriable call had before it gave up (recorded on its dead letter). */
  readonly retryAttempts: number;
  /** How long to wait before the same event again when Kafka or a claim is in the way. */
  readonly transientRetryMs: number;
  readonly now?: () => number;
};

const upstreamWaitReason = {
  hubspot: { rateLimited: WaitReason.hubspotRateLimited, unavailable: WaitReason.hubspotUnavailable },
  opencx: { rateLimited: WaitReason.opencxRateLimited, unavailable: WaitReason.opencxUnavailable },
} as const;

/**
 * The organisation cannot take the event now: OpenCX (or HubSpot, for an AI reply) kept failing
 * with 5xx, 429 or timeouts through the in-memory retries, or the organisation is already
 * waited for. The consumer parks the organisation: an outage of any length is waited out, never
 * dead-lettered. Undefined for what is not the organisation's trouble.
 */
const waitForOrganisation = (error: PipelineError, now: number): HandlerOutcome | undefined => {
  if (error.code === ErrorCode.tenantWaiting)
    return {
      kind: 'wait-for-tenant',
      reason: error.upstream === 'hubspot' ? WaitReason.hubspotBudget : WaitReason.tenantWaiting,
      untilMs: now + (error.retryAfterMs ?? 1000),
    };
  if (!error.retriable || error.code === ErrorCode.recordTooLarge) return undefined;
  const failing = upstreamWaitReason[error.upstream ?? 'opencx'];
  return {
    kind: 'wait-for-tenant',
    reason: error.code === ErrorCode.upstreamRateLimited ? failing.rateLimited : failing.unavailable,
    ...(error.retryAfterMs === undefined ? {} : { untilMs: now + error.retryAfterMs }),
  };
};

/** Why a failure of OpenCX or HubSpot cannot be fixed by trying the same event again. */
const deadLetterReasonOf = (error: PipelineError): DeadLetterReason => {
  if (error.code === ErrorCode.recordTooLarge) return DeadLetterReason.recordTooLarge;
  if (error.retriable) return DeadLetterReason.retriesExhausted;
  if (error.upstream === 'hubspot')
    return error.code === ErrorCode.upstreamUnauthorized
      ? DeadLetterReason.hubspotUnauthorized
      : DeadLetterReason.hubspotRejected;
  return error.code === ErrorCode.upstreamUnauthorized
    ? DeadLetterReason.opencxUnauthorized
    : DeadLetterReason.opencxRejected;
};

/**
 * Decode, apply, count, and say what became of the record; the keyed consumer acts on that
 * (writes the dead letter, waits and tries again, or commits past it). Throws only what it
 * cannot classify, which the consumer retries a few times, then dead-letters as handler_crashed.
 */
export const createPipelineEventHandler =
  (deps: PipelineEventHandlerDeps) =>
  async (message: KafkaMessage): Promise<HandlerOutcome> => {
    const { metrics } = deps;
    let event: PipelineEvent;
    try {
      if (!message.value) throw new Error('record has no value');
      event = await deps.decode(message.value);
    } catch (error) {
      // The registry unreachable for a moment is not an undecodable record.
      if (isDependencyUnavailable(error))
        return { kind: 'retry', error: describeError(error), afterMs: deps.transientRetryMs };
      return {
        kind: 'dead-letter',
        reason: DeadLetterReason.undecodable,
        error: describeError(error),
        attempts: 1,
        orgId: null,
        eventType: null,
        eventId: null,
      };
    }
    const log = deps.logger.child({
      orgId: event.orgId,
      portalId: event.portalId,
      eventId: event.eventId,
      type: event.type,
    });
    const about = { orgId: event.orgId, eventType: event.type, eventId: event.eventId };
    // Unreadable is not unknown: applying would skip it for good; dead-lettered, it is replayed
    // once SECRETS_KEY (or SECRETS_KEY_PREVIOUS) opens the record again.
    const found = deps.orgs.lookupById(event.orgId);
    if (found.kind === 'unreadable') {
      log.error({ detail: found.detail }, 'organisation record unreadable: event dead-lettered');
      return {
        kind: 'dead-letter',
        reason: DeadLetterReason.orgUnreadable,
        error: found.detail,
        attempts: 1,
        ...about,
      };
    }
    const started = performance.now();
    let outcome: ApplyOutcome & { posted?: 'message' | 'comment' };
    try {
      outcome = await deps.apply(event);
    } catch (error) {
      // Kafka or Redis unreachable for a moment (a restart): the same event again later, never a
      // crash (whose budget ends in a dead letter).
      if (isDependencyUnavailable(error))
        return { kind: 'retry', error: describeError(error), afterMs: deps.transientRetryMs };
      if (!(error instanceof PipelineError)) throw error;
      if (error.code === ErrorCode.kafkaUnavailable || error.code === ErrorCode.dedupInFlight)
        return { kind: 'retry', error: describeError(error), afterMs: deps.transientRetryMs };
      const waiting = waitForOrganisation(error, (deps.now ?? Date.now)());
      if (waiting) {
        log.info({ err: describeError(error) }, 'organisation cannot take the event now; parked');
        return waiting;
      }
      return {
        kind: 'dead-letter',
        reason: deadLetterReasonOf(error),
        error: error.message,
        attempts: error.retriable ? deps.retryAttempts : 1,
        ...about,
      };
    }
    metrics.applyLatency.observe({ type: event.type }, (performance.now() - started) / 1000);
    switch (outcome.kind) {
      case 'skipped':
        metrics.skipped.inc({ type: event.type, reason: outcome.reason });
        log.debug({ reason: outcome.reason }, 'nothing to apply');
        return { kind: 'skipped', reason: outcome.reason };
      case 'held':
        // Counted by outcome in outbound_held_ticket_events_total; applied once its ticket is linked.
        log.debug('held until its ticket is linked to a session');
        return done;
      case 'malformed':
        return {
          kind: 'dead-letter',
          reason: DeadLetterReason.malformedEvent,
          error: outcome.detail,
          attempts: 1,
          ...about,
        };
      case 'applied':
        metrics.applied.inc({ type: event.type });
        if (outcome.posted) metrics.aiRepliesPosted.inc({ kind: outcome.posted });
        // Per event: debug (at volume an info line per event is a measurable share of the CPU);
        // outbound_events_applied_total counts them. npm start's demo stack shows debug.
        log.debug('applied');
        return done;
      default: {
        const unreachable: never = outcome;
        throw new Error(`unknown apply outcome ${JSON.stringify(unreachable)}`);
      }
    }
  };
