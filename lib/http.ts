import { Agent, request, type Dispatcher } from 'undici';
import { ErrorCode, PipelineError } from './errors.ts';

/**
 * HTTP calls to HubSpot and OpenCX through undici's `request`, not `fetch`.
 *
 * Node's `fetch` is built on undici too, but wraps every call in WHATWG Request, Headers and
 * Response objects and a web stream for the body: several times the CPU per call of `request`
 * on the same keep-alive connections, and the largest single cost of the processor and outbound
 * at saturation (figures in bench/README.md).
 */

/** One answer, its body read whole (HubSpot's and OpenCX's answers are small JSON documents). */
export type HttpAnswer = {
  readonly status: number;
  readonly ok: boolean;
  /** A response header, by its lower-case name. */
  readonly header: (name: string) => string | undefined;
  readonly text: string;
};

export type HttpMethod = Dispatcher.HttpMethod;

export type HttpRequest = {
  readonly method: HttpMethod;
  readonly headers: Record<string, string>;
  readonly body?: string;
  /** The whole call, body included: past it the call rejects (an AbortError, a TimeoutError). */
  readonly timeoutMs: number;
};

// Keep-alive connections, reused across calls. At most 256 per origin: when an upstream slows
// down, calls beyond that wait here (inside their timeout) instead of opening ever more sockets
// to a server that is already behind.
const dispatcher = new Agent({ keepAliveTimeout: 10_000, keepAliveMaxTimeout: 60_000, connections: 256 });

/** Rejects only when no answer came (refused, reset, timed out); any status resolves. */
export const httpRequest = async (url: string, call: HttpRequest): Promise<HttpAnswer> => {
  const response = await request(url, {
    method: call.method,
    headers: call.headers,
    ...(call.body === undefined ? {} : { body: call.body }),
    signal: AbortSignal.timeout(call.timeoutMs),
    dispatcher,
  });
  const text = await response.body.text();
  const { headers } = response;
  return {
    status: response.statusCode,
    ok: response.statusCode >= 200 && response.statusCode < 300,
    header: (name) => {
      const value = headers[name];
      return Array.isArray(value) ? value[0] : value;
    },
    text,
  };
};

/**
 * A success's JSON body (undefined when empty). A 2xx whose body is not JSON is the upstream's
 * fault, not ours: a classified rejection (dead-lettered with the reason), never a crash.
 */
export const jsonBodyOf = (answer: HttpAnswer, what: string, upstream: 'hubspot' | 'opencx'): unknown => {
  if (answer.status === 204 || answer.text === '') return undefined;
  try {
    return JSON.parse(answer.text) as unknown;
  } catch {
    throw new PipelineError(
      ErrorCode.upstreamRejected,
      `${what}: ${upstream === 'hubspot' ? 'HubSpot' : 'OpenCX'} answered ${answer.status} with a body that is not JSON: ${answer.text.slice(0, 300)}`,
      { upstream, retriable: false },
    );
  }
};
