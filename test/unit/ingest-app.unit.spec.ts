import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { connect } from 'node:net';
import * as fixtures from '../fakes/hubspot-fixtures.ts';
import {
  ADMIN,
  PRIVATE_SECRET,
  refusingOAuth,
  sdkSignedHeaders,
  startIngestApp,
  type TestIngestApp,
} from '../support/ingest-app.ts';

type ErrorBody = { error: string; detail: string };

/**
 * The HTTP contract of ingest with the Kafka write replaced by a sink the test controls: the
 * broker itself is exercised by the integration tests; here, what each answer looks like.
 */
describe('ingest HTTP answers', () => {
  let ingest: TestIngestApp;

  before(async () => {
    ingest = await startIngestApp({ env: { HTTP_BODY_TIMEOUT_MS: '300' } });
  });
  beforeEach(() => {
    ingest.deliveries.length = 0;
    ingest.control.ready = true;
    ingest.control.sinkFails = false;
  });
  after(() => ingest.close());

  const routedOrgs = () =>
    ingest.deliveries.map(({ route, events }) => ({
      route,
      orgs: events.map(({ org }) => org?.orgId),
    }));
  const postBody = (path: string, body: string, secret?: string, headers: Record<string, string> = {}) =>
    fetch(`${ingest.base}${path}`, {
      method: 'POST',
      body,
      headers: {
        'content-type': 'application/json',
        ...sdkSignedHeaders(`${ingest.base}${path}`, body, secret),
        ...headers,
      },
    });
  const post = (path: string, batch: readonly object[], secret?: string) =>
    postBody(path, JSON.stringify(batch), secret);
  const events = [
    fixtures.webhookEvent({ portalId: 77 }),
    { portalId: 5, eventType: 'contact.creation', objectId: 2, occurredAt: Date.now() },
  ];

  it('given Kafka unable to take the batch, when posted, then 503 with a JSON error so HubSpot redelivers', async () => {
    ingest.control.sinkFails = true;
    const response = await post('/webhooks/hubspot', events);
    assert.equal(response.status, 503);
    assert.deepEqual(await response.json(), {
      error: 'kafka_unavailable',
      detail: 'events could not be written durably; HubSpot will retry',
    });
  });

  it('given a batch of mixed types, when accepted, then each type is counted by its number of events, and unrouted ones apart', async () => {
    const countsOf = async () => {
      const text = await (await fetch(`${ingest.base}/metrics`)).text();
      const count = (pattern: RegExp) => Number(pattern.exec(text)?.[1] ?? 0);
      return {
        newMessage: count(
          /ingest_events_accepted_total\{subscription_type="conversation.newMessage"[^}]*\} (\d+)/,
        ),
        contact: count(/ingest_events_accepted_total\{subscription_type="contact.creation"[^}]*\} (\d+)/),
        unrouted: count(/ingest_events_unrouted_total\{[^}]*\} (\d+)/),
      };
    };
    const before = await countsOf();
    const contact = { portalId: 5, eventType: 'contact.creation', objectId: 2, occurredAt: Date.now() };
    const message = fixtures.webhookEvent({ portalId: 77 });
    const response = await post('/webhooks/hubspot', [message, message, contact, message, contact]);
    assert.equal(response.status, 200);
    const after = await countsOf();
    assert.deepEqual(
      {
        newMessage: after.newMessage - before.newMessage,
        contact: after.contact - before.contact,
        unrouted: after.unrouted - before.unrouted,
      },
      { newMessage: 3, contact: 2, unrouted: 2 },
    );
  });

  it('given the webhook path with a trailing slash, when posted signed for it, then the router serves it as the path without (answered ahead of the router otherwise)', async () => {
    const response = await post('/webhooks/hubspot/', events);
    assert.equal(response.status, 200);
    assert.deepEqual(routedOrgs(), [{ route: 'OAUTH_APP', orgs: ['acme', undefined] }]);
  });

  it('given a valid batch, when posted, then 200 after the sink, each event routed by portal (unknown portals too)', async () => {
    const response = await post('/webhooks/hubspot', events);
    assert.equal(response.status, 200);
    assert.equal(response.headers.get('content-type'), 'application/json; charset=utf-8');
    assert.deepEqual(await response.json(), { accepted: 2 });
    assert.deepEqual(routedOrgs(), [{ route: 'OAUTH_APP', orgs: ['acme', undefined] }]);
  });

  it('given an event with fields ingest does not know and numbers spelled its own way, when accepted, then its JSON reaches the sink exactly as sent', async () => {
    const event = `{ "portalId":77,"subscriptionType":"conversation.newMessage","objectId":6065362089,"messageId":"m-1","occurredAt":${Date.now()},"eventId":1.0e3,"futureField":{"nested":[1,2]} }`;
    const response = await postBody('/webhooks/hubspot', `[${event}, ${JSON.stringify(events[1])}]`);
    assert.equal(response.status, 200);
    assert.deepEqual(
      ingest.deliveries[0]?.events.map(({ event: accepted }) => accepted.json.toString('utf8')),
      [event.trim(), JSON.stringify(events[1])],
    );
  });

  it('given a body with non-ASCII text, a byte order mark and JSON whitespace between events, when accepted, then each event reaches the sink as its exact UTF-8 bytes', async () => {
    const occurredAt = Date.now();
    const first = `{"portalId":77,"subscriptionType":"conversation.newMessage","objectId":1,"messageId":"m-é😀","occurredAt":${occurredAt},"note":"\\u00e9 ü"}`;
    const second = `{"portalId":77,"subscriptionType":"conversation.newMessage","objectId":2,"messageId":"m-2","occurredAt":${occurredAt}}`;
    for (const body of [`[\t${first} ,\r\n ${second}\n]`, `\uFEFF[${first},${second}]`]) {
      ingest.deliveries.length = 0;
      const response = await postBody('/webhooks/hubspot', body);
      assert.equal(response.status, 200, `answered ${response.status} for ${JSON.stringify(body)}`);
      assert.deepEqual(
        ingest.deliveries[0]?.events.map(({ event: accepted }) => accepted.json),
        [Buffer.from(first), Buffer.from(second)],
      );
    }
  });

  it('regression: given events whose type is an Object property name (toString, constructor, __proto__), when posted, then 200 like any unknown type (it was a 500)', async () => {
    const odd = ['toString', 'constructor', '__proto__', 'hasOwnProperty'].map((subscriptionType) => ({
      portalId: 77,
      subscriptionType,
      objectId: 1,
      occurredAt: Date.now(),
    }));
    const response = await post('/webhooks/hubspot', odd);
    assert.equal(response.status, 200);
    assert.deepEqual(
      ingest.deliveries[0]?.events.map(({ event }) => event.subscriptionType),
      ['toString', 'constructor', '__proto__', 'hasOwnProperty'],
    );
  });

  it("given the private-app URL of an org, when signed with that org's private secret, then 200 and routed to the org", async () => {
    assert.equal((await post('/webhooks/hubspot/private/tok-123', events, PRIVATE_SECRET)).status, 200);
    assert.deepEqual(routedOrgs(), [{ route: 'PRIVATE_APP', orgs: ['acme', 'acme'] }]);
  });

  it('given the private-app URL signed with the OAuth secret, when posted, then 401', async () => {
    assert.equal((await post('/webhooks/hubspot/private/tok-123', events)).status, 401);
    assert.deepEqual(ingest.deliveries, []);
  });

  it('given the private-app URL of an org whose record no key opens, when posted, then 503 (HubSpot retries) and nothing is written', async () => {
    const before = ingest.deliveries.length;
    const response = await post('/webhooks/hubspot/private/tok-unreadable', events, PRIVATE_SECRET);
    assert.equal(response.status, 503);
    assert.equal(((await response.json()) as { error: string }).error, 'org_unreadable');
    assert.equal(ingest.deliveries.length, before);
  });

  it('given an unknown private webhook token, when posted, then 404 with a JSON error', async () => {
    const response = await post('/webhooks/hubspot/private/nope', events, PRIVATE_SECRET);
    assert.equal(response.status, 404);
    assert.equal(((await response.json()) as ErrorBody).error, 'unknown_webhook_token');
  });

  describe('regression: fields of the wrong type or out of range were accepted and broke Avro or date formatting downstream', () => {
    const expectRefused = async (batch: readonly object[], detail: RegExp) => {
      const response = await post('/webhooks/hubspot', batch);
      assert.equal(response.status, 400);
      const body = (await response.json()) as ErrorBody;
      assert.equal(body.error, 'malformed_body');
      assert.match(body.detail, detail);
      assert.deepEqual(ingest.deliveries, [], 'nothing reached Kafka');
    };

    it('given occurredAt 1.5 in the 4th event, when posted, then 400 naming event 3 and occurredAt', () =>
      expectRefused(
        [...events, events[0]!, fixtures.webhookEvent({ portalId: 77, occurredAt: 1.5 })],
        /^event 3: occurredAt: /,
      ));

    it('given occurredAt 9e15 (no date outbound can format), when posted, then 400', () =>
      expectRefused([fixtures.webhookEvent({ occurredAt: 9e15 })], /^event 0: occurredAt: .*a day from now/));

    it('given occurredAt in seconds rather than milliseconds, when posted, then 400', () =>
      expectRefused([fixtures.webhookEvent({ occurredAt: 1_702_439_388 })], /^event 0: occurredAt: .*2000/));

    it('given portalId as a string, when posted, then 400 naming portalId', () =>
      expectRefused([{ ...fixtures.webhookEvent(), portalId: '77' }], /^event 0: portalId: /));

    it('given objectId as a numeric string, when posted, then 400 (HubSpot sends integers)', () =>
      expectRefused([{ ...fixtures.webhookEvent(), objectId: '6065362089' }], /^event 0: objectId: /));

    it('given messageId as a number, when posted, then 400 naming messageId', () =>
      expectRefused([{ ...fixtures.webhookEvent(), messageId: 5 }], /^event 0: messageId: must be a string/));

    it('given a conversation.newMessage without messageId (the processor would refuse it), when posted, then 400', () => {
      const { messageId: _dropped, ...withoutMessageId } = fixtures.webhookEvent();
      return expectRefused([withoutMessageId], /^event 0: messageId: required for conversation.newMessage/);
    });

    it('given a ticket.propertyChange whose propertyValue is an object, when posted, then 400', () =>
      expectRefused(
        [{ ...fixtures.ticketPropertyChangeEvent(), propertyValue: { a: 1 } }],
        /^event 0: propertyValue: must be a string or null/,
      ));

    it('given a float attemptNumber, when posted, then 400', () =>
      expectRefused([{ ...fixtures.webhookEvent(), attemptNumber: 0.5 }], /^event 0: attemptNumber: /));

    it('given 101 events (HubSpot sends at most 100), when posted, then 400', () =>
      expectRefused(
        Array.from({ length: 101 }, () => fixtures.webhookEvent()),
        /101 events: at most 100/,
      ));

    it('given 100 events and a ticket change to null, when posted, then 200', async () => {
      const batch = [
        ...Array.from({ length: 99 }, () => fixtures.webhookEvent()),
        { ...fixtures.ticketPropertyChangeEvent(), propertyValue: null },
      ];
      assert.equal((await post('/webhooks/hubspot', batch)).status, 200);
      assert.equal(ingest.deliveries[0]?.events.length, 100);
    });
  });

  it('regression: given a signed event with a field nested 100,000 deep, when posted, then 400 (it was a 500)', async () => {
    const deep = '['.repeat(100_000) + ']'.repeat(100_000);
    const event = JSON.stringify(fixtures.webhookEvent({ portalId: 77 })).replace(/}$/, `,"deep":${deep}}`);
    const response = await postBody('/webhooks/hubspot', `[${event}]`);
    assert.equal(response.status, 400);
    assert.deepEqual(await response.json(), {
      error: 'malformed_body',
      detail: 'JSON nested deeper than 64 levels',
    });
  });

  it('regression: given a method the route does not take, then 405 with a JSON error and the Allow header (the body was empty)', async () => {
    const response = await fetch(`${ingest.base}/webhooks/hubspot`, { method: 'DELETE' });
    assert.equal(response.status, 405);
    assert.equal(response.headers.get('allow'), 'POST');
    assert.equal(((await response.json()) as ErrorBody).error, 'method_not_allowed');
  });

  it('regression: given a method ingest does not implement, then 405 with Allow and a JSON error (it was an empty 501: no 5xx but 503)', async () => {
    const response = await new Promise<{ status: number; body: string; allow: unknown }>(
      (resolve, reject) => {
        const request = httpRequest(`${ingest.base}/healthz`, { method: 'PROPFIND' }, (answer) => {
          let body = '';
          answer.on('data', (chunk: Buffer) => (body += chunk.toString()));
          answer.on('end', () =>
            resolve({ status: answer.statusCode ?? 0, body, allow: answer.headers.allow }),
          );
        });
        request.on('error', reject);
        request.end();
      },
    );
    assert.equal(response.status, 405);
    assert.equal(response.allow, 'HEAD, GET');
    assert.equal((JSON.parse(response.body) as ErrorBody).error, 'method_not_allowed');
  });

  it('given a request line that is not HTTP, then 400 with a JSON error (Node answers it before koa)', async () => {
    const answer = await rawExchange(ingest.port, 'HELLO / WORLD\r\n\r\n');
    assert.match(answer, /^HTTP\/1.1 400 /);
    assert.deepEqual(JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4)), {
      error: 'bad_request',
      detail: 'the request is not valid HTTP/1.1 (HPE_INVALID_METHOD)',
    });
  });

  it('regression: given a client that sends the headers and then trickles the body, then 408 JSON within the body timeout (it hung)', async () => {
    const trickled = { beforeAnswer: 0 };
    const answer = await rawExchange(
      ingest.port,
      'POST /webhooks/hubspot HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n[',
      { trickleEveryMs: 50, trickled },
    );
    assert.match(answer, /^HTTP\/1.1 408 /);
    assert.equal(
      (JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4)) as ErrorBody).error,
      'body_timeout',
    );
    // Order, not a stopwatch: the 300 ms timeout comes due before the 40th 50-ms tick of the
    // trickle (timers fire in order however loaded the machine), and the body needs 999 bytes.
    // A timeout that each byte restarted would never fire at all.
    assert.ok(trickled.beforeAnswer < 40, `${trickled.beforeAnswer} body bytes trickled before the answer`);
  });

  it('given a body declared over 1 MiB, when posted, then 413 JSON at once, before the body is sent', async () => {
    const answer = await rawExchange(
      ingest.port,
      'POST /webhooks/hubspot HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1048577\r\n\r\n',
    );
    assert.match(answer, /^HTTP\/1.1 413 /);
    assert.deepEqual(JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4)), {
      error: 'payload_too_large',
      detail: 'body over 1048576 bytes',
    });
    assert.deepEqual(ingest.deliveries, []);
  });

  it('given the producer disconnected, when /readyz is asked, then 503; /healthz stays 200', async () => {
    ingest.control.ready = false;
    assert.equal((await fetch(`${ingest.base}/readyz`)).status, 503);
    assert.equal((await fetch(`${ingest.base}/healthz`)).status, 200);
  });

  it('given the admin API and the console, when asked of ingest, then 404 (they are the console service)', async () => {
    for (const path of ['/admin/orgs/acme', '/console', '/console/sign-in', '/console/orgs']) {
      const response = await fetch(`${ingest.base}${path}`);
      assert.equal(response.status, 404, path);
      assert.equal(((await response.json()) as ErrorBody).error, 'not_found', path);
    }
    const put = await fetch(`${ingest.base}/admin/orgs/acme`, { method: 'PUT', body: '{}' });
    assert.equal(put.status, 404);
  });

  it('given an unknown route, then 404 with a JSON error', async () => {
    const response = await fetch(`${ingest.base}/nope`);
    assert.equal(response.status, 404);
    assert.equal(((await response.json()) as ErrorBody).error, 'not_found');
  });

  it('given the metrics endpoint, then the rejections are counted by reason', async () => {
    await post('/webhooks/hubspot', events, 'wrong');
    const metrics = await (await fetch(`${ingest.base}/metrics`)).text();
    assert.match(metrics, /ingest_webhook_rejections_total\{reason="signature_mismatch"[^}]*\} [1-9]/);
  });
});

/**
 * Regression: koa trusted X-Forwarded-Host/Proto always, so any client chose the URL the v3
 * signature covers and the OAuth redirect_uri. Now only with TRUST_PROXY=true.
 */
describe('forwarded headers (TRUST_PROXY)', () => {
  const forwarded = { 'x-forwarded-host': 'evil.example', 'x-forwarded-proto': 'https' };
  const start = (trustProxy: boolean) =>
    startIngestApp({
      env: { TRUST_PROXY: String(trustProxy), ADMIN_TOKEN: ADMIN, HUBSPOT_CLIENT_ID: 'client-id' },
      oauth: refusingOAuth(),
    });
  /** Signed for the URL the forwarded headers name, as a proxy's client would. */
  const postForwarded = (ingest: TestIngestApp) => {
    const body = JSON.stringify([fixtures.webhookEvent({ portalId: 77 })]);
    return fetch(`${ingest.base}/webhooks/hubspot`, {
      method: 'POST',
      body,
      headers: { ...forwarded, ...sdkSignedHeaders('https://evil.example/webhooks/hubspot', body) },
    });
  };
  const redirectUriOf = async (ingest: TestIngestApp) => {
    const response = await fetch(`${ingest.base}/oauth/hubspot/install?orgId=acme`, {
      headers: { ...forwarded, authorization: `Bearer ${ADMIN}` },
      redirect: 'manual',
    });
    assert.equal(response.status, 302);
    return new URL(response.headers.get('location') ?? '').searchParams.get('redirect_uri');
  };

  it('given TRUST_PROXY unset, when X-Forwarded-Host names another host, then the signature is checked against the socket URL (401) and redirect_uri ignores it', async () => {
    const ingest = await start(false);
    try {
      assert.equal((await postForwarded(ingest)).status, 401);
      assert.equal(await redirectUriOf(ingest), `${ingest.base}/oauth/hubspot/callback`);
    } finally {
      await ingest.close();
    }
  });

  it('given TRUST_PROXY=true, when the proxy sets X-Forwarded-Host/Proto, then they make the signed URL and redirect_uri', async () => {
    const ingest = await start(true);
    try {
      assert.equal((await postForwarded(ingest)).status, 200);
      assert.equal(await redirectUriOf(ingest), 'https://evil.example/oauth/hubspot/callback');
    } finally {
      await ingest.close();
    }
  });
});

/** Writes `head`, then (optionally) one byte every `trickleEveryMs`; resolves with what came back. */
/** With `trickleEveryMs`: one more body byte at each tick; `trickled` counts the bytes sent before the answer began. */
const rawExchange = (
  port: number,
  head: string,
  options: { trickleEveryMs?: number; trickled?: { beforeAnswer: number } } = {},
) =>
  new Promise<string>((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let answer = '';
    let trickle: NodeJS.Timeout | undefined;
    socket.on('connect', () => {
      socket.write(head);
      if (options.trickleEveryMs)
        trickle = setInterval(() => {
          if (!socket.writable || answer) return;
          socket.write(' ');
          if (options.trickled) options.trickled.beforeAnswer += 1;
        }, options.trickleEveryMs);
    });
    socket.on('data', (chunk) => (answer += chunk.toString()));
    socket.on('error', (error) => (answer ? undefined : reject(error)));
    socket.on('close', () => {
      clearInterval(trickle);
      resolve(answer);
    });
    // A test that hangs here is the bug: give mocha something to report instead.
    setTimeout(() => socket.destroy(), 5000).unref();
  });
