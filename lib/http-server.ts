/**
 * The HTTP plumbing of the services with an HTTP API (ingest, console): one error handler
 * (every non-2xx is {"error","detail"}, a 5xx never shows internals), bounded request bodies,
 * and a server with timeouts that answers malformed requests in the same shape.
 */
import { createServer, STATUS_CODES, type Server } from 'node:http';
import type { Socket } from 'node:net';
import type Koa from 'koa';
import type { Context, Middleware } from 'koa';
import type Router from '@koa/router';
import getRawBody from 'raw-body';
import { ErrorCode, PipelineError } from './errors.ts';
import type { Logger } from './log.ts';

/** The largest webhook or admin body a service reads (contract: 413 above 1 MiB). */
export const MAX_BODY_BYTES = 1024 * 1024;

/** Node's own header deadline; the body has its own (HTTP_BODY_TIMEOUT_MS, answered by the app). */
const HEADERS_TIMEOUT_MS = 5000;

/** An answer other than 2xx: rendered by the app's one error handler as `{"error","detail"}`. */
export class HttpError extends Error {
  readonly status: number;
  readonly code: string;
  readonly detail: string;
  constructor(status: number, code: string, detail: string) {
    super(`${code}: ${detail}`);
    this.status = status;
    this.code = code;
    this.detail = detail;
  }
}

/**
 * Our own HttpError, or a client error thrown by koa or the router (an undecodable path is a
 * 400 `URIError` there): both are the client's fault and answered as such.
 */
const asHttpError = (error: unknown): HttpError | undefined => {
  if (error instanceof HttpError) return error;
  const status = (error as { status?: unknown; expose?: unknown } | undefined)?.status;
  if (typeof status === 'number' && status >= 400 && status < 500)
    return new HttpError(status, 'bad_request', error instanceof Error ? error.message : 'bad request');
  return undefined;
};

/** One error handler: every non-2xx is {"error","detail"}; a 5xx never shows internals. */
export const jsonErrors =
  (router: Router, logger: Logger): Middleware =>
  async (ctx, next) => {
    try {
      await next();
      if (ctx.status === 404 && ctx.body === undefined)
        throw new HttpError(404, 'not_found', `no route for ${ctx.method} ${ctx.path}`);
      // allowedMethods answers these with an empty body; its Allow header stays.
      if (ctx.status === 405 && ctx.body === undefined)
        throw new HttpError(
          405,
          'method_not_allowed',
          `${ctx.method} is not allowed on ${ctx.path}; allowed: ${ctx.response.get('Allow')}`,
        );
      // koa-router answers a method it does not know at all (PROPFIND, ...) with 501. HubSpot and
      // monitors read any 5xx as "the service is failing", so it is the 405 RFC 9110 also allows:
      // the method is not supported on this resource, and Allow says which are.
      if (ctx.status === 501 && ctx.body === undefined) {
        const allowed = [...new Set(router.match(ctx.path, 'GET').path.flatMap((layer) => layer.methods))];
        ctx.set('Allow', allowed.join(', '));
        throw new HttpError(
          405,
          'method_not_allowed',
          `${ctx.method} is not supported; allowed on ${ctx.path}: ${allowed.join(', ')}`,
        );
      }
    } catch (error) {
      const answer = asHttpError(error);
      if (answer) {
        ctx.status = answer.status;
        ctx.body = { error: answer.code, detail: answer.detail };
        // The rest of that body is never read: do not keep the connection for it.
        if (answer.status === 408 || answer.status === 413) ctx.set('Connection', 'close');
      } else {
        logger.error({ err: error, path: ctx.path }, 'unhandled error in request');
        ctx.status = 500;
        ctx.body = { error: 'internal', detail: 'internal error; see the service log' };
      }
    }
  };

/** Where bodyDeadline leaves the time a request's body is due (performance.now() ms) and its timeout. */
const BODY_DUE = Symbol('bodyDue');
type BodyDue = { readonly dueAt: number; readonly timeoutMs: number };

/**
 * Starts each request's body clock when the request arrives. Node's `server.requestTimeout` is
 * only checked every `connectionsCheckingInterval` and answers in plain text, so a client that
 * sends headers and then trickles the body is cut off here, with a JSON 408. Only the time it is
 * due is kept (on the request's state: no map to maintain per request).
 */
export const bodyDeadline =
  (timeoutMs: number): Middleware =>
  (ctx, next) => {
    (ctx.state as Record<symbol, BodyDue>)[BODY_DUE] = { dueAt: performance.now() + timeoutMs, timeoutMs };
    return next();
  };

/**
 * The bodies being read that had not arrived when asked for, each with its 408. One sweep every
 * BODY_SWEEP_MS answers those past due (so at most that late), where a timer per request cost
 * a timer list per distinct delay on the hottest path; it runs only while a body is awaited.
 */
const BODY_SWEEP_MS = 100;
type AwaitedBody = { readonly dueAt: number; readonly tooSlow: () => void };
const awaitedBodies = new Set<AwaitedBody>();
let bodySweep: NodeJS.Timeout | undefined;
const sweepAwaitedBodies = (): void => {
  const now = performance.now();
  for (const awaited of awaitedBodies)
    if (awaited.dueAt <= now) {
      awaitedBodies.delete(awaited);
      awaited.tooSlow();
    }
  if (awaitedBodies.size === 0) {
    clearInterval(bodySweep);
    bodySweep = undefined;
  }
};

const unreadableBody = (error: Error & { type?: string }): HttpError =>
  error.type === 'entity.too.large'
    ? new HttpError(413, 'payload_too_large', `body over ${MAX_BODY_BYTES} bytes`)
    : new HttpError(400, 'unreadable_body', error.message);

/**
 * The raw body, at most MAX_BODY_BYTES: 413 above, 408 when it does not arrive in time, 400 when
 * it cannot be read. One promise per body (raw-body's callback form): this is every webhook.
 */
export const readBody = (ctx: Context): Promise<Buffer> =>
  new Promise<Buffer>((resolve, reject) => {
    const due = (ctx.state as Record<symbol, BodyDue | undefined>)[BODY_DUE];
    let awaited: AwaitedBody | undefined;
    // A body that already arrived in full is read, however late the handler asks for it.
    if (due !== undefined && !ctx.req.complete) {
      const tooSlow = (): void =>
        reject(
          new HttpError(408, 'body_timeout', `the request body did not arrive within ${due.timeoutMs} ms`),
        );
      if (due.dueAt <= performance.now()) return tooSlow();
      awaited = { dueAt: due.dueAt, tooSlow };
      awaitedBodies.add(awaited);
      bodySweep ??= setInterval(sweepAwaitedBodies, BODY_SWEEP_MS).unref();
    }
    // The declared length lets raw-body refuse a body over the limit before reading any of it.
    const declared = ctx.req.headers['content-length'];
    getRawBody(ctx.req, { limit: MAX_BODY_BYTES, length: declared }, (error, body) => {
      if (awaited !== undefined) awaitedBodies.delete(awaited);
      if (error) reject(unreadableBody(error));
      else resolve(body);
    });
  });

/**
 * A middleware answering one method on one exact path ahead of the router, for a service's
 * hottest route: the router matches each request against every route and builds a middleware
 * chain for it. Register the route with the router as well, so that it still answers the path's
 * other methods (405 with Allow).
 */
export const exactRoute =
  (method: string, path: string, handler: (ctx: Context) => Promise<void>): Middleware =>
  (ctx, next) =>
    ctx.method === method && ctx.path === path ? handler(ctx) : next();

/**
 * The base URL HubSpot and browsers reach a service on: PUBLIC_BASE_URL, else the request's own
 * (X-Forwarded-Proto/Host count only when the app was made with `proxy: true`, i.e. TRUST_PROXY).
 */
export const publicBaseUrl = (ctx: Context, configured: string | undefined): string =>
  configured ? configured.replace(/\/$/, '') : `${ctx.protocol}://${ctx.host}`;

const jsonAnswer = (status: number, error: string, detail: string): string => {
  const body = JSON.stringify({ error, detail });
  return (
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\n` +
    `Content-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\n` +
    `Connection: close\r\n\r\n${body}`
  );
};

/**
 * Requests Node refuses before koa sees them (unparseable request line or headers, headers too
 * large or too slow) get the same `{"error","detail"}` body as every other non-2xx.
 */
const answerClientError = (error: Error & { code?: string }, socket: Socket): void => {
  const inFlight = (socket as Socket & { _httpMessage?: { headersSent?: boolean } })._httpMessage;
  if (error.code === 'ECONNRESET' || !socket.writable || inFlight?.headersSent) {
    socket.destroy();
    return;
  }
  if (error.code === 'ERR_HTTP_REQUEST_TIMEOUT')
    socket.end(jsonAnswer(408, 'request_timeout', 'the request did not arrive in time'));
  else if (error.code === 'HPE_HEADER_OVERFLOW')
    socket.end(jsonAnswer(431, 'headers_too_large', 'the request headers are too large'));
  else
    socket.end(
      jsonAnswer(400, 'bad_request', `the request is not valid HTTP/1.1 (${error.code ?? error.message})`),
    );
};

/**
 * Serves the app on `port`. A port that cannot be bound rejects with one line saying which port
 * and what to do (not an unhandled 'error' event and its stack trace).
 */
export const listen = (
  app: Koa,
  options: { readonly port: number; readonly host: string; readonly bodyTimeoutMs: number },
): Promise<Server> => {
  const handle = app.callback();
  const server = createServer(
    {
      headersTimeout: HEADERS_TIMEOUT_MS,
      // A backstop only: the app answers a slow body itself (bodyDeadline) a second earlier.
      requestTimeout: HEADERS_TIMEOUT_MS + options.bodyTimeoutMs + 1000,
      connectionsCheckingInterval: 1000,
    },
    (request, response) => void handle(request, response),
  );
  server.on('clientError', answerClientError);
  return new Promise<Server>((resolve, reject) => {
    const failed = (error: Error & { code?: string }): void => {
      const advice =
        error.code === 'EADDRINUSE'
          ? `port ${options.port} is already in use: stop the process listening on it, or set PORT to a free port`
          : error.code === 'EACCES'
            ? `port ${options.port} needs privileges this process lacks: set PORT to a port above 1023`
            : `cannot listen on ${options.host}:${options.port}: ${error.message}`;
      reject(new PipelineError(ErrorCode.config, advice, { retriable: false, cause: error }));
    };
    server.once('error', failed);
    server.listen(options.port, options.host, () => {
      server.off('error', failed);
      resolve(server);
    });
  });
};

/**
 * GET /healthz (the process answers), /readyz (200 when `isReady`, else 503 with why) and
 * /metrics (the service's registry).
 */
export const healthRoutes = (
  router: Router,
  options: {
    readonly isReady: () => boolean;
    readonly notReadyDetail: string;
    readonly registry: { readonly contentType: string; readonly metrics: () => Promise<string> };
  },
): void => {
  router.get('/healthz', (ctx) => {
    ctx.body = { status: 'ok' };
  });
  router.get('/readyz', (ctx) => {
    if (!options.isReady()) throw new HttpError(503, 'not_ready', options.notReadyDetail);
    ctx.body = { status: 'ready' };
  });
  router.get('/metrics', async (ctx) => {
    ctx.type = options.registry.contentType;
    ctx.body = await options.registry.metrics();
  });
};
