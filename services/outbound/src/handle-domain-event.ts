import type { KafkaMessage } from 'kafkajs';
import { DeadLetterReason } from '../../../lib/contracts/index.ts';
import type { PipelineEvent } from '../../../lib/domain-events.ts';
import { describeError } from '../../../lib/errors.ts';
import { classifyDecodeFailure, classifyFailure } from '../../../lib/failure-outcome.ts';
import { done, type HandlerOutcome } from '../../../lib/kafka/index.ts';
import { lazyChild, type Logger } from '../../../lib/log.ts';
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
      return classifyDecodeFailure(error, deps.transientRetryMs);
    }
    // Made only when a line is written: most events write none at info.
    const log = lazyChild(deps.logger, {
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
      const failed = classifyFailure(error, {
        upstream: 'opencx',
        now: (deps.now ?? Date.now)(),
        transientRetryMs: deps.transientRetryMs,
        retryAttempts: deps.retryAttempts,
        event: about,
      });
      // Unclassified is a bug: the consumer tries it a few times, then dead-letters it as handler_crashed.
      if (failed.kind === 'unclassified') throw error;
      if (failed.kind === 'wait-for-tenant')
        log.info({ err: describeError(error) }, 'organisation cannot take the event now; parked');
      return failed;
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
