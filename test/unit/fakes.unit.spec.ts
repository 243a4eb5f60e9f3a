// The fakes are what every integration and end-to-end test trusts about OpenCX and HubSpot, so
// their own behaviour (contract checks, idempotency, rate limits, faults) is tested here.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { startFakeHubSpot } from '../fakes/hubspot.ts';
import type { FakeHubSpot } from '../fakes/hubspot.ts';
import { message, note, thread, truncatedEmail, webhookEvent } from '../fakes/hubspot-fixtures.ts';
import { startFakeOpenCx } from '../fakes/opencx.ts';
import type { FakeOpenCx } from '../fakes/opencx.ts';

const API_KEY = 'opencx-key-org-1';
const OTHER_API_KEY = 'opencx-key-org-2';
const PORTAL_ID = 23428445;
const HUBSPOT_TOKEN = 'hubspot-token-portal-1';

interface CallResult {
  readonly status: number;
  readonly headers: Headers;
  readonly body: unknown;
}

async function call(
  baseUrl: string,
  method: string,
  path: string,
  options: { body?: unknown; headers?: Record<string, string>; rawBody?: string } = {},
): Promise<CallResult> {
  const hasBody = options.body !== undefined || options.rawBody !== undefined;
  const response = await fetch(`${baseUrl}${path}`, {
    method,
    headers: { ...(hasBody ? { 'content-type': 'application/json' } : {}), ...options.headers },
    ...(hasBody ? { body: options.rawBody ?? JSON.stringify(options.body) } : {}),
  });
  const text = await response.text();
  return {
    status: response.status,
    headers: response.headers,
    body: text === '' ? undefined : (JSON.parse(text) as unknown),
  };
}

function openCxHeaders(idempotencyKey?: string, apiKey = API_KEY): Record<string, string> {
  return {
    authorization: `Bearer ${apiKey}`,
    ...(idempotencyKey === undefined ? {} : { 'idempotency-key': idempotencyKey }),
  };
}

function sessionBody(threadId = '6065362089') {
  return {
    channel: { type: 'web' },
    custom_data: { hubspot_thread_id: threadId, hubspot_portal_id: String(PORTAL_ID) },
  };
}

function idOf(result: CallResult): string {
  const body = result.body as { id?: unknown };
  assert.equal(typeof body.id, 'string', `no id in ${JSON.stringify(result.body)}`);
  return body.id as string;
}

describe('fake OpenCX', () => {
  let openCx: FakeOpenCx;

  beforeEach(async () => {
    openCx = await startFakeOpenCx({ apiKeys: [API_KEY, OTHER_API_KEY] });
  });
  afterEach(async () => {
    await openCx.close();
  });

  async function createSession(idempotencyKey: string = randomUUID(), apiKey = API_KEY): Promise<string> {
    const created = await call(openCx.url, 'POST', '/chat/sessions', {
      body: sessionBody(),
      headers: openCxHeaders(idempotencyKey, apiKey),
    });
    assert.equal(created.status, 201);
    return idOf(created);
  }

  it('given a valid session creation, when it is sent, then it succeeds with no violation and one effect', async () => {
    const sessionId = await createSession('evt-1:session');

    assert.deepEqual(openCx.violations, []);
    assert.equal(openCx.effects.length, 1);
    assert.equal(openCx.effects[0]?.kind, 'session-created');
    assert.equal(openCx.effects[0]?.idempotencyKey, 'evt-1:session');
    assert.equal(openCx.sessions.get(sessionId)?.customData['hubspot_thread_id'], '6065362089');
  });

  it('given a body with an unknown field, when it is sent, then it gets 400 and a violation and no effect', async () => {
    const result = await call(openCx.url, 'POST', '/chat/sessions', {
      body: { ...sessionBody(), channel: { type: 'carrier-pigeon' }, extra: true },
      headers: openCxHeaders('k-bad-body'),
    });

    assert.equal(result.status, 400);
    assert.equal(openCx.violations.length, 1);
    assert.match(
      JSON.stringify(openCx.violations[0]?.errors),
      /additionalProperties|must be equal to one of/,
    );
    assert.deepEqual(openCx.effects, []);
  });

  it('given custom_data without the HubSpot thread id, when a session is created, then it is a violation', async () => {
    const result = await call(openCx.url, 'POST', '/chat/sessions', {
      body: { channel: { type: 'email' }, custom_data: { hubspot_portal_id: '1' } },
      headers: openCxHeaders('k-no-thread'),
    });

    assert.equal(result.status, 400);
    assert.match(JSON.stringify(openCx.violations[0]?.errors), /hubspot_thread_id/);
  });

  it('given a state-changing call without Idempotency-Key, when it is sent, then it gets 400 and a violation', async () => {
    const result = await call(openCx.url, 'POST', '/chat/sessions', {
      body: sessionBody(),
      headers: openCxHeaders(),
    });

    assert.equal(result.status, 400);
    assert.match(JSON.stringify(openCx.violations[0]?.errors), /idempotency-key/);
    assert.deepEqual(openCx.effects, []);
  });

  it('given a bad created_at or a non-JSON body, when they are sent, then both are violations', async () => {
    const sessionId = await createSession();
    const path = `/chat/sessions/${sessionId}/agent-messages`;

    const badDate = await call(openCx.url, 'POST', path, {
      body: { text: 'hi', actor_id: 'A-1', internal: false, created_at: 'yesterday' },
      headers: openCxHeaders('k-date'),
    });
    const notJson = await call(openCx.url, 'POST', path, {
      rawBody: '{"text":',
      headers: openCxHeaders('k-json'),
    });

    assert.equal(badDate.status, 400);
    assert.equal(notJson.status, 400);
    assert.equal(openCx.violations.length, 2);
  });

  it('given a call without a bearer key, when it is sent, then it gets 401 and counts as a violation', async () => {
    const result = await call(openCx.url, 'POST', '/chat/sessions', {
      body: sessionBody(),
      headers: { 'idempotency-key': 'k-no-auth' },
    });

    assert.equal(result.status, 401);
    assert.equal(openCx.violations.length, 1);
  });

  it('given an unknown API key, when a valid call is sent, then it gets 401 without a violation', async () => {
    const result = await call(openCx.url, 'POST', '/chat/sessions', {
      body: sessionBody(),
      headers: openCxHeaders('k-unknown', 'not-a-key'),
    });

    assert.equal(result.status, 401);
    assert.deepEqual(openCx.violations, []);
  });

  it('given a session of another API key, when it is read or written, then it is 404', async () => {
    const sessionId = await createSession();

    const read = await call(openCx.url, 'GET', `/chat/sessions/${sessionId}`, {
      headers: openCxHeaders(undefined, OTHER_API_KEY),
    });
    const send = await call(openCx.url, 'POST', `/chat/sessions/${sessionId}/send`, {
      body: { sender: 'contact', message: { type: 'text', text: 'hello' } },
      headers: openCxHeaders('k-other', OTHER_API_KEY),
    });

    assert.equal(read.status, 404);
    assert.equal(send.status, 404);
    assert.equal(openCx.effects.length, 1);
  });

  it('given an Idempotency-Key already used with the same request, when it is repeated, then the answer is replayed without a second effect', async () => {
    const first = await call(openCx.url, 'POST', '/chat/sessions', {
      body: sessionBody(),
      headers: openCxHeaders('evt-7'),
    });
    // Same body, keys in another order: still the same request.
    const reordered = { custom_data: sessionBody().custom_data, channel: { type: 'web' } };
    const repeat = await call(openCx.url, 'POST', '/chat/sessions', {
      body: reordered,
      headers: openCxHeaders('evt-7'),
    });

    assert.equal(repeat.status, first.status);
    assert.deepEqual(repeat.body, first.body);
    assert.equal(repeat.headers.get('idempotent-replayed'), 'true');
    assert.equal(openCx.effects.length, 1);
    assert.equal(openCx.sessions.size, 1);
  });

  it('given an Idempotency-Key already used, when it comes with a different body, then it gets 409 and no effect', async () => {
    await call(openCx.url, 'POST', '/chat/sessions', {
      body: sessionBody('1'),
      headers: openCxHeaders('evt-8'),
    });
    const conflicting = await call(openCx.url, 'POST', '/chat/sessions', {
      body: sessionBody('2'),
      headers: openCxHeaders('evt-8'),
    });

    assert.equal(conflicting.status, 409);
    assert.equal(openCx.effects.length, 1);
  });

  it('given the same Idempotency-Key under another API key, when it is used, then it is a separate request', async () => {
    await createSession('evt-9', API_KEY);
    await createSession('evt-9', OTHER_API_KEY);

    assert.equal(openCx.effects.length, 2);
  });

  it('given two identical requests in flight, when the first is held, then the second waits and replays its answer', async () => {
    const held = openCx.hold(/^\/chat\/sessions$/);
    const first = call(openCx.url, 'POST', '/chat/sessions', {
      body: sessionBody(),
      headers: openCxHeaders('evt-10'),
    });
    await held.arrived;
    const second = call(openCx.url, 'POST', '/chat/sessions', {
      body: sessionBody(),
      headers: openCxHeaders('evt-10'),
    });
    held.release();

    const [firstResult, secondResult] = await Promise.all([first, second]);
    assert.equal(idOf(firstResult), idOf(secondResult));
    assert.equal(openCx.effects.length, 1);
  });

  it('given failNext twice with 503, when a request is retried with the same key, then it fails twice without effect and then runs once', async () => {
    openCx.failNext({ method: 'POST', pathPattern: /^\/chat\/sessions$/, status: 503, times: 2 });

    const statuses: number[] = [];
    for (let attempt = 0; attempt < 3; attempt += 1) {
      const result = await call(openCx.url, 'POST', '/chat/sessions', {
        body: sessionBody(),
        headers: openCxHeaders('evt-11'),
      });
      statuses.push(result.status);
      if (attempt < 2) assert.equal(openCx.effects.length, 0);
    }

    assert.deepEqual(statuses, [503, 503, 201]);
    assert.equal(openCx.effects.length, 1);
  });

  it('given failNext 429 with retryAfterSeconds, when the call is made, then Retry-After is set', async () => {
    openCx.failNext({ status: 429, times: 1, retryAfterSeconds: 7 });

    const result = await call(openCx.url, 'POST', '/chat/sessions', {
      body: sessionBody(),
      headers: openCxHeaders('evt-12'),
    });

    assert.equal(result.status, 429);
    assert.equal(result.headers.get('retry-after'), '7');
  });

  it('given a fault after the effect, when the caller retries with the same key, then it gets the stored answer', async () => {
    openCx.failNext({ status: 502, afterEffect: true });

    const lost = await call(openCx.url, 'POST', '/chat/sessions', {
      body: sessionBody(),
      headers: openCxHeaders('evt-13'),
    });
    const retried = await call(openCx.url, 'POST', '/chat/sessions', {
      body: sessionBody(),
      headers: openCxHeaders('evt-13'),
    });

    assert.equal(lost.status, 502);
    assert.equal(retried.status, 201);
    assert.equal(openCx.effects.length, 1);
  });

  it('given a customer message, when it is sent, then the AI answers, or answers null when the responder declines', async () => {
    const sessionId = await createSession();
    const send = (key: string, text: string) =>
      call(openCx.url, 'POST', `/chat/sessions/${sessionId}/send`, {
        body: { sender: 'contact', message: { type: 'text', text } },
        headers: openCxHeaders(key),
      });

    const answered = await send('m-1', 'where is my order?');
    openCx.setAiResponder(() => null);
    const silent = await send('m-2', 'hello?');

    assert.deepEqual(answered.body, { ai_response: { text: 'AI: where is my order?' } });
    assert.deepEqual(silent.body, { ai_response: null });
    assert.deepEqual(
      openCx.sessions.get(sessionId)?.messages.map((sent) => sent.text),
      ['where is my order?', 'hello?'],
    );
  });

  it('given every integration call, when they are made, then the effects are recorded in order and the session shows the handoff', async () => {
    const sessionId = await createSession();
    const base = `/chat/sessions/${sessionId}`;
    const now = new Date().toISOString();

    await call(openCx.url, 'POST', `${base}/agent-messages`, {
      body: { text: 'on it', actor_id: 'A-2620022', internal: false, created_at: now },
      headers: openCxHeaders('e-1'),
    });
    await call(openCx.url, 'POST', `${base}/handoff`, {
      body: { reason: 'assigned_away', assignee_actor_id: 'A-2620022' },
      headers: openCxHeaders('e-2'),
    });
    await call(openCx.url, 'PATCH', `${base}/custom-data`, {
      body: { hs_pipeline_stage: '2' },
      headers: openCxHeaders('e-3'),
    });
    await call(openCx.url, 'POST', `${base}/agent-comments`, {
      body: { text: 'refund approved', hubspot_note_id: '601', author_owner_id: null, created_at: now },
      headers: openCxHeaders('e-4'),
    });
    const read = await call(openCx.url, 'GET', base, { headers: openCxHeaders() });

    assert.deepEqual(openCx.violations, []);
    assert.deepEqual(
      openCx.effects.map((effect) => effect.kind),
      ['session-created', 'agent-message', 'handoff', 'custom-data', 'agent-comment'],
    );
    const session = read.body as {
      assignee_id?: string;
      handoff?: unknown;
      custom_data?: Record<string, string>;
    };
    assert.equal(session.assignee_id, 'A-2620022');
    assert.ok(session.handoff);
    assert.equal(session.custom_data?.['hs_pipeline_stage'], '2');
  });

  it('given an empty custom-data patch, when it is sent, then it is a violation', async () => {
    const sessionId = await createSession();

    const result = await call(openCx.url, 'PATCH', `/chat/sessions/${sessionId}/custom-data`, {
      body: {},
      headers: openCxHeaders('e-empty'),
    });

    assert.equal(result.status, 400);
    assert.equal(openCx.violations.length, 1);
  });

  it('given reset, when it runs, then sessions, effects and stored idempotent answers are gone', async () => {
    await createSession('evt-reset');
    openCx.reset();
    await createSession('evt-reset');

    assert.equal(openCx.effects.length, 1);
    assert.equal(openCx.sessions.size, 1);
  });
});

describe('fake HubSpot', () => {
  let hubSpot: FakeHubSpot;
  const auth = { authorization: `Bearer ${HUBSPOT_TOKEN}` };

  beforeEach(async () => {
    hubSpot = await startFakeHubSpot({ tokens: { [HUBSPOT_TOKEN]: PORTAL_ID } });
  });
  afterEach(async () => {
    await hubSpot.close();
  });

  it('given a stored message, when it is re-fetched, then it comes back with the portal recorded', async () => {
    const stored = message({ kind: 'customer-email' });
    hubSpot.addMessage(stored);

    const result = await call(
      hubSpot.url,
      'GET',
      `/conversations/v3/conversations/threads/${stored.conversationsThreadId}/messages/${stored.id}`,
      { headers: auth },
    );

    assert.equal(result.status, 200);
    assert.deepEqual(result.body, stored);
    assert.equal(hubSpot.requests[0]?.portalId, PORTAL_ID);
  });

  it('given a truncated email with its original content, when the original content is fetched, then the whole text comes back', async () => {
    const long = `Dear support, ${'the parcel never arrived. '.repeat(400)}Regards, Jane`;
    const { message: truncated, originalContent } = truncatedEmail(long);
    hubSpot.addMessage(truncated, { portalId: PORTAL_ID });
    hubSpot.setOriginalContent(truncated.conversationsThreadId, truncated.id, originalContent);
    const path = `/conversations/v3/conversations/threads/${truncated.conversationsThreadId}/messages/${truncated.id}`;

    const shortened = await call(hubSpot.url, 'GET', path, { headers: auth });
    const whole = await call(hubSpot.url, 'GET', `${path}/original-content`, { headers: auth });

    assert.equal((shortened.body as { truncationStatus: string }).truncationStatus, 'TRUNCATED');
    assert.ok((shortened.body as { text: string }).text.length < long.length);
    assert.equal(whole.status, 200);
    assert.deepEqual(whole.body, { text: long, richText: `<div>${long}</div>` });
  });

  it('given a message without registered original content, when its original content is fetched, then it is its own text; an unknown one is 404', async () => {
    const stored = message({ kind: 'customer-chat', text: 'short' });
    hubSpot.addMessage(stored);
    const path = `/conversations/v3/conversations/threads/${stored.conversationsThreadId}/messages`;

    const own = await call(hubSpot.url, 'GET', `${path}/${stored.id}/original-content`, { headers: auth });
    const unknown = await call(hubSpot.url, 'GET', `${path}/nope/original-content`, { headers: auth });

    assert.deepEqual(own.body, { text: stored.text, richText: stored.richText });
    assert.equal(unknown.status, 404);
  });

  it('given no such message, when it is fetched, then it is 404 OBJECT_NOT_FOUND', async () => {
    const result = await call(hubSpot.url, 'GET', '/conversations/v3/conversations/threads/1/messages/abc', {
      headers: auth,
    });

    assert.equal(result.status, 404);
    assert.equal((result.body as { category?: string }).category, 'OBJECT_NOT_FOUND');
  });

  it('given an unknown token, when any call is made, then it is 401 EXPIRED_AUTHENTICATION', async () => {
    const result = await call(hubSpot.url, 'GET', '/conversations/v3/conversations/threads/1', {
      headers: { authorization: 'Bearer nope' },
    });

    assert.equal(result.status, 401);
    assert.deepEqual(
      {
        status: (result.body as { status?: string }).status,
        category: (result.body as { category?: string }).category,
      },
      { status: 'error', category: 'EXPIRED_AUTHENTICATION' },
    );
  });

  it('given a rate limit of 2 per interval, when a third request comes, then it gets HubSpot 429 body and headers', async () => {
    hubSpot.setRateLimit(PORTAL_ID, { max: 2, intervalMs: 60_000 });
    const stored = thread();
    hubSpot.setThread(stored);
    const get = () =>
      call(hubSpot.url, 'GET', `/conversations/v3/conversations/threads/${stored.id}`, { headers: auth });

    const first = await get();
    await get();
    const third = await get();

    assert.equal(first.status, 200);
    assert.equal(first.headers.get('x-hubspot-ratelimit-max'), '2');
    assert.equal(first.headers.get('x-hubspot-ratelimit-remaining'), '1');
    assert.equal(first.headers.get('x-hubspot-ratelimit-interval-milliseconds'), '60000');
    assert.equal(third.status, 429);
    assert.equal(third.headers.get('x-hubspot-ratelimit-remaining'), '0');
    assert.deepEqual(
      (({ status, errorType, policyName }) => ({ status, errorType, policyName }))(
        third.body as { status?: string; errorType?: string; policyName?: string },
      ),
      { status: 'error', errorType: 'RATE_LIMIT', policyName: 'TEN_SECONDLY_ROLLING' },
    );
  });

  it('given a short interval, when it has passed, then requests are allowed again', async () => {
    hubSpot.setRateLimit(PORTAL_ID, { max: 1, intervalMs: 50 });
    const path = '/conversations/v3/conversations/threads/1';

    await call(hubSpot.url, 'GET', path, { headers: auth });
    const limited = await call(hubSpot.url, 'GET', path, { headers: auth });
    await new Promise((resolve) => setTimeout(resolve, 80));
    const later = await call(hubSpot.url, 'GET', path, { headers: auth });

    assert.equal(limited.status, 429);
    assert.equal(later.status, 404);
  });

  it('given failNext with times 2, when three calls are made, then two fail and the third succeeds', async () => {
    const stored = thread();
    hubSpot.setThread(stored);
    hubSpot.failNext({ pathPattern: /\/threads\//, status: 502, times: 2 });

    const statuses: number[] = [];
    for (let attempt = 0; attempt < 3; attempt += 1) {
      statuses.push(
        (
          await call(hubSpot.url, 'GET', `/conversations/v3/conversations/threads/${stored.id}`, {
            headers: auth,
          })
        ).status,
      );
    }

    assert.deepEqual(statuses, [502, 502, 200]);
  });

  it('given a thread with a ticket, when it is read, then the association appears only when asked for', async () => {
    const stored = thread({ threadAssociations: { associatedTicketId: '1500001' } });
    hubSpot.setThread(stored);
    const path = `/conversations/v3/conversations/threads/${stored.id}`;

    const plain = await call(hubSpot.url, 'GET', path, { headers: auth });
    const withTicket = await call(hubSpot.url, 'GET', `${path}?association=TICKET`, { headers: auth });

    assert.equal((plain.body as { threadAssociations?: unknown }).threadAssociations, undefined);
    assert.deepEqual((withTicket.body as { threadAssociations?: unknown }).threadAssociations, {
      associatedTicketId: '1500001',
    });
  });

  it('given a reply from a non-agent sender or without attachments, when it is posted, then it is 400; a valid one is 201', async () => {
    const incoming = message({ kind: 'customer-chat' });
    hubSpot.addMessage(incoming);
    const path = `/conversations/v3/conversations/threads/${incoming.conversationsThreadId}/messages`;
    const reply = {
      type: 'MESSAGE',
      text: 'AI: hello <!-- OpenCX-AI-Response -->',
      senderActorId: 'A-111',
      channelId: incoming.channelId,
      channelAccountId: incoming.channelAccountId,
      recipients: [{ actorId: 'V-48710712', deliveryIdentifiers: [] }],
      attachments: [],
    };

    const fromVisitor = await call(hubSpot.url, 'POST', path, {
      body: { ...reply, senderActorId: 'V-1' },
      headers: auth,
    });
    const noAttachments = await call(hubSpot.url, 'POST', path, {
      body: { ...reply, attachments: undefined },
      headers: auth,
    });
    const valid = await call(hubSpot.url, 'POST', path, { body: reply, headers: auth });
    const comment = await call(hubSpot.url, 'POST', path, {
      body: { type: 'COMMENT', text: 'draft', attachments: [] },
      headers: auth,
    });

    assert.equal(fromVisitor.status, 400);
    assert.equal(noAttachments.status, 400);
    assert.equal(valid.status, 201);
    assert.equal(comment.status, 201);
    assert.equal(hubSpot.posted.length, 2);
    assert.equal(hubSpot.posted[0]?.message.direction, 'OUTGOING');
  });

  it('given a note on a ticket, when it is read, then only asked-for properties and associations come back', async () => {
    const stored = note({ ticketId: '1500002' });
    hubSpot.addNote(stored);

    const bare = await call(hubSpot.url, 'GET', `/crm/v3/objects/notes/${stored.id}`, { headers: auth });
    const full = await call(
      hubSpot.url,
      'GET',
      `/crm/v3/objects/notes/${stored.id}?properties=hs_note_body,hs_timestamp,hubspot_owner_id&associations=tickets`,
      { headers: auth },
    );

    type NoteBody = {
      properties: Record<string, unknown>;
      associations?: { tickets: { results: Array<{ id: string }> } };
    };
    assert.equal((bare.body as NoteBody).properties['hs_note_body'], undefined);
    assert.equal((bare.body as NoteBody).associations, undefined);
    assert.equal((full.body as NoteBody).properties['hs_note_body'], stored.properties.hs_note_body);
    assert.equal((full.body as NoteBody).associations?.tickets.results[0]?.id, '1500002');
  });

  it('given an object of another portal, when it is read with this portal token, then it is 404', async () => {
    const stored = thread();
    hubSpot.setThread(stored, { portalId: 999 });

    const result = await call(hubSpot.url, 'GET', `/conversations/v3/conversations/threads/${stored.id}`, {
      headers: auth,
    });

    assert.equal(result.status, 404);
  });

  it("given a thread's messages and a post on it, when its history is read, then only that thread's messages of this portal come, oldest first, in pages", async () => {
    const first = message({ kind: 'customer-chat', threadId: '7001', createdAt: '2026-01-01T00:00:01Z' });
    const second = message({ kind: 'customer-chat', threadId: '7001', createdAt: '2026-01-01T00:00:02Z' });
    hubSpot.addMessage(second, { portalId: PORTAL_ID });
    hubSpot.addMessage(first, { portalId: PORTAL_ID });
    hubSpot.addMessage(message({ kind: 'customer-chat', threadId: '7002' }), { portalId: PORTAL_ID });
    hubSpot.addMessage(message({ kind: 'customer-chat', threadId: '7003' }), { portalId: 999 });
    const posted = await call(hubSpot.url, 'POST', '/conversations/v3/conversations/threads/7001/messages', {
      headers: auth,
      body: { type: 'COMMENT', text: 'note', attachments: [] },
    });
    assert.equal(posted.status, 201);
    const history = await call(
      hubSpot.url,
      'GET',
      '/conversations/v3/conversations/threads/7001/messages?limit=2',
      {
        headers: auth,
      },
    );
    assert.equal(history.status, 200);
    const page = history.body as { results: { id: string }[]; paging?: { next?: { after: string } } };
    assert.deepEqual(
      page.results.map((entry) => entry.id),
      [first.id, second.id],
    );
    assert.equal(page.paging?.next?.after, '2');
    const rest = await call(
      hubSpot.url,
      'GET',
      '/conversations/v3/conversations/threads/7001/messages?limit=2&after=2',
      {
        headers: auth,
      },
    );
    assert.deepEqual(
      (rest.body as { results: { id: string }[] }).results.map((entry) => entry.id),
      [idOf(posted)],
    );
    const other = await call(hubSpot.url, 'POST', '/conversations/v3/conversations/threads/7003/messages', {
      headers: auth,
      body: { type: 'COMMENT', text: 'note', attachments: [] },
    });
    assert.equal(other.status, 404, "another portal's thread is not found");
  });

  it('given threads with messages, when listed by latest message time after a date, then only those threads of this portal come, oldest activity first, in pages, with their latest times', async () => {
    const at = (seconds: number) => new Date(Date.UTC(2026, 0, 1, 0, 0, seconds)).toISOString();
    const quiet = message({ kind: 'customer-chat', threadId: '7101', createdAt: at(1) });
    const busyFirst = message({ kind: 'customer-chat', threadId: '7102', createdAt: at(2) });
    const busyReply = message({ kind: 'agent-reply', threadId: '7102', createdAt: at(9) });
    const middle = message({ kind: 'customer-chat', threadId: '7103', createdAt: at(5) });
    for (const stored of [quiet, busyFirst, busyReply, middle])
      hubSpot.addMessage(stored, { portalId: PORTAL_ID });
    hubSpot.addMessage(message({ kind: 'customer-chat', threadId: '7104', createdAt: at(6) }), {
      portalId: 999,
    });
    hubSpot.setThread(thread({ id: '7103', inboxId: '555' }), { portalId: PORTAL_ID });
    const list = (query: string) =>
      call(hubSpot.url, 'GET', `/conversations/v3/conversations/threads?${query}`, { headers: auth });
    const since = encodeURIComponent(at(2));

    const first = await list(`sort=latestMessageTimestamp&latestMessageTimestampAfter=${since}&limit=1`);
    const second = await list(
      `sort=latestMessageTimestamp&latestMessageTimestampAfter=${since}&limit=1&after=1`,
    );
    const missing = await list('sort=latestMessageTimestamp');

    type Page = {
      results: {
        id: string;
        inboxId: string;
        latestMessageTimestamp?: string;
        latestMessageReceivedTimestamp?: string;
        latestMessageSentTimestamp?: string;
      }[];
      paging?: { next?: { after: string } };
    };
    const firstPage = first.body as Page;
    const secondPage = second.body as Page;
    assert.equal(first.status, 200);
    assert.deepEqual(
      firstPage.results.map((entry) => [entry.id, entry.inboxId, entry.latestMessageTimestamp]),
      [['7103', '555', at(5)]],
    );
    assert.equal(firstPage.paging?.next?.after, '1');
    assert.deepEqual(
      secondPage.results.map((entry) => [
        entry.id,
        entry.latestMessageTimestamp,
        entry.latestMessageReceivedTimestamp,
        entry.latestMessageSentTimestamp,
      ]),
      [['7102', at(9), at(2), at(9)]],
    );
    assert.equal(secondPage.paging, undefined, 'the last page has no next');
    assert.equal(missing.status, 400, 'latestMessageTimestampAfter is required with that sort');
    assert.equal((missing.body as { category?: string }).category, 'VALIDATION_ERROR');
  });

  it("given a thread's messages, when read with sort=-createdAt, then newest first; an unknown sort is 400", async () => {
    const older = message({ kind: 'customer-chat', threadId: '7201', createdAt: '2026-01-01T00:00:01Z' });
    const newer = message({ kind: 'agent-reply', threadId: '7201', createdAt: '2026-01-01T00:00:02Z' });
    hubSpot.addMessage(older, { portalId: PORTAL_ID });
    hubSpot.addMessage(newer, { portalId: PORTAL_ID });
    const path = '/conversations/v3/conversations/threads/7201/messages';

    const newestFirst = await call(hubSpot.url, 'GET', `${path}?sort=-createdAt`, { headers: auth });
    const bad = await call(hubSpot.url, 'GET', `${path}?sort=id`, { headers: auth });

    assert.deepEqual(
      (newestFirst.body as { results: { id: string }[] }).results.map((entry) => entry.id),
      [newer.id, older.id],
    );
    assert.equal(bad.status, 400);
  });

  it('given an OAuth install, when the code is exchanged and refreshed, then the tokens work and name the portal', async () => {
    hubSpot.addOAuthPortal({ portalId: 4242, code: 'code-1' });
    const form = (fields: Record<string, string>) =>
      fetch(`${hubSpot.url}/oauth/v1/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams(fields).toString(),
      }).then(async (response) => ({
        status: response.status,
        body: (await response.json()) as Record<string, unknown>,
      }));

    const exchanged = await form({
      grant_type: 'authorization_code',
      code: 'code-1',
      client_id: 'c',
      client_secret: 's',
    });
    const reused = await form({ grant_type: 'authorization_code', code: 'code-1' });
    const refreshed = await form({
      grant_type: 'refresh_token',
      refresh_token: String(exchanged.body['refresh_token']),
    });
    const info = await call(
      hubSpot.url,
      'GET',
      `/oauth/v1/access-tokens/${String(refreshed.body['access_token'])}`,
    );

    assert.equal(exchanged.status, 200);
    assert.equal(exchanged.body['expires_in'], 1800);
    assert.equal(exchanged.body['token_type'], 'bearer');
    assert.equal(reused.status, 400);
    assert.equal(refreshed.status, 200);
    assert.equal((info.body as { hub_id?: number }).hub_id, 4242);
  });
});

describe('HubSpot fixtures', () => {
  it('given the builders, when called twice, then ids differ and the webhook event keeps HubSpot field names', () => {
    const first = webhookEvent();
    const second = webhookEvent({ portalId: 1 });

    assert.notEqual(first.eventId, second.eventId);
    assert.notEqual(first.messageId, second.messageId);
    assert.equal(second.portalId, 1);
    assert.deepEqual(Object.keys(first).sort(), [
      'appId',
      'attemptNumber',
      'changeFlag',
      'eventId',
      'messageId',
      'messageType',
      'objectId',
      'occurredAt',
      'portalId',
      'subscriptionId',
      'subscriptionType',
    ]);
  });

  it('given each message kind, when built, then sender prefix, direction and client match HubSpot', () => {
    const summary = (
      ['customer-chat', 'customer-email', 'agent-reply', 'comment', 'integration', 'welcome'] as const
    ).map((kind) => {
      const built = message({ kind });
      return [
        kind,
        built.type,
        built.senders[0]?.actorId?.slice(0, 2),
        built.direction ?? '-',
        built.channelId ?? '-',
        built.client.clientType,
      ];
    });

    assert.deepEqual(summary, [
      ['customer-chat', 'MESSAGE', 'V-', 'INCOMING', '1000', 'HUBSPOT'],
      ['customer-email', 'MESSAGE', 'E-', 'INCOMING', '1002', 'HUBSPOT'],
      ['agent-reply', 'MESSAGE', 'A-', 'OUTGOING', '1000', 'HUBSPOT'],
      ['comment', 'COMMENT', 'A-', '-', '-', 'HUBSPOT'],
      ['integration', 'MESSAGE', 'I-', 'OUTGOING', '1000', 'INTEGRATION'],
      ['welcome', 'WELCOME_MESSAGE', 'S-', '-', '1000', 'SYSTEM'],
    ]);
  });
});
