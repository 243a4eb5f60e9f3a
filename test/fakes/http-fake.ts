// Machinery shared by the HTTP fakes (OpenCX, HubSpot): a loopback server that closes every
// connection on close(), injected faults, held requests and artificial latency. Each fake
// keeps its own protocol; this file knows nothing about either API.
import { createServer } from 'node:http';
import type { IncomingHttpHeaders, IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

/** What a fake answers: a status, a JSON body (undefined: empty body) and extra headers. */
export interface FakeAnswer {
  readonly status: number;
  readonly body?: unknown;
  readonly headers?: Readonly<Record<string, string>>;
}

/** One scripted failure: the next `times` requests that match get `status` instead of their answer. */
export interface FaultRule {
  /** HTTP method to match (any when absent), case-insensitive. */
  readonly method?: string;
  /** Tested against the request path without its query string (any when absent). */
  readonly pathPattern?: RegExp;
  readonly status: number;
  /** How many matching requests fail; 1 when absent. */
  readonly times?: number;
  /** Sets a Retry-After header (seconds). */
  readonly retryAfterSeconds?: number;
  /** The JSON body of the failure; each fake has a realistic default. */
  readonly body?: unknown;
}

/** A gate on matching requests: `arrived` resolves when the first one comes in. */
export interface Hold {
  readonly arrived: Promise<void>;
  release(): void;
}

/** Faults are consumed in the order they were scripted; a rule is dropped once it has fired `times` times. */
export function createFaultScript<Rule extends FaultRule>() {
  let pending: Array<{ rule: Rule; left: number }> = [];
  return {
    failNext(rule: Rule): void {
      pending.push({ rule, left: rule.times ?? 1 });
    },
    /** The rule that applies to this request, counted down; undefined when none matches. */
    take(method: string, path: string): Rule | undefined {
      const match = pending.find((entry) => faultMatches(entry.rule, method, path));
      if (match === undefined) return undefined;
      match.left -= 1;
      if (match.left <= 0) pending = pending.filter((entry) => entry !== match);
      return match.rule;
    },
    clear(): void {
      pending = [];
    },
  };
}

function faultMatches(rule: FaultRule, method: string, path: string): boolean {
  if (rule.method !== undefined && rule.method.toUpperCase() !== method.toUpperCase()) return false;
  return rule.pathPattern === undefined || testPattern(rule.pathPattern, path);
}

// A /g or /y pattern keeps lastIndex between calls, which would make matching alternate.
function testPattern(pattern: RegExp, path: string): boolean {
  pattern.lastIndex = 0;
  return pattern.test(path);
}

export function retryAfterHeaders(rule: FaultRule): Record<string, string> {
  return rule.retryAfterSeconds === undefined ? {} : { 'retry-after': String(rule.retryAfterSeconds) };
}

/** Held requests wait until released; release() also lets later matching requests through. */
export function createHolds() {
  const active = new Set<{ pattern: RegExp; arrive(): void; released: Promise<void>; release(): void }>();
  return {
    hold(pathPattern: RegExp): Hold {
      let arrive = (): void => {};
      let release = (): void => {};
      const arrived = new Promise<void>((resolve) => (arrive = resolve));
      const released = new Promise<void>((resolve) => (release = resolve));
      const entry = {
        pattern: pathPattern,
        arrive,
        released,
        release: () => {
          active.delete(entry);
          release();
        },
      };
      active.add(entry);
      return { arrived, release: entry.release };
    },
    async waitIfHeld(path: string): Promise<void> {
      const matching = [...active].filter((entry) => testPattern(entry.pattern, path));
      for (const entry of matching) entry.arrive();
      await Promise.all(matching.map((entry) => entry.released));
    },
    /** On reset or close nothing may stay parked, or close() would wait forever. */
    releaseAll(): void {
      for (const entry of [...active]) entry.release();
    },
  };
}

export interface IncomingRequest {
  readonly method: string;
  readonly path: string;
  readonly query: URLSearchParams;
  readonly headers: IncomingHttpHeaders;
  readonly rawBody: string;
}

export interface LoopbackServer {
  readonly url: string;
  close(): Promise<void>;
}

/**
 * Serves `answer` on 127.0.0.1 with an ephemeral port. A throw inside `answer` is a bug in the
 * fake: it becomes a 500 and is printed, so it cannot pass for an OpenCX or HubSpot answer.
 */
export async function startLoopbackServer(
  answer: (request: IncomingRequest) => Promise<FakeAnswer>,
): Promise<LoopbackServer> {
  const server = createServer((req, res) => {
    void serve(req, res, answer);
  });
  await listenOnLoopback(server);
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () => closeServer(server),
  };
}

async function serve(
  req: IncomingMessage,
  res: ServerResponse,
  answer: (request: IncomingRequest) => Promise<FakeAnswer>,
): Promise<void> {
  try {
    const url = new URL(req.url ?? '/', 'http://fake.invalid');
    const rawBody = await readBody(req);
    const result = await answer({
      method: (req.method ?? 'GET').toUpperCase(),
      path: url.pathname,
      query: url.searchParams,
      headers: req.headers,
      rawBody,
    });
    writeAnswer(res, result);
  } catch (error) {
    console.error('fake server bug:', error);
    writeAnswer(res, { status: 500, body: { message: 'fake server bug', detail: String(error) } });
  }
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function writeAnswer(res: ServerResponse, answer: FakeAnswer): void {
  // The client may have given up (timeout) while the answer was delayed or held.
  if (res.destroyed || res.writableEnded) return;
  const payload = answer.body === undefined ? '' : JSON.stringify(answer.body);
  const headers: Record<string, string> = { ...answer.headers };
  if (payload !== '') headers['content-type'] = 'application/json; charset=utf-8';
  res.writeHead(answer.status, headers);
  res.end(payload);
}

function listenOnLoopback(server: Server): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
}

// closeAllConnections drops idle keep-alive sockets too, which server.close() alone would wait for.
function closeServer(server: Server): Promise<void> {
  return new Promise((resolve, reject) => {
    server.close((error) => (error === undefined ? resolve() : reject(error)));
    server.closeAllConnections();
  });
}

export async function delay(ms: number): Promise<void> {
  if (ms > 0) await sleep(ms);
}

/** The first value of a header that may have been sent more than once. */
export function headerValue(headers: IncomingHttpHeaders, name: string): string | undefined {
  const value = headers[name.toLowerCase()];
  return Array.isArray(value) ? value[0] : value;
}

/** The token of an `Authorization: Bearer <token>` header, or undefined when there is none. */
export function bearerToken(headers: IncomingHttpHeaders): string | undefined {
  const match = /^Bearer\s+(\S+)\s*$/i.exec(headerValue(headers, 'authorization') ?? '');
  return match?.[1];
}

export type JsonBody =
  { readonly ok: true; readonly value: unknown } | { readonly ok: false; readonly error: string };

/** An empty body is `undefined`, not an error: GETs have none. */
export function parseJsonBody(rawBody: string): JsonBody {
  if (rawBody === '') return { ok: true, value: undefined };
  try {
    return { ok: true, value: JSON.parse(rawBody) as unknown };
  } catch (error) {
    return { ok: false, error: error instanceof Error ? error.message : String(error) };
  }
}
