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
  /** The HTTP status the outside system answered, when it answered. */
  readonly status: number | undefined;

  constructor(
    code: ErrorCode,
    message: string,
    options: {
      retriable: boolean;
      cause?: unknown;
      retryAfterMs?: number;
      upstream?: 'hubspot' | 'opencx';
      status?: number;
    },
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'PipelineError';
    this.code = code;
    this.retriable = options.retriable;
    this.retryAfterMs = options.retryAfterMs;
    this.upstream = options.upstream;
    this.status = options.status;
  }
}

export const describeError = (error: unknown): string =>
  error instanceof Error ? `${error.name}: ${error.message}` : String(error);

/** kafkajs errors that mean "the broker did not answer or is moving", not "the request is wrong". */
const KAFKA_UNAVAILABLE = new Set([
  'KafkaJSConnectionError',
  'KafkaJSConnectionClosedError',
  'KafkaJSRequestTimeoutError',
  'KafkaJSBrokerNotFound',
  'KafkaJSLockTimeout',
  'KafkaJSNumberOfRetriesExceeded',
]);
const NETWORK =
  /ECONNREFUSED|ECONNRESET|ETIMEDOUT|EPIPE|EHOSTUNREACH|Connection is closed|connection closed|write after end|not the leader|coordinator is (loading|not available)/i;

/**
 * True when the error says a dependency (Kafka, Redis) was unreachable for a moment: the same
 * work succeeds later, so it is tried again, never counted as a handler crash (whose budget ends
 * in a dead letter: a Redis or broker restart would dead-letter whatever was in flight).
 * Reads the cause chain (kafkajs and ioredis wrap).
 */
export const isDependencyUnavailable = (error: unknown): boolean => {
  for (let cause = error, depth = 0; cause instanceof Error && depth < 8; depth++) {
    if (cause instanceof PipelineError) return cause.code === ErrorCode.kafkaUnavailable;
    if (cause.name === 'MaxRetriesPerRequestError') return true; // ioredis: Redis down
    if (KAFKA_UNAVAILABLE.has(cause.name)) return true;
    if (NETWORK.test(cause.message)) return true;
    cause = (cause as Error & { cause?: unknown }).cause;
  }
  return false;
};
