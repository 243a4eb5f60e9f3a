/**
 * One error base for the whole pipeline. `retriable` tells the consumer loop whether trying the
 * same work again can succeed (network, 5xx, 429) or whether the input itself is at fault.
 */
export const ErrorCode = {
  config: 'CONFIG_INVALID',
  kafkaUnavailable: 'KAFKA_UNAVAILABLE',
  upstreamUnavailable: 'UPSTREAM_UNAVAILABLE',
  upstreamRateLimited: 'UPSTREAM_RATE_LIMITED',
  upstreamRejected: 'UPSTREAM_REJECTED',
  upstreamUnauthorized: 'UPSTREAM_UNAUTHORIZED',
  undecodable: 'UNDECODABLE_PAYLOAD',
  secrets: 'SECRETS',
  dedupInFlight: 'DEDUP_IN_FLIGHT',
  /** A record over the topic's size limit: permanent, never "Kafka unavailable". */
  recordTooLarge: 'RECORD_TOO_LARGE',
  /**
   * The call's tenant (portal, organisation) must wait: its budget is spent for longer than the
   * park grace, or it is parked after failures. Not retried in memory: the event is parked.
   */
  tenantWaiting: 'TENANT_WAITING',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

export class PipelineError extends Error {
  readonly code: ErrorCode;
  readonly retriable: boolean;
  /** For rate limits: how long the upstream asked us to wait. */
  readonly retryAfterMs: number | undefined;
  /** Which outside system failed, when one did ('hubspot', 'opencx'). */
  readonly upstream: 'hubspot' | 'opencx' | undefined;

  constructor(
    code: ErrorCode,
    message: string,
    options: { retriable: boolean; cause?: unknown; retryAfterMs?: number; upstream?: 'hubspot' | 'opencx' },
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'PipelineError';
    this.code = code;
    this.retriable = options.retriable;
    this.retryAfterMs = options.retryAfterMs;
    this.upstream = options.upstream;
  }
}

export const describeError = (error: unknown): string =>
  error instanceof Error ? `${error.name}: ${error.message}` : String(error);
