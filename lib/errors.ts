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
const KAFKA_UNAVAILABLE: ReadonlySet<string> = new Set([
  'KafkaJSConnectionError',
  'KafkaJSConnectionClosedError',
  'KafkaJSRequestTimeoutError',
  'KafkaJSBrokerNotFound',
  'KafkaJSLockTimeout',
  'KafkaJSNumberOfRetriesExceeded',
  'KafkaJSNoBrokerAvailableError',
]);
/** Node's socket error codes for a peer that did not answer (or not yet: DNS while it restarts). */
const NETWORK_CODES: ReadonlySet<string> = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
]);
/** The same, as the libraries that flatten an error into a message write it (mappersmith, ioredis). */
const NETWORK =
  /ECONNREFUSED|ECONNRESET|ETIMEDOUT|EPIPE|EHOSTUNREACH|ENETUNREACH|EAI_AGAIN|Connection is closed|connection closed|write after end|not the leader|coordinator is (loading|not available)/i;
/**
 * PipelineErrors that wrap what a library threw without deciding what it was: the registry
 * codec turns every failed decode into `undecodable`, an unreachable registry included, so the
 * cause decides. Any other code is the thrower's own decision and ends the search.
 */
const WRAPPING_CODES: ReadonlySet<ErrorCode> = new Set([ErrorCode.undecodable]);

type Inspectable = Error & { cause?: unknown; code?: unknown; status?: unknown; errors?: unknown };

const unavailableHere = (error: Inspectable): boolean | undefined => {
  if (error instanceof PipelineError) {
    if (error.code === ErrorCode.kafkaUnavailable) return true;
    // An upstream's (HubSpot's, OpenCX's) failure is classified by its own code, not as ours.
    if (error.upstream !== undefined || !WRAPPING_CODES.has(error.code)) return false;
    return undefined;
  }
  if (error.name === 'MaxRetriesPerRequestError') return true; // ioredis: Redis down
  if (KAFKA_UNAVAILABLE.has(error.name)) return true;
  if (typeof error.code === 'string' && NETWORK_CODES.has(error.code)) return true;
  // The schema registry client's HTTP error: its 5xx and 408 are the registry not answering.
  if (error.name === 'ResponseError' && typeof error.status === 'number')
    if (error.status >= 500 || error.status === 408) return true;
  if (NETWORK.test(error.message)) return true;
  return undefined;
};

const unavailableWithin = (error: unknown, depth: number): boolean => {
  if (!(error instanceof Error) || depth >= 8) return false;
  const inspected = error as Inspectable;
  const here = unavailableHere(inspected);
  if (here !== undefined) return here;
  // Node's connect error with several addresses (IPv4 and IPv6) is an AggregateError of each.
  if (Array.isArray(inspected.errors) && inspected.errors.some((each) => unavailableWithin(each, depth + 1)))
    return true;
  return unavailableWithin(inspected.cause, depth + 1);
};

/**
 * True when the error says a dependency (Kafka, Redis, the schema registry) was unreachable for
 * a moment: the same work succeeds later, so it is tried again, never counted as a handler crash
 * (whose budget ends in a dead letter: a Redis or broker restart would dead-letter whatever was
 * in flight), and never taken for a bad record (an uncached schema id while the registry is
 * away is not an undecodable record). Reads the cause chain: kafkajs, ioredis, fetch (undici)
 * and the registry codec wrap what the socket said.
 */
export const isDependencyUnavailable = (error: unknown): boolean => unavailableWithin(error, 0);
