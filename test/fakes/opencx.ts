// A fake OpenCX for tests: a real HTTP server that speaks schemas/opencx-api.yaml, checks every
// request against that document (openapi-backend + ajv-formats), and keeps what the pipeline
// did to OpenCX in order, so tests can assert effects rather than calls.
import { randomUUID } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { fileURLToPath } from 'node:url';
import ajvFormats from 'ajv-formats';
import { OpenAPIBackend } from 'openapi-backend';
import type { Operation } from 'openapi-backend';
import {
  bearerToken,
  createFaultScript,
  createHolds,
  delay,
  headerValue,
  parseJsonBody,
  retryAfterHeaders,
  startLoopbackServer,
} from './http-fake.ts';
import type { FakeAnswer, FaultRule, Hold, IncomingRequest } from './http-fake.ts';

export type { FaultRule, Hold } from './http-fake.ts';

export const OPENCX_API_SPEC_PATH = fileURLToPath(new URL('../../schemas/opencx-api.yaml', import.meta.url));

export type OpenCxChannelType = 'web' | 'web_voice' | 'phone_voice' | 'email' | 'sms' | 'whatsapp' | 'api';
export type OpenCxSessionStatus = 'open' | 'closed_resolved' | 'closed_unresolved';

export interface OpenCxSentMessage {
  readonly text: string;
  readonly aiResponse: string | null;
  readonly at: number;
}

export interface OpenCxAgentMessage {
  readonly id: string;
  readonly text: string;
  readonly actorId: string;
  readonly internal: boolean;
  readonly createdAt: string;
}

export interface OpenCxHandoff {
  readonly reason: string;
  readonly assigneeActorId: string | null;
  readonly at: number;
}

export interface OpenCxAgentComment {
  readonly id: string;
  readonly text: string;
  readonly hubspotNoteId: string;
  readonly authorOwnerId: string | null;
  readonly createdAt: string;
}

export interface FakeOpenCxSession {
  readonly id: string;
  /** The API key that created it: other keys get 404. */
  readonly apiKey: string;
  readonly channel: { readonly type: OpenCxChannelType };
  readonly contactId: string | null;
  customData: Record<string, string>;
  readonly messages: OpenCxSentMessage[];
  readonly agentMessages: OpenCxAgentMessage[];
  readonly handoffs: OpenCxHandoff[];
  readonly comments: OpenCxAgentComment[];
  status: OpenCxSessionStatus;
  assigneeId: string | null;
  readonly createdAt: string;
  updatedAt: string;
}

export type OpenCxEffectKind =
  'session-created' | 'message-sent' | 'agent-message' | 'handoff' | 'custom-data' | 'agent-comment';

/** One state change, in the order OpenCX applied them; replays add none. */
export interface OpenCxEffect {
  readonly kind: OpenCxEffectKind;
  readonly sessionId: string;
  readonly body: unknown;
  readonly idempotencyKey: string;
  readonly at: number;
}

export interface OpenCxRecordedRequest {
  readonly method: string;
  readonly path: string;
  readonly headers: IncomingHttpHeaders;
  /** Parsed JSON, or the raw text when it was not JSON, or undefined when empty. */
  readonly body: unknown;
  readonly at: number;
}

/** A request that does not match schemas/opencx-api.yaml: a bug in the pipeline's client. */
export interface OpenCxViolation {
  readonly method: string;
  readonly path: string;
  readonly reason: string;
  readonly errors: readonly unknown[];
}

export interface OpenCxFaultRule extends FaultRule {
  /**
   * Execute the request (effect and stored idempotent answer) and only then answer the fault:
   * the "OpenCX did it but the answer was lost" case.
   */
  readonly afterEffect?: boolean;
}

/** What the AI says to a customer message; null when it does not answer. */
export type AiResponder = (
  text: string,
  session: FakeOpenCxSession,
) => string | null | Promise<string | null>;

export interface FakeOpenCxOptions {
  /** Accepted bearer keys; when absent every non-empty key is accepted (sessions still belong to their key). */
  readonly apiKeys?: Iterable<string>;
  /** Defaults to `(text) => \`AI: ${text}\``. */
  readonly aiResponder?: AiResponder;
}

export interface FakeOpenCx {
  readonly url: string;
  readonly requests: readonly OpenCxRecordedRequest[];
  readonly violations: readonly OpenCxViolation[];
  readonly effects: readonly OpenCxEffect[];
  readonly sessions: ReadonlyMap<string, FakeOpenCxSession>;
  failNext(rule: OpenCxFaultRule): void;
  setLatency(ms: number): void;
  hold(pathPattern: RegExp): Hold;
  addApiKey(apiKey: string): void;
  setAiResponder(responder: AiResponder): void;
  /**
   * Every request with this API key gets `status` (default 503) until `untilMs` (epoch ms): one
   * organisation's OpenCX down for a window, others unaffected. Checked after auth and validation.
   */
  failApiKeyUntil(apiKey: string, untilMs: number, status?: number): void;
  /** Forgets sessions, effects, logs, stored idempotent answers, faults, holds and latency. */
  reset(): void;
  close(): Promise<void>;
}

const defaultAiResponder: AiResponder = (text) => `AI: ${text}`;

let specLoading: Promise<OpenAPIBackend> | undefined;

/** Parsing and compiling the document is the slow part; every fake in a test run shares one. */
function loadOpenCxSpec(): Promise<OpenAPIBackend> {
  specLoading ??= new OpenAPIBackend({
    definition: OPENCX_API_SPEC_PATH,
    strict: true,
    ajvOpts: { allErrors: true },
    customizeAjv: (ajv) => {
      ajvFormats.default(ajv);
      return ajv;
    },
  }).init();
  return specLoading;
}

interface StoredIdempotentAnswer {
  readonly fingerprint: string;
  /** Undefined while the first request with the key is still running. */
  answer: FakeAnswer | undefined;
  readonly settled: Promise<void>;
}

interface Authorised {
  readonly apiKey: string;
  readonly idempotencyKey: string;
  readonly body: unknown;
  readonly sessionId: string | undefined;
}

export async function startFakeOpenCx(options: FakeOpenCxOptions = {}): Promise<FakeOpenCx> {
  const api = await loadOpenCxSpec();
  const openAnyKey = options.apiKeys === undefined;
  const apiKeys = new Set(options.apiKeys ?? []);
  let aiResponder = options.aiResponder ?? defaultAiResponder;
  let latencyMs = 0;
  const requests: OpenCxRecordedRequest[] = [];
  const violations: OpenCxViolation[] = [];
  const effects: OpenCxEffect[] = [];
  const sessions = new Map<string, FakeOpenCxSession>();
  const idempotentAnswers = new Map<string, StoredIdempotentAnswer>();
  const faults = createFaultScript<OpenCxFaultRule>();
  const keyOutages = new Map<string, { untilMs: number; status: number }>();
  const holds = createHolds();

  async function answer(request: IncomingRequest): Promise<FakeAnswer> {
    const parsed = parseJsonBody(request.rawBody);
    requests.push({
      method: request.method,
      path: request.path,
      headers: { ...request.headers },
      body: parsed.ok ? parsed.value : request.rawBody,
      at: Date.now(),
    });
    await holds.waitIfHeld(request.path);
    const result = await answerChecked(
      request,
      parsed.ok ? parsed.value : undefined,
      parsed.ok ? undefined : parsed.error,
    );
    // Latency sits after the effect: a client that times out has still changed OpenCX.
    await delay(latencyMs);
    return result;
  }

  async function answerChecked(
    request: IncomingRequest,
    body: unknown,
    jsonError: string | undefined,
  ): Promise<FakeAnswer> {
    const operation = api.matchOperation(toOpenApiRequest(request, body));
    if (operation === undefined) {
      return violation(request, 404, `no operation ${request.method} ${request.path} in opencx-api.yaml`, []);
    }
    const token = bearerToken(request.headers);
    if (token === undefined) {
      return violation(request, 401, 'missing Authorization: Bearer header', []);
    }
    const problems = requestProblems(request, operation, body, jsonError);
    if (problems.length > 0) {
      return violation(
        request,
        400,
        `request does not match ${operation.operationId ?? 'the operation'}`,
        problems,
      );
    }
    const outage = keyOutages.get(token);
    if (outage !== undefined && Date.now() < outage.untilMs) return faultAnswer({ status: outage.status });
    const fault = faults.take(request.method, request.path);
    if (fault !== undefined && fault.afterEffect !== true) return faultAnswer(fault);
    if (!isKnownKey(token)) return errorAnswer(401, 'Invalid API key');
    const authorised: Authorised = {
      apiKey: token,
      idempotencyKey: headerValue(request.headers, 'idempotency-key') ?? '',
      body,
      sessionId: sessionIdOf(request.path),
    };
    const result = isStateChanging(operation)
      ? await runIdempotently(authorised, `${request.method} ${request.path} ${canonicalJson(body)}`, () =>
          execute(operation, authorised),
        )
      : await execute(operation, authorised);
    return fault === undefined ? result : faultAnswer(fault);
  }

  function violation(
    request: IncomingRequest,
    status: number,
    reason: string,
    errors: readonly unknown[],
  ): FakeAnswer {
    violations.push({ method: request.method, path: request.path, reason, errors });
    return errorAnswer(status, `${reason}${errors.length > 0 ? `: ${JSON.stringify(errors)}` : ''}`);
  }

  function requestProblems(
    request: IncomingRequest,
    operation: Operation,
    body: unknown,
    jsonError: string | undefined,
  ): unknown[] {
    if (jsonError !== undefined) return [{ message: `body is not JSON: ${jsonError}` }];
    const problems: unknown[] = [];
    const contentType = headerValue(request.headers, 'content-type') ?? '';
    if (operation.requestBody !== undefined && !/^application\/json\b/i.test(contentType)) {
      problems.push({ message: `content-type must be application/json, got "${contentType}"` });
    }
    const validation = api.validateRequest(toOpenApiRequest(request, body), operation);
    return [...problems, ...(validation.errors ?? [])];
  }

  function isKnownKey(apiKey: string): boolean {
    return openAnyKey || apiKeys.has(apiKey);
  }

  /**
   * Stripe's rules: the first request with a key runs and its answer is stored; an identical
   * repeat gets that answer again, a different one 409; a repeat that arrives while the first
   * runs waits for it. An answer that threw is not stored, so the key can be retried.
   */
  async function runIdempotently(
    authorised: Authorised,
    fingerprint: string,
    run: () => Promise<FakeAnswer>,
  ): Promise<FakeAnswer> {
    const scope = `${authorised.apiKey}\u0000${authorised.idempotencyKey}`;
    for (
      let stored = idempotentAnswers.get(scope);
      stored !== undefined;
      stored = idempotentAnswers.get(scope)
    ) {
      if (stored.answer === undefined) {
        await stored.settled;
        continue;
      }
      if (stored.fingerprint !== fingerprint) {
        return errorAnswer(409, 'Idempotency-Key already used with a different request');
      }
      return { ...stored.answer, headers: { ...stored.answer.headers, 'idempotent-replayed': 'true' } };
    }
    let settle = (): void => {};
    const entry: StoredIdempotentAnswer = {
      fingerprint,
      answer: undefined,
      settled: new Promise<void>((resolve) => (settle = resolve)),
    };
    idempotentAnswers.set(scope, entry);
    try {
      entry.answer = await run();
      return entry.answer;
    } catch (error) {
      idempotentAnswers.delete(scope);
      throw error;
    } finally {
      settle();
    }
  }

  async function execute(operation: Operation, authorised: Authorised): Promise<FakeAnswer> {
    if (operation.operationId === 'createChatSession') return createSession(authorised);
    const session = ownedSession(authorised);
    if (session === undefined) return errorAnswer(404, 'Chat session not found');
    switch (operation.operationId) {
      case 'getChatSession':
        return { status: 200, body: sessionView(session) };
      case 'sendMessage':
        return sendMessage(session, authorised);
      case 'addAgentMessage':
        return addAgentMessage(session, authorised);
      case 'handOffSession':
        return handOff(session, authorised);
      case 'patchCustomData':
        return patchCustomData(session, authorised);
      case 'addAgentComment':
        return addAgentComment(session, authorised);
      default:
        throw new Error(`fake OpenCX has no handler for ${operation.operationId ?? operation.path}`);
    }
  }

  function ownedSession(authorised: Authorised): FakeOpenCxSession | undefined {
    const session = authorised.sessionId === undefined ? undefined : sessions.get(authorised.sessionId);
    return session?.apiKey === authorised.apiKey ? session : undefined;
  }

  function recordEffect(kind: OpenCxEffectKind, session: FakeOpenCxSession, authorised: Authorised): void {
    const at = Date.now();
    session.updatedAt = new Date(at).toISOString();
    effects.push({
      kind,
      sessionId: session.id,
      body: authorised.body,
      idempotencyKey: authorised.idempotencyKey,
      at,
    });
  }

  // The bodies below were checked against the document, so their shapes can be trusted.
  function createSession(authorised: Authorised): FakeAnswer {
    const body = authorised.body as CreateChatSessionBody;
    const now = new Date().toISOString();
    const session: FakeOpenCxSession = {
      id: randomUUID(),
      apiKey: authorised.apiKey,
      channel: { type: body.channel.type },
      contactId: body.contact_id ?? null,
      customData: { ...body.custom_data },
      messages: [],
      agentMessages: [],
      handoffs: [],
      comments: [],
      status: 'open',
      assigneeId: null,
      createdAt: now,
      updatedAt: now,
    };
    sessions.set(session.id, session);
    recordEffect('session-created', session, authorised);
    return { status: 201, body: { id: session.id } };
  }

  async function sendMessage(session: FakeOpenCxSession, authorised: Authorised): Promise<FakeAnswer> {
    const { text } = (authorised.body as SendMessageBody).message;
    const aiResponse = await aiResponder(text, session);
    session.messages.push({ text, aiResponse, at: Date.now() });
    recordEffect('message-sent', session, authorised);
    return { status: 201, body: { ai_response: aiResponse === null ? null : { text: aiResponse } } };
  }

  function addAgentMessage(session: FakeOpenCxSession, authorised: Authorised): FakeAnswer {
    const body = authorised.body as AgentMessageBody;
    const id = randomUUID();
    session.agentMessages.push({
      id,
      text: body.text,
      actorId: body.actor_id,
      internal: body.internal,
      createdAt: body.created_at,
    });
    recordEffect('agent-message', session, authorised);
    return { status: 201, body: { id } };
  }

  function handOff(session: FakeOpenCxSession, authorised: Authorised): FakeAnswer {
    const body = authorised.body as HandoffBody;
    session.handoffs.push({ reason: body.reason, assigneeActorId: body.assignee_actor_id, at: Date.now() });
    session.assigneeId = body.assignee_actor_id;
    recordEffect('handoff', session, authorised);
    return {
      status: 200,
      body: { session_id: session.id, handed_off: true, assignee_actor_id: body.assignee_actor_id },
    };
  }

  function patchCustomData(session: FakeOpenCxSession, authorised: Authorised): FakeAnswer {
    session.customData = { ...session.customData, ...(authorised.body as Record<string, string>) };
    recordEffect('custom-data', session, authorised);
    return { status: 200, body: { custom_data: session.customData } };
  }

  function addAgentComment(session: FakeOpenCxSession, authorised: Authorised): FakeAnswer {
    const body = authorised.body as AgentCommentBody;
    const id = randomUUID();
    session.comments.push({
      id,
      text: body.text,
      hubspotNoteId: body.hubspot_note_id,
      authorOwnerId: body.author_owner_id,
      createdAt: body.created_at,
    });
    recordEffect('agent-comment', session, authorised);
    return { status: 201, body: { id } };
  }

  const server = await startLoopbackServer(answer);

  return {
    url: server.url,
    requests,
    violations,
    effects,
    sessions,
    failNext: (rule) => faults.failNext(rule),
    setLatency: (ms) => {
      latencyMs = ms;
    },
    hold: (pathPattern) => holds.hold(pathPattern),
    addApiKey: (apiKey) => {
      apiKeys.add(apiKey);
    },
    setAiResponder: (responder) => {
      aiResponder = responder;
    },
    failApiKeyUntil: (apiKey, untilMs, status = 503) => {
      keyOutages.set(apiKey, { untilMs, status });
    },
    reset: () => {
      holds.releaseAll();
      faults.clear();
      keyOutages.clear();
      latencyMs = 0;
      aiResponder = options.aiResponder ?? defaultAiResponder;
      requests.length = 0;
      violations.length = 0;
      effects.length = 0;
      sessions.clear();
      idempotentAnswers.clear();
    },
    close: async () => {
      holds.releaseAll();
      await server.close();
    },
  };
}

interface CreateChatSessionBody {
  readonly channel: { readonly type: OpenCxChannelType };
  readonly contact_id?: string;
  readonly custom_data: Record<string, string>;
}

interface SendMessageBody {
  readonly message: { readonly text: string };
}

interface AgentMessageBody {
  readonly text: string;
  readonly actor_id: string;
  readonly internal: boolean;
  readonly created_at: string;
}

interface HandoffBody {
  readonly reason: string;
  readonly assignee_actor_id: string | null;
}

interface AgentCommentBody {
  readonly text: string;
  readonly hubspot_note_id: string;
  readonly author_owner_id: string | null;
  readonly created_at: string;
}

function toOpenApiRequest(request: IncomingRequest, body: unknown) {
  return {
    method: request.method,
    path: request.path,
    query: Object.fromEntries(request.query),
    headers: request.headers as Record<string, string | string[]>,
    body,
  };
}

// Every state-changing call requires Idempotency-Key in the document; reads do not.
function isStateChanging(operation: Operation): boolean {
  return operation.method.toUpperCase() !== 'GET';
}

function sessionIdOf(path: string): string | undefined {
  return /^\/chat\/sessions\/([^/]+)/.exec(path)?.[1];
}

function sessionView(session: FakeOpenCxSession) {
  return {
    id: session.id,
    status: session.status,
    channel: session.channel,
    ...(session.assigneeId === null ? {} : { assignee_id: session.assigneeId }),
    ...(session.handoffs.length === 0 ? {} : { handoff: { summary: 'Assigned away in HubSpot' } }),
    custom_data: session.customData,
    created_at: session.createdAt,
    updated_at: session.updatedAt,
  };
}

function faultAnswer(rule: FaultRule): FakeAnswer {
  return {
    status: rule.status,
    body: rule.body ?? { statusCode: rule.status, message: 'injected fault', error: 'Injected' },
    headers: retryAfterHeaders(rule),
  };
}

const statusNames: Readonly<Record<number, string>> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  404: 'Not Found',
  409: 'Conflict',
};

function errorAnswer(status: number, message: string): FakeAnswer {
  return { status, body: { statusCode: status, message, error: statusNames[status] ?? 'Error' } };
}

/** JSON with sorted keys, so a retry that serialises the same body differently is still "the same". */
function canonicalJson(value: unknown): string {
  return (
    JSON.stringify(value, (_key, inner: unknown) =>
      inner !== null && typeof inner === 'object' && !Array.isArray(inner)
        ? Object.fromEntries(Object.entries(inner).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
        : inner,
    ) ?? ''
  );
}
