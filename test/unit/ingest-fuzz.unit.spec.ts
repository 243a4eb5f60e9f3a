import assert from 'node:assert/strict';
import type { Agent } from 'node:http';
import { connect } from 'node:net';
import fc from 'fast-check';
import {
  checkAnswer,
  fuzzCases,
  keepAliveAgent,
  send,
  signedHeaders,
  type SinkRecord,
} from '../support/ingest-fuzz.ts';
import {
  ADMIN,
  OAUTH_SECRET,
  PRIVATE_SECRET,
  refusingOAuth,
  startIngestApp,
  type TestIngestApp,
} from '../support/ingest-app.ts';

/**
 * Property-based fuzzing of ingest's HTTP surface (random methods, paths, headers and bodies:
 * arbitrary JSON, deep nesting, huge numbers, floats, wrong types, bytes that are not UTF-8;
 * validly signed or not) against the real koa app with a fake sink. Properties: no 5xx but a
 * 503 from a failing sink; every non-2xx is JSON {error, detail}; a 200 only for a validly
 * signed, well-formed batch, and then the sink got exactly its events; the process stays up.
 */
describe('ingest HTTP surface, fuzzed', function () {
  this.timeout(120000);
  let ingest: TestIngestApp;
  let agent: Agent;

  before(async () => {
    ingest = await startIngestApp({
      env: { ADMIN_TOKEN: ADMIN, HTTP_BODY_TIMEOUT_MS: '2000', HUBSPOT_CLIENT_ID: 'client-id' },
      oauth: refusingOAuth(),
    });
    agent = keepAliveAgent();
  });
  after(async () => {
    agent.destroy();
    await ingest.close();
  });

  it('given 2,000 fuzzed requests, then every answer keeps the properties and ingest still answers', async () => {
    const statuses = new Map<number, number>();
    const details = await fc.check(
      fc.asyncProperty(fuzzCases(Date.now()), async (fuzzCase) => {
        const now = Date.now();
        ingest.deliveries.length = 0;
        ingest.control.sinkFails = fuzzCase.sinkFails;
        const headers = signedHeaders(
          fuzzCase,
          ingest.base,
          { oauth: OAUTH_SECRET, privateApp: PRIVATE_SECRET },
          now,
        );
        const answer = await send(ingest.base, fuzzCase, headers, agent);
        statuses.set(answer.status, (statuses.get(answer.status) ?? 0) + 1);
        const sunk: SinkRecord =
          ingest.deliveries.length === 0
            ? undefined
            : ingest.deliveries.flatMap(({ events }) =>
                events.map(({ event }) => ({ json: event.json.toString('utf8') })),
              );
        assert.ok(ingest.deliveries.length <= 1, 'one request, at most one sink call');
        checkAnswer(fuzzCase, answer, sunk, now);
      }),
      { numRuns: 2000, endOnFailure: true },
    );
    // fast-check's own report prints the whole body (up to megabytes): the broken property, and
    // the seed to replay it, are enough.
    if (details.failed)
      assert.fail(
        `${details.errorInstance instanceof Error ? details.errorInstance.message : String(details.errorInstance)}\n(seed ${details.seed}, path ${details.counterexamplePath})`,
      );
    assert.equal((await fetch(`${ingest.base}/healthz`)).status, 200);
    // Each kind of answer was reached, or the generators have drifted into testing nothing.
    for (const status of [200, 400, 401, 404, 503])
      assert.ok(statuses.get(status), `no ${status} among ${JSON.stringify([...statuses])}`);
  });
  it('given 300 raw byte streams (a request line, then random bytes), then any answer is a non-5xx JSON error and ingest still answers', async () => {
    let refused = 0;
    const details = await fc.check(
      fc.asyncProperty(
        fc.constantFrom('', 'POST /webhooks/hubspot HTTP/1.1\r\n', 'GET /healthz HTTP/1.1\r\nHost: x\r\n'),
        fc.uint8Array({ maxLength: 300 }),
        async (line, bytes) => {
          const answer = await rawBytesExchange(ingest.port, Buffer.concat([Buffer.from(line), bytes]));
          if (answer === '') return; // still waiting for more of the request when the client hung up
          const status = Number(/^HTTP\/1\.1 (\d{3}) /.exec(answer)?.[1]);
          assert.ok(status >= 200 && status < 500, `answered ${answer.slice(0, 200)}`);
          if (status >= 400) {
            refused++;
            const body = JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4)) as object;
            assert.deepEqual(Object.keys(body).sort(), ['detail', 'error']);
          }
        },
      ),
      { numRuns: 300, endOnFailure: true },
    );
    if (details.failed) assert.fail(String(details.errorInstance));
    assert.ok(refused > 100, `only ${refused} of 300 were answered with an error`);
    assert.equal((await fetch(`${ingest.base}/healthz`)).status, 200);
  });
});

/** Writes the bytes and half-closes; what came back before the server closed (or 300 ms passed). */
const rawBytesExchange = (port: number, bytes: Buffer) =>
  new Promise<string>((resolve) => {
    const socket = connect(port, '127.0.0.1');
    let answer = '';
    socket.on('connect', () => socket.end(bytes));
    socket.on('data', (chunk) => (answer += chunk.toString('latin1')));
    socket.on('error', () => socket.destroy());
    socket.on('close', () => resolve(answer));
    setTimeout(() => socket.destroy(), 300).unref();
  });
