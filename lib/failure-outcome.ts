import { DeadLetterReason, WaitReason } from './contracts/reasons.ts';
import { ErrorCode, PipelineError, describeError, isDependencyUnavailable } from './errors.ts';
import type { HandlerOutcome } from './kafka/handler-outcome.ts';

/** The outside systems a handler calls. */
export type Upstream = 'hubspot' | 'opencx';

export type FailureContext = {
  /**
   * Whose failure one is that names no outside system: the processor calls only HubSpot, and
   * outbound's OpenCX client leaves `upstream` unset on its 5xx and 429 answers.
   */
  readonly upstream: Upstream;
  readonly now: number;
  /** How long to wait before the same event again when Kafka, Redis or a claim is in the way. */
  readonly transientRetryMs: number;
  /** The attempts a retriable call had before it gave up (recorded on its dead letter). */
  readonly retryAttempts: number;
  /** What the dead letter says about the event. */
  readonly event: {
    readonly orgId: string | null;
    readonly eventType: string | null;
    readonly eventId: string | null;
  };
};

/**
 * What the consumer does with an event whose handling failed; `unclassified` is a bug, which
 * the handler throws for the consumer's crash budget (it ends in a handler_crashed dead letter).
 */
export type FailureOutcome =
  | Extract<HandlerOutcome, { kind: 'retry' | 'wait-for-tenant' | 'dead-letter' }>
  | { readonly kind: 'unclassified' };

const waitReasons = {
  hubspot: { rateLimited: WaitReason.hubspotRateLimited, unavailable: WaitReason.hubspotUnavailable },
  opencx: { rateLimited: WaitReason.opencxRateLimited, unavailable: WaitReason.opencxUnavailable },
} as const;

const rejectedReasons = {
  hubspot: { unauthorized: DeadLetterReason.hubspotUnauthorized, rejected: DeadLetterReason.hubspotRejected },
  opencx: { unauthorized: DeadLetterReason.opencxUnauthorized, rejected: DeadLetterReason.opencxRejected },
} as const;

/** A Kafka, Redis or claim failure: the same work succeeds later, never counted as a crash. */
const isTransient = (error: unknown): boolean =>
  isDependencyUnavailable(error) ||
  (error instanceof PipelineError &&
    (error.code === ErrorCode.kafkaUnavailable || error.code === ErrorCode.dedupInFlight));

/** avsc refused a record the handler built: the same input fails the same way on every attempt. */
const isSchemaRefusal = (error: unknown): error is Error =>
  error instanceof Error && error.name === 'ConfluentSchemaRegistryValidationError';

/**
 * The tenant cannot take the event now: its HubSpot budget is spent for longer than the park
 * grace, it is already waited for, or its outside system kept failing (429, 5xx, timeouts)
 * through the in-memory retries. The consumer parks the tenant: an outage of any length is
 * waited out, never dead-lettered.
 */
const waitFor = (error: PipelineError, context: FailureContext): FailureOutcome | undefined => {
  const upstream = error.upstream ?? context.upstream;
  if (error.code === ErrorCode.tenantWaiting)
    return {
      kind: 'wait-for-tenant',
      reason: upstream === 'hubspot' ? WaitReason.hubspotBudget : WaitReason.tenantWaiting,
      untilMs: context.now + (error.retryAfterMs ?? 1000),
    };
  if (!error.retriable || error.code === ErrorCode.recordTooLarge) return undefined;
  const reasons = waitReasons[upstream];
  return {
    kind: 'wait-for-tenant',
    reason: error.code === ErrorCode.upstreamRateLimited ? reasons.rateLimited : reasons.unavailable,
    ...(error.retryAfterMs === undefined ? {} : { untilMs: context.now + error.retryAfterMs }),
  };
};

/**
 * Why a failure cannot be fixed by trying the same event again. A retriable failure never gets
 * here but as a record too large: every other one waits (above), however long its outage lasts.
 */
const deadLetterReasonOf = (error: PipelineError, upstream: Upstream): DeadLetterReason => {
  if (error.code === ErrorCode.recordTooLarge) return DeadLetterReason.recordTooLarge;
  const reasons = rejectedReasons[error.upstream ?? upstream];
  return error.code === ErrorCode.upstreamUnauthorized ? reasons.unauthorized : reasons.rejected;
};

/**
 * One failure of a consumer's handler, as the outcome the consumer acts on: transient (Kafka,
 * Redis, a claim) → retry; the tenant's trouble → wait-for-tenant; what no retry fixes → a dead
 * letter with its reason; anything else (not a PipelineError) → unclassified.
 */
export const classifyFailure = (error: unknown, context: FailureContext): FailureOutcome => {
  if (isTransient(error))
    return { kind: 'retry', error: describeError(error), afterMs: context.transientRetryMs };
  if (isSchemaRefusal(error))
    return {
      kind: 'dead-letter',
      reason: DeadLetterReason.malformedEvent,
      error: describeError(error),
      attempts: 1,
      ...context.event,
    };
  if (!(error instanceof PipelineError)) return { kind: 'unclassified' };
  const waiting = waitFor(error, context);
  if (waiting) return waiting;
  return {
    kind: 'dead-letter',
    reason: deadLetterReasonOf(error, context.upstream),
    error: describeError(error),
    attempts: error.retriable ? context.retryAttempts : 1,
    ...context.event,
  };
};

/**
 * A record whose bytes did not decode: the registry unreachable for a moment is tried again;
 * anything else is an undecodable dead letter (about no event: none was read).
 */
export const classifyDecodeFailure = (
  error: unknown,
  transientRetryMs: number,
): Extract<HandlerOutcome, { kind: 'retry' | 'dead-letter' }> =>
  isDependencyUnavailable(error)
    ? { kind: 'retry', error: describeError(error), afterMs: transientRetryMs }
    : {
        kind: 'dead-letter',
        reason: DeadLetterReason.undecodable,
        error: describeError(error),
        attempts: 1,
        orgId: null,
        eventType: null,
        eventId: null,
      };
