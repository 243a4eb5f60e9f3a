import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ErrorCode, PipelineError } from '../../lib/errors.ts';
import { callClassOf, createHubSpotApi, type HubSpotCallPurpose } from '../../lib/hubspot/index.ts';
import { message as hubSpotMessage } from '../fakes/hubspot-fixtures.ts';
import { startFakeHubSpot } from '../fakes/hubspot.ts';
import { createOpenCxApi } from '../../services/outbound/src/opencx/client.ts';

/**
 * The HubSpot and OpenCX clients over real HTTP (a node:http server on loopback): every answer
 * that is not a success becomes a classified PipelineError, a call that gets no answer in time
 * is a retriable one, and what is sent carries the token and the body.
 */
describe('HTTP clients: HubSpot and OpenCX answers, classified', () => {
  let server: Server;
  let baseUrl: string;
  let answer: (request: IncomingMessage, body: string, response: ServerResponse) => void;
  const seen: { method: string; url: string; headers: IncomingMessage['headers']; body: string }[] = [];

  before(async () => {
    server = createServer((request, response) => {
      let body = '';
      request.setEncoding('utf8');
      request.on('data', (chunk: string) => (body += chunk));
      request.on('end', () => {
        seen.push({ method: request.method ?? '', url: request.url ?? '', headers: request.headers, body });
        answer(request, body, response);
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });
  beforeEach(() => (seen.length = 0));

  const json = (status: number, value: unknown, headers: Record<string, string> = {}) =>
    ((_request: IncomingMessage, _body: string, response: ServerResponse) => {
      response.writeHead(status, { 'content-type': 'application/json', ...headers });
      response.end(JSON.stringify(value));
    }) as typeof answer;
  const hubspot = (timeoutMs = 2000) => createHubSpotApi({ baseUrl, accessToken: 'tok-1', timeoutMs });
  const opencx = (timeoutMs = 2000) => createOpenCxApi({ baseUrl, apiKey: 'key-1', timeoutMs });
  const rejectsWith = async (
    work: Promise<unknown>,
    expected: { code: ErrorCode; retriable: boolean; retryAfterMs?: number; message: RegExp },
  ) =>
    assert.rejects(work, (error: unknown) => {
      assert.ok(error instanceof PipelineError, String(error));
      assert.equal(error.code, expected.code);
      assert.equal(error.retriable, expected.retriable);
      if (expected.retryAfterMs !== undefined) assert.equal(error.retryAfterMs, expected.retryAfterMs);
      assert.match(error.message, expected.message);
      return true;
    });

  it('given a HubSpot message, then it is fetched with the bearer token and parsed', async () => {
    answer = json(200, {
      id: 'm1',
      type: 'MESSAGE',
      text: 'hi',
      senders: [],
      recipients: [],
      createdAt: '2026-01-01T00:00:00Z',
    });
    const message = await hubspot().getMessage('T1', 'm1');
    assert.equal(message.id, 'm1');
    assert.equal(seen[0]?.headers.authorization, 'Bearer tok-1');
    assert.equal(seen[0]?.url, '/conversations/v3/conversations/threads/T1/messages/m1');
  });

  it("given the fake HubSpot, when the reconciler's lists are read, then threads come by latest activity since the date and messages newest first, page by page, as bookkeeping calls", async () => {
    const fake = await startFakeHubSpot({ tokens: { 'tok-r': 77 }, defaultRateLimit: null });
    try {
      const since = Date.parse('2026-03-01T10:00:00Z');
      const at = (seconds: number) => new Date(since + seconds * 1000).toISOString();
      fake.addMessage(hubSpotMessage({ threadId: '9001', createdAt: at(-5) }), { portalId: 77 });
      const messages = Array.from({ length: 102 }, (_, index) =>
        hubSpotMessage({ threadId: '9002', createdAt: at(index + 1) }),
      );
      for (const stored of messages) fake.addMessage(stored, { portalId: 77 });
      const purposes: HubSpotCallPurpose[] = [];
      const api = createHubSpotApi({
        baseUrl: fake.url,
        accessToken: 'tok-r',
        timeoutMs: 2000,
        beforeRequest: async (purpose) => void purposes.push(purpose),
      });

      const threads = await api.listThreadsSince(since);
      const first = await api.listThreadMessages('9002');
      const rest = await api.listThreadMessages('9002', first.after);

      assert.deepEqual(
        threads.results.map((thread) => [thread.id, thread.latestMessageTimestamp]),
        [['9002', at(102)]],
      );
      assert.equal(threads.after, undefined);
      assert.equal(first.results.length, 100);
      assert.equal(first.results[0]?.id, messages[101]?.id, 'newest first');
      assert.deepEqual(
        rest.results.map((entry) => entry.id),
        [messages[1]?.id, messages[0]?.id],
      );
      assert.equal(rest.after, undefined);
      assert.equal(
        fake.requests[0]?.query.latestMessageTimestampAfter,
        new Date(since).toISOString(),
        'the date as HubSpot takes it (date-time)',
      );
      assert.deepEqual(purposes, ['reconcile_threads', 'reconcile_messages', 'reconcile_messages']);
      assert.deepEqual(
        purposes.map((purpose) => callClassOf[purpose]),
        ['bookkeeping', 'bookkeeping', 'bookkeeping'],
      );
    } finally {
      await fake.close();
    }
  });

  it('given a post, then HubSpot receives the JSON body', async () => {
    answer = json(201, { id: 'p1', type: 'MESSAGE', senders: [], recipients: [] });
    const posted = await hubspot().postMessage('T1', { type: 'COMMENT', text: 'x', attachments: [] });
    assert.equal(posted.id, 'p1');
    assert.equal(seen[0]?.method, 'POST');
    assert.equal(seen[0]?.headers['content-type'], 'application/json');
    assert.deepEqual(JSON.parse(seen[0]?.body ?? ''), { type: 'COMMENT', text: 'x', attachments: [] });
  });

  it("given HubSpot's 429 with its interval header, then retriable with that wait", async () => {
    answer = json(
      429,
      { policyName: 'TEN_SECONDLY_ROLLING' },
      { 'x-hubspot-ratelimit-interval-milliseconds': '10000' },
    );
    await rejectsWith(hubspot().getMessage('T1', 'm1'), {
      code: ErrorCode.upstreamRateLimited,
      retriable: true,
      retryAfterMs: 10000,
      message: /TEN_SECONDLY_ROLLING/,
    });
  });

  it('given HubSpot 5xx, 401 and 404, then retriable, unauthorized and rejected', async () => {
    answer = json(502, {});
    await rejectsWith(hubspot().getThread('T1'), {
      code: ErrorCode.upstreamUnavailable,
      retriable: true,
      message: /answered 502/,
    });
    answer = json(401, {});
    await rejectsWith(hubspot().getThread('T1'), {
      code: ErrorCode.upstreamUnauthorized,
      retriable: false,
      message: /reconnect the HubSpot app/,
    });
    answer = json(404, { message: 'no such thread' });
    await rejectsWith(hubspot().getThread('T1'), {
      code: ErrorCode.upstreamRejected,
      retriable: false,
      message: /answered 404: .*no such thread/,
    });
  });

  it('given a 200 whose body is not JSON, or not a message, then rejected (never a crash)', async () => {
    answer = (_request, _body, response) => {
      response.writeHead(200, { 'content-type': 'application/json' });
      response.end('<html>gateway</html>');
    };
    await rejectsWith(hubspot().getMessage('T1', 'm1'), {
      code: ErrorCode.upstreamRejected,
      retriable: false,
      message: /not JSON/,
    });
    await rejectsWith(opencx().sendContactMessage('S1', 'hi', 'k1'), {
      code: ErrorCode.upstreamRejected,
      retriable: false,
      message: /not JSON/,
    });
    answer = json(200, { unexpected: true });
    await rejectsWith(hubspot().getMessage('T1', 'm1'), {
      code: ErrorCode.upstreamRejected,
      retriable: false,
      message: /^GET message m1: unexpected HubSpot answer: id: expected string, received undefined$/,
    });
  });

  it('given no answer within the timeout, then a retriable error that says so (for HubSpot and OpenCX)', async () => {
    answer = () => undefined; // never answers
    await rejectsWith(hubspot(150).getMessage('T1', 'm1'), {
      code: ErrorCode.upstreamUnavailable,
      retriable: true,
      message: /no answer within 150 ms/,
    });
    await rejectsWith(opencx(150).sendContactMessage('S1', 'hi', 'k1'), {
      code: ErrorCode.upstreamUnavailable,
      retriable: true,
      message: /OpenCX unreachable or slow/,
    });
  });

  it('given nothing listening, then retriable "unreachable"', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    const api = createHubSpotApi({ baseUrl: `http://127.0.0.1:${port}`, accessToken: 't', timeoutMs: 2000 });
    await rejectsWith(api.getThread('T1'), {
      code: ErrorCode.upstreamUnavailable,
      retriable: true,
      message: /HubSpot unreachable/,
    });
  });

  it("given OpenCX's 429 with Retry-After, a 503 and a 401, then classified", async () => {
    answer = json(429, {}, { 'retry-after': '3' });
    await rejectsWith(opencx().sendContactMessage('S1', 'hi', 'k1'), {
      code: ErrorCode.upstreamRateLimited,
      retriable: true,
      retryAfterMs: 3000,
      message: /answered 429/,
    });
    answer = json(503, {});
    await rejectsWith(opencx().sendContactMessage('S1', 'hi', 'k1'), {
      code: ErrorCode.upstreamUnavailable,
      retriable: true,
      message: /answered 503/,
    });
    answer = json(401, {});
    await rejectsWith(opencx().sendContactMessage('S1', 'hi', 'k1'), {
      code: ErrorCode.upstreamUnauthorized,
      retriable: false,
      message: /answered 401/,
    });
    assert.equal(seen.at(-1)?.headers['idempotency-key'], 'k1');
    assert.equal(seen.at(-1)?.headers.authorization, 'Bearer key-1');
  });
});
