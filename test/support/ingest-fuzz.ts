/**
 * Fuzzed requests against ingest's HTTP surface, and the properties every answer must keep.
 * Shared by the unit property test (an in-process app with a fake sink) and bench/fuzz.bench.ts
 * (a real ingest on the real broker).
 */
import { Agent, request as httpRequest } from 'node:http';
import fc from 'fast-check';
import { parseWebhookEvent } from '../../services/processor/src/rules/webhook-event.ts';
import { signV3 } from '../../services/ingest/src/signature.ts';

export type Signing = 'valid' | 'wrong-secret' | 'stale' | 'none' | 'garbage';

export type FuzzCase = {
  readonly method: string;
  readonly path: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: Buffer;
  readonly signing: Signing;
  readonly sinkFails: boolean;
  /** What the generator knows of the body. */
  readonly expect:
    | { readonly kind: 'valid-batch'; readonly events: readonly object[] }
    | { readonly kind: 'bad-field'; readonly index: number; readonly field: string }
    | { readonly kind: 'unknown' };
};

export type FuzzAnswer = {
  readonly status: number;
  readonly contentType: string;
  readonly body: string;
  /** The request sent before this one on the same keep-alive socket, for the failure message. */
  readonly previousOnSocket: string | undefined;
};

/**
 * What the sink received for the case's request: undefined when it was not called; 'unobserved'
 * against a real ingest, whose sink is Kafka.
 */
export type SinkRecord = readonly { readonly json: string }[] | undefined | 'unobserved';

const WEBHOOK_PATHS = ['/webhooks/hubspot', '/webhooks/hubspot/private/tok-123'];
const EARLIEST = Date.UTC(2000, 0, 1);
const KNOWN_FIELDS = new Set([
  'portalId',
  'subscriptionType',
  'eventType',
  'eventId',
  'subscriptionId',
  'appId',
  'attemptNumber',
  'objectId',
  'occurredAt',
  'messageId',
  'messageType',
  'changeFlag',
  'changeSource',
  'sourceId',
  'propertyName',
  'propertyValue',
  'objectTypeId',
  '__proto__',
]);
const INTEGER_FIELDS = ['eventId', 'subscriptionId', 'appId', 'attemptNumber', 'objectId'] as const;
const STRING_FIELDS = [
  'messageId',
  'messageType',
  'changeFlag',
  'changeSource',
  'sourceId',
  'propertyName',
  'objectTypeId',
] as const;

// Events --------------------------------------------------------------------------------------

const extraFields = fc.dictionary(
  fc.string({ maxLength: 12 }).filter((key) => !KNOWN_FIELDS.has(key)),
  fc.jsonValue({ maxDepth: 3 }),
  { maxKeys: 3 },
);
const common = (now: number) =>
  fc.record({
    eventId: fc.maxSafeNat(),
    subscriptionId: fc.nat(),
    portalId: fc.oneof(fc.constant(77), fc.integer({ min: 1, max: 2 ** 40 })),
    appId: fc.nat(),
    occurredAt: fc.integer({ min: EARLIEST, max: now + 60 * 60 * 1000 }),
    attemptNumber: fc.nat({ max: 10 }),
    objectId: fc.maxSafeNat(),
  });
const typed = fc.oneof(
  fc.record({
    subscriptionType: fc.constant('conversation.newMessage'),
    messageId: fc.string({ minLength: 1, maxLength: 40 }),
    messageType: fc.constantFrom('MESSAGE', 'COMMENT', 'WELCOME_MESSAGE'),
    changeFlag: fc.constant('NEW_MESSAGE'),
  }),
  fc.record({
    subscriptionType: fc.constant('conversation.propertyChange'),
    propertyName: fc.constantFrom('assignedTo', 'status', 'isArchived'),
    propertyValue: fc.string({ maxLength: 20 }),
    changeSource: fc.constantFrom('USER', 'WORKFLOWS'),
  }),
  fc.record({
    subscriptionType: fc.constant('ticket.propertyChange'),
    propertyName: fc.string({ maxLength: 20 }),
    propertyValue: fc.option(fc.string({ maxLength: 20 }), { nil: null }),
  }),
  fc.record({
    eventType: fc.constant('object.creation'),
    objectTypeId: fc.constantFrom('0-46', '0-5', '2-123'),
    changeFlag: fc.constant('CREATED'),
  }),
  fc.record({ subscriptionType: fc.constantFrom('contact.creation', 'deal.propertyChange', 'x') }),
);
export const validEvent = (now: number): fc.Arbitrary<Record<string, unknown>> =>
  fc.tuple(extraFields, common(now), typed).map(([extra, base, type]) => ({ ...extra, ...base, ...type }));

/** Values that are wrong for a field whatever the event: [field, bad value]. */
const badField = fc.oneof(
  fc.tuple(
    fc.constantFrom(...INTEGER_FIELDS, 'portalId'),
    fc.constantFrom<unknown>(1.5, '7', null, true, {}, [], -1, 2 ** 60),
  ),
  fc.tuple(fc.constant('portalId'), fc.constantFrom<unknown>(0, -0.5)),
  fc.tuple(
    fc.constant('occurredAt'),
    fc.constantFrom<unknown>(1.5, 9e15, 1_702_439_388, -1, '1702439388898', null),
  ),
  fc.tuple(fc.constantFrom(...STRING_FIELDS), fc.constantFrom<unknown>(5, null, {}, [], true)),
  fc.tuple(fc.constant('propertyValue'), fc.constantFrom<unknown>(5, {}, [], true)),
  fc.tuple(fc.constant('subscriptionType'), fc.constantFrom<unknown>(5, '', null, {})),
);

// Bodies --------------------------------------------------------------------------------------

type Body = { readonly body: Buffer; readonly expect: FuzzCase['expect'] };
const json = (value: unknown): Buffer => Buffer.from(JSON.stringify(value));

const bodies = (now: number): fc.Arbitrary<Body> =>
  fc.oneof(
    {
      weight: 5,
      arbitrary: fc.array(validEvent(now), { maxLength: 6 }).map((events) => ({
        body: json(events),
        expect: { kind: 'valid-batch' as const, events },
      })),
    },
    {
      weight: 4,
      arbitrary: fc
        .tuple(fc.array(validEvent(now), { minLength: 1, maxLength: 5 }), fc.nat(), badField)
        .map(([events, at, [field, value]]) => {
          const index = at % events.length;
          const corrupted = events.map((event, i) => (i === index ? { ...event, [field]: value } : event));
          return { body: json(corrupted), expect: { kind: 'bad-field' as const, index, field } };
        }),
    },
    {
      weight: 1,
      arbitrary: fc.array(validEvent(now), { minLength: 101, maxLength: 130 }).map((events) => ({
        body: json(events),
        expect: { kind: 'unknown' as const },
      })),
    },
    {
      weight: 2,
      arbitrary: fc
        .json({ maxDepth: 4 })
        .map((text) => ({ body: Buffer.from(text), expect: { kind: 'unknown' as const } })),
    },
    {
      weight: 2,
      arbitrary: fc
        .array(
          fc.dictionary(
            fc.constantFrom('portalId', 'subscriptionType', 'occurredAt', 'objectId', 'messageId', 'x'),
            fc.oneof(
              fc.double(),
              fc.integer(),
              fc.constantFrom(1e308, -1e308, 2 ** 53 + 1, 77, Date.now()),
              fc.string({ maxLength: 8 }),
              fc.constant('conversation.newMessage'),
              fc.constant(null),
            ),
          ),
          { maxLength: 4 },
        )
        .map((items) => ({ body: json(items), expect: { kind: 'unknown' as const } })),
    },
    {
      weight: 1,
      arbitrary: fc
        .tuple(fc.integer({ min: 1, max: 150_000 }), fc.constantFrom('[', '{"a":'), fc.boolean())
        .map(([depth, open, closed]) => {
          const close = open === '[' ? ']' : '}';
          return {
            body: Buffer.from(
              open.repeat(depth) + (open === '[' ? '' : '1') + (closed ? close.repeat(depth) : ''),
            ),
            expect: { kind: 'unknown' as const },
          };
        }),
    },
    {
      weight: 1,
      arbitrary: fc
        .uint8Array({ maxLength: 200 })
        .map((bytes) => ({ body: Buffer.from(bytes), expect: { kind: 'unknown' as const } })),
    },
    {
      weight: 1,
      arbitrary: fc
        .tuple(
          fc.array(validEvent(now), { minLength: 1, maxLength: 3 }),
          fc.nat(),
          fc.integer({ min: 0, max: 255 }),
        )
        .map(([events, at, byte]) => {
          const body = json(events);
          body[at % body.length] = byte;
          return { body, expect: { kind: 'unknown' as const } };
        }),
    },
    { weight: 1, arbitrary: fc.constant({ body: Buffer.alloc(0), expect: { kind: 'unknown' as const } }) },
  );

// Requests ------------------------------------------------------------------------------------

const token = fc.stringMatching(/^[a-z][a-z0-9-]{0,15}$/);
const headerValue = fc.stringMatching(/^[\x20-\x7e]{0,40}$/).map((value) => value.trim());
const randomPath = fc.oneof(
  fc.constantFrom(
    '/',
    '/healthz',
    '/readyz',
    '/metrics',
    '/admin/orgs/acme',
    '/admin/orgs/%zz',
    '/oauth/hubspot/install',
    '/oauth/hubspot/callback?code=x&state=y.z',
    '/webhooks/hubspot/private/%E0%A4%A',
    '/webhooks/hubspot?x=%3A%2F',
  ),
  fc.webPath().map((path) => (path.startsWith('/') ? path : `/${path}`)),
  fc.stringMatching(/^\/[\x21-\x7e]{0,30}$/),
);

export const fuzzCases = (now: number): fc.Arbitrary<FuzzCase> =>
  fc
    .record({
      webhook: fc.boolean(),
      webhookPath: fc.constantFrom(...WEBHOOK_PATHS),
      otherPath: randomPath,
      method: fc.oneof(
        { weight: 6, arbitrary: fc.constant('POST') },
        { weight: 2, arbitrary: fc.constantFrom('GET', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'HEAD') },
        { weight: 1, arbitrary: fc.constantFrom('PROPFIND', 'MKCOL', 'PURGE', 'SEARCH') },
      ),
      signing: fc.oneof(
        { weight: 6, arbitrary: fc.constant<Signing>('valid') },
        { weight: 1, arbitrary: fc.constantFrom<Signing>('wrong-secret', 'stale', 'none', 'garbage') },
      ),
      body: bodies(now),
      extraHeaders: fc.dictionary(
        fc.oneof(
          token,
          fc.constantFrom(
            'x-forwarded-host',
            'x-forwarded-proto',
            'authorization',
            'content-type',
            'accept-encoding',
          ),
        ),
        headerValue,
        { maxKeys: 3 },
      ),
      sinkFails: fc.nat({ max: 9 }).map((draw) => draw === 0),
      chunked: fc.boolean(),
    })
    .map((drawn) => {
      const webhook = drawn.webhook || drawn.body.expect.kind !== 'unknown';
      const path = webhook ? drawn.webhookPath : drawn.otherPath;
      const method = webhook && drawn.body.expect.kind !== 'unknown' ? 'POST' : drawn.method;
      const headers: Record<string, string> = { ...drawn.extraHeaders };
      delete headers.host;
      delete headers['content-length'];
      delete headers['transfer-encoding'];
      delete headers.connection;
      delete headers.expect;
      delete headers.upgrade;
      if (drawn.chunked) headers['transfer-encoding'] = 'chunked';
      return {
        method,
        path,
        headers,
        body: method === 'GET' || method === 'HEAD' ? Buffer.alloc(0) : drawn.body.body,
        signing: drawn.signing,
        sinkFails: drawn.sinkFails,
        expect: method === 'POST' ? drawn.body.expect : { kind: 'unknown' as const },
      };
    });

/** The request with its signature headers, for the server at `base` (which the signature covers). */
export const signedHeaders = (
  fuzzCase: FuzzCase,
  base: string,
  secrets: { readonly oauth: string; readonly privateApp: string },
  now: number,
): Record<string, string> => {
  const secret = fuzzCase.path.startsWith('/webhooks/hubspot/private/') ? secrets.privateApp : secrets.oauth;
  const url = `${base}${fuzzCase.path}`;
  switch (fuzzCase.signing) {
    case 'none':
      return {};
    case 'garbage':
      return { 'x-hubspot-signature-v3': 'AAAA', 'x-hubspot-request-timestamp': 'soon' };
    case 'wrong-secret':
      return {
        'x-hubspot-signature-v3': signV3('nope', fuzzCase.method, url, fuzzCase.body, String(now)),
        'x-hubspot-request-timestamp': String(now),
      };
    case 'stale':
      return {
        'x-hubspot-signature-v3': signV3(secret, fuzzCase.method, url, fuzzCase.body, String(now - 600_000)),
        'x-hubspot-request-timestamp': String(now - 600_000),
      };
    case 'valid':
      return {
        'x-hubspot-signature-v3': signV3(secret, fuzzCase.method, url, fuzzCase.body, String(now)),
        'x-hubspot-request-timestamp': String(now),
      };
  }
};

const lastRequestOn = new WeakMap<object, string>();

export const keepAliveAgent = (): Agent => new Agent({ keepAlive: true, maxSockets: 16 });

export const send = (
  base: string,
  fuzzCase: FuzzCase,
  headers: Record<string, string>,
  agent: Agent,
): Promise<FuzzAnswer> =>
  new Promise((resolve, reject) => {
    let previousOnSocket: string | undefined;
    const request = httpRequest(
      `${base}${fuzzCase.path}`,
      {
        method: fuzzCase.method,
        headers: {
          // Node sends the body of an OPTIONS or DELETE without any length when none is set: the
          // server then reads those bytes as the start of the next request on the socket.
          ...(fuzzCase.headers['transfer-encoding']
            ? {}
            : { 'content-length': String(fuzzCase.body.length) }),
          ...fuzzCase.headers,
          ...headers,
        },
        agent,
      },
      (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('end', () =>
          resolve({
            status: response.statusCode ?? 0,
            contentType: String(response.headers['content-type'] ?? ''),
            body: Buffer.concat(chunks).toString('utf8'),
            previousOnSocket,
          }),
        );
        response.on('error', reject);
      },
    );
    request.on('socket', (socket) => {
      previousOnSocket = lastRequestOn.get(socket);
      lastRequestOn.set(
        socket,
        `${fuzzCase.method} ${fuzzCase.path} ${JSON.stringify(fuzzCase.headers)} (${fuzzCase.body.length} bytes: ${fuzzCase.body.subarray(0, 40).toString('latin1')}…)`,
      );
    });
    request.on('error', reject);
    request.end(fuzzCase.body.length > 0 ? fuzzCase.body : undefined);
  });

// Properties ----------------------------------------------------------------------------------

const isEpochMs = (value: unknown, now: number): boolean =>
  Number.isSafeInteger(value) && (value as number) >= EARLIEST && (value as number) <= now + 86_400_000;

/** An independent reading of "well-formed": what HubSpot sends and the processor's parser takes. */
const wellFormed = (element: unknown, now: number): boolean => {
  if (typeof element !== 'object' || element === null || Array.isArray(element)) return false;
  const event = element as Record<string, unknown>;
  if (!(Number.isSafeInteger(event.portalId) && (event.portalId as number) > 0)) return false;
  const type = event.subscriptionType ?? event.eventType;
  if (typeof type !== 'string' || type === '') return false;
  if (
    INTEGER_FIELDS.some(
      (field) => field in event && !(Number.isSafeInteger(event[field]) && (event[field] as number) >= 0),
    )
  )
    return false;
  if ('occurredAt' in event && !isEpochMs(event.occurredAt, now)) return false;
  if (STRING_FIELDS.some((field) => field in event && typeof event[field] !== 'string')) return false;
  if ('propertyValue' in event && event.propertyValue !== null && typeof event.propertyValue !== 'string')
    return false;
  return parseWebhookEvent(JSON.stringify(event)).ok;
};

/** Every property one answer must keep; throws an Error naming the broken one. */
export const checkAnswer = (fuzzCase: FuzzCase, answer: FuzzAnswer, sunk: SinkRecord, now: number): void => {
  const fail = (what: string): never => {
    throw new Error(
      `${what}: ${fuzzCase.method} ${fuzzCase.path} (${fuzzCase.signing}, sink ${fuzzCase.sinkFails ? 'failing' : 'ok'}) → ${answer.status} ${answer.body.slice(0, 300)}` +
        (answer.previousOnSocket ? `; before it on that socket: ${answer.previousOnSocket}` : ''),
    );
  };
  const { status } = answer;
  // Issue 7: no 5xx but 503 while the sink (Kafka) fails; an unknown method is a 405, not a 501.
  if (status >= 500 && !(status === 503 && fuzzCase.sinkFails))
    fail('a 5xx other than 503 from a failing sink');
  if ((status < 200 || status > 299) && fuzzCase.method !== 'HEAD') {
    let body: unknown;
    try {
      body = JSON.parse(answer.body);
    } catch {
      fail('a non-2xx body that is not JSON');
    }
    const keys = Object.keys(body as object).sort();
    const { error, detail } = body as { error?: unknown; detail?: unknown };
    if (keys.join() !== 'detail,error' || typeof error !== 'string' || typeof detail !== 'string')
      fail('a non-2xx body that is not {"error","detail"}');
    if (!answer.contentType.startsWith('application/json')) fail('a non-2xx answer not typed JSON');
  }
  // The router matches the path without its query: /webhooks/hubspot?x=1 is the webhook too.
  const isWebhook = fuzzCase.method === 'POST' && WEBHOOK_PATHS.includes(fuzzCase.path.split('?')[0] ?? '');
  const observed = sunk === 'unobserved' ? undefined : sunk;
  if (observed !== undefined && !(isWebhook && fuzzCase.signing === 'valid'))
    fail('the sink was called for a request that is not a validly signed webhook');
  if (isWebhook && status === 200) {
    if (fuzzCase.signing !== 'valid') fail('200 for a request not validly signed');
    if (sunk === undefined) fail('200 without the sink');
    const elements = JSON.parse(fuzzCase.body.toString('utf8')) as unknown;
    if (!Array.isArray(elements) || elements.length > 100)
      fail('200 for a body that is not an array of ≤ 100');
    const items = elements as unknown[];
    if (observed && observed.length !== items.length)
      fail(`the sink got ${observed.length} events for ${items.length}`);
    items.forEach((item, index) => {
      if (!wellFormed(item, now)) fail(`200 with event ${index} not well-formed`);
      if (observed && JSON.stringify(JSON.parse(observed[index]?.json ?? 'null')) !== JSON.stringify(item))
        fail(`event ${index} reached the sink changed`);
    });
  }
  if (!isWebhook || fuzzCase.signing !== 'valid') return;
  const { expect } = fuzzCase;
  if (expect.kind === 'valid-batch') {
    const wanted = fuzzCase.sinkFails ? 503 : 200;
    if (status !== wanted) fail(`a valid batch answered ${status}, not ${wanted}`);
    if (
      !fuzzCase.sinkFails &&
      sunk !== 'unobserved' &&
      sunk?.map(({ json: text }) => text).join('\n') !==
        expect.events.map((e) => JSON.stringify(e)).join('\n')
    )
      fail('the sink did not get exactly the batch, as sent');
  } else if (expect.kind === 'bad-field') {
    if (status !== 400) fail(`a bad ${expect.field} answered ${status}`);
    const { detail } = JSON.parse(answer.body) as { detail: string };
    if (!detail.startsWith(`event ${expect.index}: ${expect.field}: `))
      fail(`the 400 does not name event ${expect.index}: ${expect.field}`);
  }
};
