import { Agent, request } from 'undici';

/**
 * HTTP calls to HubSpot and OpenCX through undici's `request`, not `fetch`.
 *
 * Node's `fetch` is built on undici too, but wraps every call in WHATWG Request, Headers and
 * Response objects and a web stream for the body. In CPU profiles of the processor and outbound
 * at saturation it was the largest single cost: about 0.45 ms of CPU per call here, against
 * about 0.08 ms for `request` on the same keep-alive connections (bench/README.md, issue 10).
 */

/** One answer, its body read whole (HubSpot's and OpenCX's answers are small JSON documents). */
export type HttpAnswer = {
  readonly status: number;
  readonly ok: boolean;
  /** A response header, by its lower-case name. */
  readonly header: (name: string) => string | undefined;
  readonly text: string;
};

export type HttpRequest = {
  readonly method: string;
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
    method: call.method as 'GET',
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
