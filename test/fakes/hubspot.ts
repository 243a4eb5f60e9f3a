// A fake HubSpot for tests: a real HTTP server with HubSpot's documented shapes for the calls the
// pipeline makes (Conversations v3 messages and threads, CRM notes, OAuth), bearer tokens mapped
// to portals, HubSpot's per-portal rolling rate limit with its 429 body and headers, and fault
// injection. Objects can be scoped to a portal so that a call made with the wrong portal's token
// fails the way it would against HubSpot.
import { randomBytes, randomUUID } from 'node:crypto';
import {
  bearerToken,
  createFaultScript,
  createHolds,
  delay,
  parseJsonBody,
  retryAfterHeaders,
  startLoopbackServer,
} from './http-fake.ts';
import type { FakeAnswer, FaultRule, Hold, IncomingRequest } from './http-fake.ts';

export type { FaultRule, Hold } from './http-fake.ts';

export type ActorId = string;

export interface HubSpotDeliveryIdentifier {
  readonly type: 'HS_EMAIL_ADDRESS' | 'HS_PHONE_NUMBER' | 'CHANNEL_SPECIFIC_OPAQUE_ID' | 'HS_SHORT_CODE';
  readonly value: string;
}

export interface HubSpotParticipant {
  readonly actorId?: ActorId;
  readonly name?: string;
  readonly deliveryIdentifier?: HubSpotDeliveryIdentifier;
}

export type HubSpotMessageType =
  'MESSAGE' | 'COMMENT' | 'WELCOME_MESSAGE' | 'ASSIGNMENT' | 'THREAD_STATUS_CHANGE' | 'THREAD_INBOX_CHANGE';

/** GET …/threads/{threadId}/messages/{messageId}, as HubSpot's PublicMessage variants share it. */
export interface HubSpotMessage {
  readonly id: string;
  readonly type: HubSpotMessageType;
  readonly text: string;
  readonly richText?: string;
  readonly subject?: string;
  readonly direction?: 'INCOMING' | 'OUTGOING';
  readonly channelId?: string;
  readonly channelAccountId?: string;
  readonly conversationsThreadId: string;
  readonly createdAt: string;
  readonly createdBy: ActorId;
  readonly client: {
    readonly clientType: 'HUBSPOT' | 'INTEGRATION' | 'SYSTEM' | 'UNKNOWN';
    readonly integrationAppId?: number;
  };
  readonly senders: readonly HubSpotParticipant[];
  readonly recipients: readonly HubSpotParticipant[];
  readonly attachments: readonly unknown[];
  readonly truncationStatus?: 'NOT_TRUNCATED' | 'TRUNCATED' | 'TRUNCATED_TO_MOST_RECENT_REPLY';
  readonly archived?: boolean;
}

/** GET …/messages/{messageId}/original-content: the whole body of a message HubSpot truncated. */
export interface HubSpotMessageContent {
  readonly text: string;
  readonly richText: string;
}

export interface HubSpotThread {
  readonly id: string;
  readonly status: 'OPEN' | 'CLOSED';
  readonly inboxId: string;
  readonly associatedContactId: string;
  readonly assignedTo?: ActorId;
  readonly createdAt: string;
  readonly originalChannelId?: string;
  readonly originalChannelAccountId?: string;
  readonly archived?: boolean;
  readonly spam?: boolean;
  /** Served only when the request asks for `?association=TICKET`, as HubSpot does. */
  readonly threadAssociations?: { readonly associatedTicketId?: string };
}

export interface HubSpotNote {
  readonly id: string;
  readonly properties: {
    readonly hs_note_body: string;
    readonly hs_timestamp: string;
    readonly hubspot_owner_id: string | null;
    readonly [property: string]: string | null;
  };
  readonly associations?: {
    readonly tickets?: { readonly results: ReadonlyArray<{ readonly id: string; readonly type: string }> };
  };
  readonly createdAt?: string;
  readonly updatedAt?: string;
}

/** A message the pipeline posted through POST …/threads/{threadId}/messages. */
export interface HubSpotPostedMessage {
  readonly threadId: string;
  readonly portalId: number;
  readonly body: unknown;
  readonly message: HubSpotMessage;
  readonly at: number;
}

export interface HubSpotRecordedRequest {
  readonly method: string;
  readonly path: string;
  readonly query: Readonly<Record<string, string>>;
  /** The portal of the bearer token, null when there was none or it is unknown. */
  readonly portalId: number | null;
  readonly body: unknown;
  readonly at: number;
}

export interface RateLimit {
  readonly max: number;
  readonly intervalMs: number;
}

export interface OAuthPortal {
  readonly portalId: number;
  /** The authorization code that `POST /oauth/v1/token` exchanges for this portal's tokens. */
  readonly code: string;
  readonly user?: string;
  readonly hubDomain?: string;
  readonly scopes?: readonly string[];
  /** expires_in of every access token issued for this portal; 1800 (HubSpot's 30 minutes) by default. */
  readonly tokenLifetimeSeconds?: number;
}

export interface OAuthTokens {
  readonly access_token: string;
  readonly refresh_token: string;
  readonly expires_in: number;
  readonly token_type: 'bearer';
}

/** Where an object lives: without `portalId` any portal's token may read it. */
export interface Scope {
  readonly portalId?: number;
}

export interface FakeHubSpotOptions {
  /** Bearer token → portal id. */
  readonly tokens?: Readonly<Record<string, number>> | ReadonlyMap<string, number>;
  /** Applies to every portal without its own limit; HubSpot's OAuth-app limit (110 / 10 s) unless null (no limit). */
  readonly defaultRateLimit?: RateLimit | null;
  /** Checked on token exchange when given. */
  readonly clientId?: string;
  readonly clientSecret?: string;
  /** The app's id: integrationAppId of posted messages and app_id of token info. */
  readonly appId?: number;
}

export interface FakeHubSpot {
  readonly url: string;
  readonly requests: readonly HubSpotRecordedRequest[];
  readonly posted: readonly HubSpotPostedMessage[];
  addMessage(message: HubSpotMessage, scope?: Scope): void;
  /**
   * The original content served for a message (add the message itself too, usually with a
   * shortened text and truncationStatus TRUNCATED). Without it, original-content serves the
   * message's own text, as HubSpot does for a message that was not truncated.
   */
  setOriginalContent(threadId: string, messageId: string, content: HubSpotMessageContent): void;
  setThread(thread: HubSpotThread, scope?: Scope): void;
  addNote(note: HubSpotNote, scope?: Scope): void;
  addOAuthPortal(portal: OAuthPortal): void;
  setToken(token: string, portalId: number): void;
  /** The token then gets 401 EXPIRED_AUTHENTICATION, as an expired OAuth token does. */
  revokeToken(token: string): void;
  setRateLimit(portalId: number, limit: RateLimit | null): void;
  failNext(rule: FaultRule): void;
  setLatency(ms: number): void;
  hold(pathPattern: RegExp): Hold;
  /** Back to the state right after start: objects, logs, OAuth grants, limits, faults, holds, latency. */
  reset(): void;
  close(): Promise<void>;
}

export const HUBSPOT_OAUTH_RATE_LIMIT: RateLimit = { max: 110, intervalMs: 10_000 };
const ACCESS_TOKEN_LIFETIME_SECONDS = 1800;
const DEFAULT_APP_ID = 2438486;

interface Scoped<T> {
  readonly value: T;
  readonly portalId: number | undefined;
}

interface Caller {
  readonly portalId: number;
  readonly token: string;
}

type Route = (
  request: IncomingRequest,
  body: unknown,
  caller: Caller,
  params: readonly string[],
) => FakeAnswer;

export async function startFakeHubSpot(options: FakeHubSpotOptions = {}): Promise<FakeHubSpot> {
  const appId = options.appId ?? DEFAULT_APP_ID;
  const defaultRateLimit =
    options.defaultRateLimit === undefined ? HUBSPOT_OAUTH_RATE_LIMIT : options.defaultRateLimit;
  const tokens = new Map<string, number>();
  const messages = new Map<string, Scoped<HubSpotMessage>>();
  // Each thread's messages, so a history read or a post does not scan every portal's messages
  // (a long soak holds 100,000s: a scan per AI reply made the fake, not the pipeline, the bottleneck).
  const messagesByThread = new Map<string, Map<string, Scoped<HubSpotMessage>>>();
  const storeMessage = (threadId: string, message: Scoped<HubSpotMessage>): void => {
    const key = messageKey(threadId, message.value.id);
    messages.set(key, message);
    let thread = messagesByThread.get(threadId);
    if (!thread) messagesByThread.set(threadId, (thread = new Map()));
    thread.set(key, message);
  };
  const originalContents = new Map<string, HubSpotMessageContent>();
  const threads = new Map<string, Scoped<HubSpotThread>>();
  const notes = new Map<string, Scoped<HubSpotNote>>();
  const oauthCodes = new Map<string, OAuthPortal>();
  const refreshTokens = new Map<string, OAuthPortal>();
  const tokenInfo = new Map<string, OAuthPortal>();
  const rateLimits = new Map<number, RateLimit | null>();
  const recentRequests = new Map<number, number[]>();
  const requests: HubSpotRecordedRequest[] = [];
  const posted: HubSpotPostedMessage[] = [];
  const faults = createFaultScript<FaultRule>();
  const holds = createHolds();
  let latencyMs = 0;

  function restoreTokens(): void {
    tokens.clear();
    for (const [token, portalId] of Object.entries(tokenEntries(options.tokens))) tokens.set(token, portalId);
  }
  restoreTokens();

  const authenticatedRoutes: ReadonlyArray<readonly [string, RegExp, Route]> = [
    ['GET', /^\/conversations\/v3\/conversations\/threads\/([^/]+)\/messages\/([^/]+)$/, getMessage],
    [
      'GET',
      /^\/conversations\/v3\/conversations\/threads\/([^/]+)\/messages\/([^/]+)\/original-content$/,
      getOriginalContent,
    ],
    ['POST', /^\/conversations\/v3\/conversations\/threads\/([^/]+)\/messages$/, postMessage],
    ['GET', /^\/conversations\/v3\/conversations\/threads\/([^/]+)\/messages$/, listMessages],
    ['GET', /^\/conversations\/v3\/conversations\/threads\/([^/]+)$/, getThread],
    ['GET', /^\/conversations\/v3\/conversations\/threads$/, listThreads],
    ['GET', /^\/crm\/v3\/objects\/notes\/([^/]+)$/, getNote],
  ];

  async function answer(request: IncomingRequest): Promise<FakeAnswer> {
    const parsed = parseJsonBody(request.rawBody);
    const token = bearerToken(request.headers);
    const portalId = token === undefined ? null : (tokens.get(token) ?? null);
    requests.push({
      method: request.method,
      path: request.path,
      query: Object.fromEntries(request.query),
      portalId,
      body: parsed.ok ? parsed.value : request.rawBody,
      at: Date.now(),
    });
    await holds.waitIfHeld(request.path);
    const result = answerRequest(request, parsed.ok ? parsed.value : undefined, token, portalId);
    await delay(latencyMs);
    return result;
  }

  function answerRequest(
    request: IncomingRequest,
    body: unknown,
    token: string | undefined,
    portalId: number | null,
  ): FakeAnswer {
    const fault = faults.take(request.method, request.path);
    if (fault !== undefined) return faultAnswer(fault);
    if (request.method === 'POST' && request.path === '/oauth/v1/token') return exchangeToken(request);
    const tokenInfoMatch = /^\/oauth\/v1\/access-tokens\/([^/]+)$/.exec(request.path);
    if (request.method === 'GET' && tokenInfoMatch?.[1] !== undefined)
      return describeToken(decodeURIComponent(tokenInfoMatch[1]));
    if (token === undefined) {
      return hubSpotError(401, 'INVALID_AUTHENTICATION', 'Authentication credentials not found.');
    }
    if (portalId === null) {
      return hubSpotError(401, 'EXPIRED_AUTHENTICATION', 'The OAuth token used to make this call expired.');
    }
    const limited = countAgainstRateLimit(portalId);
    if (limited.exceeded) return { ...rateLimitedAnswer(), headers: limited.headers };
    const routed = routeAuthenticated(request, body, { portalId, token });
    return { ...routed, headers: { ...routed.headers, ...limited.headers } };
  }

  function routeAuthenticated(request: IncomingRequest, body: unknown, caller: Caller): FakeAnswer {
    for (const [method, pattern, route] of authenticatedRoutes) {
      const match = pattern.exec(request.path);
      if (method === request.method && match !== null) {
        return route(request, body, caller, match.slice(1).map(decodeURIComponent));
      }
    }
    return hubSpotError(404, 'OBJECT_NOT_FOUND', `fake HubSpot has no ${request.method} ${request.path}`);
  }

  /** HubSpot's ten-secondly rolling window: only requests it let through count. */
  function countAgainstRateLimit(portalId: number): { exceeded: boolean; headers: Record<string, string> } {
    const limit = rateLimits.has(portalId) ? (rateLimits.get(portalId) ?? null) : defaultRateLimit;
    if (limit === null) return { exceeded: false, headers: {} };
    const now = Date.now();
    const recent = (recentRequests.get(portalId) ?? []).filter((at) => at > now - limit.intervalMs);
    const exceeded = recent.length >= limit.max;
    if (!exceeded) recent.push(now);
    recentRequests.set(portalId, recent);
    return {
      exceeded,
      headers: {
        'x-hubspot-ratelimit-max': String(limit.max),
        'x-hubspot-ratelimit-remaining': String(Math.max(0, limit.max - recent.length)),
        'x-hubspot-ratelimit-interval-milliseconds': String(limit.intervalMs),
      },
    };
  }

  function visible<T>(scoped: Scoped<T> | undefined, caller: Caller): T | undefined {
    if (scoped === undefined) return undefined;
    return scoped.portalId === undefined || scoped.portalId === caller.portalId ? scoped.value : undefined;
  }

  function getMessage(
    _request: IncomingRequest,
    _body: unknown,
    caller: Caller,
    params: readonly string[],
  ): FakeAnswer {
    const [threadId = '', messageId = ''] = params;
    const message = visible(messages.get(messageKey(threadId, messageId)), caller);
    if (message === undefined) {
      return hubSpotError(404, 'OBJECT_NOT_FOUND', `Message ${messageId} not found on thread ${threadId}`);
    }
    return { status: 200, body: message };
  }

  function getOriginalContent(
    _request: IncomingRequest,
    _body: unknown,
    caller: Caller,
    params: readonly string[],
  ): FakeAnswer {
    const [threadId = '', messageId = ''] = params;
    const key = messageKey(threadId, messageId);
    const message = visible(messages.get(key), caller);
    if (message === undefined) {
      return hubSpotError(404, 'OBJECT_NOT_FOUND', `Message ${messageId} not found on thread ${threadId}`);
    }
    const content = originalContents.get(key) ?? {
      text: message.text,
      richText: message.richText ?? message.text,
    };
    return { status: 200, body: content };
  }

  /**
   * GET …/threads/{threadId}/messages: the thread's history in pages of `limit` (HubSpot's
   * forward paging), `sort=createdAt` oldest first, `sort=-createdAt` newest first. HubSpot's
   * spec names `-createdAt` its default; without `sort` this fake serves oldest first, as it
   * always has (the callers that omit it read every page).
   */
  function listMessages(
    request: IncomingRequest,
    _body: unknown,
    caller: Caller,
    params: readonly string[],
  ): FakeAnswer {
    const [threadId = ''] = params;
    if (!threadIsKnown(threadId, caller))
      return hubSpotError(404, 'OBJECT_NOT_FOUND', `Thread ${threadId} not found`);
    const sort = request.query.get('sort');
    if (sort !== null && sort !== 'createdAt' && sort !== '-createdAt')
      return hubSpotError(400, 'VALIDATION_ERROR', `sort must be createdAt or -createdAt, not ${sort}`);
    const direction = sort === '-createdAt' ? -1 : 1;
    const all = [...(messagesByThread.get(threadId)?.values() ?? [])]
      .filter((scoped) => visible(scoped, caller) !== undefined)
      .map((scoped) => scoped.value)
      .sort((a, b) => direction * (Date.parse(a.createdAt) - Date.parse(b.createdAt)));
    const limit = Math.max(1, Math.min(500, Number(request.query.get('limit') ?? '20') || 20));
    const start = Number(request.query.get('after') ?? '0') || 0;
    const page = all.slice(start, start + limit);
    const next = start + limit < all.length ? { next: { after: String(start + limit) } } : undefined;
    return { status: 200, body: { results: page, ...(next ? { paging: next } : {}) } };
  }

  function getThread(
    request: IncomingRequest,
    _body: unknown,
    caller: Caller,
    params: readonly string[],
  ): FakeAnswer {
    const [threadId = ''] = params;
    const thread = visible(threads.get(threadId), caller);
    if (thread === undefined) return hubSpotError(404, 'OBJECT_NOT_FOUND', `Thread ${threadId} not found`);
    const { threadAssociations, ...withoutAssociations } = thread;
    const wantsTickets = request.query.getAll('association').includes('TICKET');
    return {
      status: 200,
      body: wantsTickets && threadAssociations !== undefined ? thread : withoutAssociations,
    };
  }

  /**
   * GET …/threads: HubSpot's thread list (CollectionResponsePublicThreadForwardPaging). With
   * `sort=latestMessageTimestamp`, `latestMessageTimestampAfter` (date-time) is required, as
   * HubSpot's spec says: threads whose latest message is at or after it, oldest activity first.
   * Without it, by id. A thread counts when it was set or has a message of the caller's portal;
   * its `latestMessageTimestamp` is its newest message's `createdAt`.
   */
  function listThreads(
    request: IncomingRequest,
    _body: unknown,
    caller: Caller,
    _params: readonly string[],
  ): FakeAnswer {
    const sort = request.query.get('sort') ?? 'id';
    if (sort !== 'id' && sort !== 'latestMessageTimestamp')
      return hubSpotError(400, 'VALIDATION_ERROR', `sort must be id or latestMessageTimestamp, not ${sort}`);
    const afterText = request.query.get('latestMessageTimestampAfter');
    if (sort === 'latestMessageTimestamp' && afterText === null)
      return hubSpotError(
        400,
        'VALIDATION_ERROR',
        'latestMessageTimestampAfter is required when sorting by latestMessageTimestamp',
      );
    const since = afterText === null ? Number.NEGATIVE_INFINITY : Date.parse(afterText);
    if (Number.isNaN(since))
      return hubSpotError(
        400,
        'VALIDATION_ERROR',
        `latestMessageTimestampAfter is not a date-time: ${afterText}`,
      );
    const listed = threadViews(caller).filter(
      (view) => view.latestMessageTimestamp === undefined || Date.parse(view.latestMessageTimestamp) >= since,
    );
    const ordered =
      sort === 'latestMessageTimestamp'
        ? listed
            .filter((view) => view.latestMessageTimestamp !== undefined)
            .sort(
              (a, b) =>
                Date.parse(a.latestMessageTimestamp ?? '') - Date.parse(b.latestMessageTimestamp ?? '') ||
                Number(a.id) - Number(b.id),
            )
        : listed.sort((a, b) => Number(a.id) - Number(b.id));
    const limit = Math.max(1, Math.min(500, Number(request.query.get('limit') ?? '20') || 20));
    const start = Number(request.query.get('after') ?? '0') || 0;
    const page = ordered.slice(start, start + limit);
    const next = start + limit < ordered.length ? { next: { after: String(start + limit) } } : undefined;
    return { status: 200, body: { results: page, ...(next ? { paging: next } : {}) } };
  }

  /** Every thread the caller's portal can see, with its latest message's time (PublicThread). */
  function threadViews(caller: Caller): ThreadView[] {
    const ids = new Set<string>();
    for (const [id, scoped] of threads) if (visible(scoped, caller) !== undefined) ids.add(id);
    for (const [id, thread] of messagesByThread)
      for (const scoped of thread.values())
        if (visible(scoped, caller) !== undefined) {
          ids.add(id);
          break;
        }
    return [...ids].map((id) => {
      const own = [...(messagesByThread.get(id)?.values() ?? [])]
        .filter((scoped) => visible(scoped, caller) !== undefined)
        .map((scoped) => scoped.value);
      const newest = (list: readonly HubSpotMessage[]) =>
        list.reduce<string | undefined>(
          (latest, entry) =>
            latest === undefined || Date.parse(entry.createdAt) > Date.parse(latest)
              ? entry.createdAt
              : latest,
          undefined,
        );
      const latest = newest(own);
      const received = newest(own.filter((entry) => entry.direction === 'INCOMING'));
      const sent = newest(own.filter((entry) => entry.direction === 'OUTGOING'));
      const stored = visible(threads.get(id), caller);
      const { threadAssociations: _associations, ...base } = stored ?? implicitThread(id, own[0]);
      return {
        ...base,
        ...(latest === undefined ? {} : { latestMessageTimestamp: latest }),
        ...(received === undefined ? {} : { latestMessageReceivedTimestamp: received }),
        ...(sent === undefined ? {} : { latestMessageSentTimestamp: sent }),
      };
    });
  }

  function threadIsKnown(threadId: string, caller: Caller): boolean {
    if (visible(threads.get(threadId), caller) !== undefined) return true;
    for (const scoped of messagesByThread.get(threadId)?.values() ?? [])
      if (visible(scoped, caller) !== undefined) return true;
    return false;
  }

  function postMessage(
    _request: IncomingRequest,
    body: unknown,
    caller: Caller,
    params: readonly string[],
  ): FakeAnswer {
    const [threadId = ''] = params;
    const problems = outgoingMessageProblems(body);
    if (problems.length > 0) return hubSpotError(400, 'VALIDATION_ERROR', problems.join('; '));
    if (!threadIsKnown(threadId, caller))
      return hubSpotError(404, 'OBJECT_NOT_FOUND', `Thread ${threadId} not found`);
    const message = storedOutgoingMessage(body as OutgoingMessageBody, threadId, appId);
    storeMessage(threadId, { value: message, portalId: caller.portalId });
    posted.push({ threadId, portalId: caller.portalId, body, message, at: Date.now() });
    return { status: 201, body: message };
  }

  function getNote(
    request: IncomingRequest,
    _body: unknown,
    caller: Caller,
    params: readonly string[],
  ): FakeAnswer {
    const [noteId = ''] = params;
    const note = visible(notes.get(noteId), caller);
    if (note === undefined) {
      return hubSpotError(404, 'OBJECT_NOT_FOUND', 'Object not found.  objectId are usually numeric.');
    }
    return { status: 200, body: noteView(note, request.query) };
  }

  function exchangeToken(request: IncomingRequest): FakeAnswer {
    const form = new URLSearchParams(request.rawBody);
    if (options.clientId !== undefined && form.get('client_id') !== options.clientId) {
      return { status: 400, body: { status: 'BAD_CLIENT_ID', message: 'missing or unknown client id' } };
    }
    if (options.clientSecret !== undefined && form.get('client_secret') !== options.clientSecret) {
      return {
        status: 400,
        body: { status: 'BAD_CLIENT_SECRET', message: 'missing or invalid client secret' },
      };
    }
    const grantType = form.get('grant_type');
    if (grantType === 'authorization_code') {
      const portal = oauthCodes.get(form.get('code') ?? '');
      if (portal === undefined)
        return { status: 400, body: { status: 'BAD_AUTH_CODE', message: 'missing or unknown auth code' } };
      // An authorization code is good for one exchange only.
      oauthCodes.delete(portal.code);
      return { status: 200, body: issueTokens(portal) };
    }
    if (grantType === 'refresh_token') {
      const portal = refreshTokens.get(form.get('refresh_token') ?? '');
      if (portal === undefined) {
        return {
          status: 400,
          body: { status: 'BAD_REFRESH_TOKEN', message: 'missing or unknown refresh token' },
        };
      }
      return { status: 200, body: issueTokens(portal, form.get('refresh_token') ?? undefined) };
    }
    return {
      status: 400,
      body: { status: 'BAD_GRANT_TYPE', message: `unsupported grant_type ${grantType ?? ''}` },
    };
  }

  function issueTokens(portal: OAuthPortal, keepRefreshToken?: string): OAuthTokens {
    const accessToken = `fake-access-${randomUUID()}`;
    const refreshToken = keepRefreshToken ?? `fake-refresh-${randomUUID()}`;
    tokens.set(accessToken, portal.portalId);
    tokenInfo.set(accessToken, portal);
    refreshTokens.set(refreshToken, portal);
    return {
      access_token: accessToken,
      refresh_token: refreshToken,
      expires_in: portal.tokenLifetimeSeconds ?? ACCESS_TOKEN_LIFETIME_SECONDS,
      token_type: 'bearer',
    };
  }

  function describeToken(token: string): FakeAnswer {
    const portal = tokenInfo.get(token);
    if (portal === undefined || !tokens.has(token)) {
      return {
        status: 404,
        body: { status: 'error', message: 'Token not found', category: 'OBJECT_NOT_FOUND' },
      };
    }
    return {
      status: 200,
      body: {
        token,
        user: portal.user ?? 'installer@example.com',
        hub_domain: portal.hubDomain ?? `portal-${portal.portalId}.example.com`,
        scopes: portal.scopes ?? ['conversations.read', 'conversations.write', 'tickets', 'oauth'],
        hub_id: portal.portalId,
        app_id: appId,
        expires_in: portal.tokenLifetimeSeconds ?? ACCESS_TOKEN_LIFETIME_SECONDS,
        user_id: 1,
        token_type: 'access',
      },
    };
  }

  const server = await startLoopbackServer(answer);

  return {
    url: server.url,
    requests,
    posted,
    addMessage: (message, scope = {}) => {
      storeMessage(message.conversationsThreadId, { value: message, portalId: scope.portalId });
    },
    setOriginalContent: (threadId, messageId, content) => {
      originalContents.set(messageKey(threadId, messageId), content);
    },
    setThread: (thread, scope = {}) => {
      threads.set(thread.id, { value: thread, portalId: scope.portalId });
    },
    addNote: (note, scope = {}) => {
      notes.set(note.id, { value: note, portalId: scope.portalId });
    },
    addOAuthPortal: (portal) => {
      oauthCodes.set(portal.code, portal);
    },
    setToken: (token, portalId) => {
      tokens.set(token, portalId);
    },
    revokeToken: (token) => {
      tokens.delete(token);
    },
    setRateLimit: (portalId, limit) => {
      rateLimits.set(portalId, limit);
      recentRequests.delete(portalId);
    },
    failNext: (rule) => faults.failNext(rule),
    setLatency: (ms) => {
      latencyMs = ms;
    },
    hold: (pathPattern) => holds.hold(pathPattern),
    reset: () => {
      holds.releaseAll();
      faults.clear();
      latencyMs = 0;
      restoreTokens();
      for (const store of [
        messages,
        messagesByThread,
        originalContents,
        threads,
        notes,
        oauthCodes,
        refreshTokens,
        tokenInfo,
        rateLimits,
        recentRequests,
      ]) {
        store.clear();
      }
      requests.length = 0;
      posted.length = 0;
    },
    close: async () => {
      holds.releaseAll();
      await server.close();
    },
  };
}

/** A thread in the list: HubSpot's PublicThread with its latest message times. */
type ThreadView = Omit<HubSpotThread, 'threadAssociations'> & {
  readonly latestMessageTimestamp?: string;
  readonly latestMessageReceivedTimestamp?: string;
  readonly latestMessageSentTimestamp?: string;
};

/** The thread HubSpot holds for messages added without `setThread`: built from its first message. */
function implicitThread(id: string, first: HubSpotMessage | undefined): HubSpotThread {
  return {
    id,
    status: 'OPEN',
    inboxId: '147959634',
    associatedContactId: '75761595194',
    createdAt: first?.createdAt ?? new Date(0).toISOString(),
    originalChannelId: first?.channelId ?? '1000',
    originalChannelAccountId: first?.channelAccountId ?? '240183460',
    archived: false,
    spam: false,
  };
}

function tokenEntries(tokens: FakeHubSpotOptions['tokens']): Record<string, number> {
  if (tokens === undefined) return {};
  return tokens instanceof Map
    ? (Object.fromEntries(tokens) as Record<string, number>)
    : { ...(tokens as Readonly<Record<string, number>>) };
}

function messageKey(threadId: string, messageId: string): string {
  return `${threadId}/${messageId}`;
}

interface OutgoingMessageBody {
  readonly type: 'MESSAGE' | 'COMMENT';
  readonly text: string;
  readonly richText?: string;
  readonly subject?: string;
  readonly senderActorId?: string;
  readonly channelId?: string | number;
  readonly channelAccountId?: string | number;
  readonly recipients?: readonly HubSpotParticipant[];
  readonly attachments: readonly unknown[];
}

/**
 * HubSpot's PublicConversationsMessageEgg / PublicCommentEgg: a public reply needs an agent
 * sender, the channel and channel account, recipients and attachments; a comment needs text and
 * attachments. Ids are accepted as numbers too, as HubSpot's JSON binding coerces them.
 */
function outgoingMessageProblems(body: unknown): string[] {
  if (!isRecord(body)) return ['body must be a JSON object'];
  const problems: string[] = [];
  if (body['type'] !== 'MESSAGE' && body['type'] !== 'COMMENT')
    problems.push('type must be MESSAGE or COMMENT');
  if (typeof body['text'] !== 'string' || body['text'] === '') problems.push('text is required');
  if (!Array.isArray(body['attachments'])) problems.push('attachments must be an array');
  if (body['type'] !== 'MESSAGE') return problems;
  const sender = body['senderActorId'];
  if (typeof sender !== 'string' || !sender.startsWith('A-'))
    problems.push('senderActorId must be an agent actor (A-…)');
  if (!isIdentifier(body['channelId'])) problems.push('channelId is required');
  if (!isIdentifier(body['channelAccountId'])) problems.push('channelAccountId is required');
  const recipients = body['recipients'];
  if (!Array.isArray(recipients) || !recipients.every(isRecipient)) {
    problems.push('recipients must be an array of {actorId | deliveryIdentifiers}');
  }
  return problems;
}

function isRecipient(value: unknown): boolean {
  return (
    isRecord(value) && (typeof value['actorId'] === 'string' || Array.isArray(value['deliveryIdentifiers']))
  );
}

function isIdentifier(value: unknown): boolean {
  return (
    (typeof value === 'string' && value !== '') || (typeof value === 'number' && Number.isInteger(value))
  );
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** What HubSpot stores for a message posted through the API: the app is its client. */
function storedOutgoingMessage(body: OutgoingMessageBody, threadId: string, appId: number): HubSpotMessage {
  const id = randomBytes(16).toString('hex');
  const createdAt = new Date().toISOString();
  const client = { clientType: 'INTEGRATION' as const, integrationAppId: appId };
  if (body.type === 'COMMENT') {
    const author = `I-${appId}`;
    return {
      id,
      type: 'COMMENT',
      text: body.text,
      richText: body.richText ?? body.text,
      conversationsThreadId: threadId,
      createdAt,
      createdBy: author,
      client,
      senders: [{ actorId: author }],
      recipients: [],
      attachments: body.attachments,
      archived: false,
    };
  }
  const sender = body.senderActorId ?? '';
  return {
    id,
    type: 'MESSAGE',
    text: body.text,
    richText: body.richText ?? body.text,
    ...(body.subject === undefined ? {} : { subject: body.subject }),
    direction: 'OUTGOING',
    channelId: String(body.channelId),
    channelAccountId: String(body.channelAccountId),
    conversationsThreadId: threadId,
    createdAt,
    createdBy: sender,
    client,
    senders: [{ actorId: sender }],
    recipients: body.recipients ?? [],
    attachments: body.attachments,
    truncationStatus: 'NOT_TRUNCATED',
    archived: false,
  };
}

// HubSpot returns only the properties asked for (plus its defaults) and associations only when asked.
function noteView(note: HubSpotNote, query: URLSearchParams) {
  const createdAt = note.createdAt ?? note.properties.hs_timestamp;
  const defaults: Record<string, string | null> = {
    hs_object_id: note.id,
    hs_createdate: createdAt,
    hs_lastmodifieddate: note.updatedAt ?? createdAt,
  };
  const asked = listParam(query, 'properties');
  const properties = Object.fromEntries(
    asked.filter((name) => name in note.properties).map((name) => [name, note.properties[name] ?? null]),
  );
  const wantsTickets = listParam(query, 'associations').includes('tickets');
  return {
    id: note.id,
    properties: { ...defaults, ...properties },
    createdAt,
    updatedAt: note.updatedAt ?? createdAt,
    archived: false,
    ...(wantsTickets && note.associations?.tickets !== undefined
      ? { associations: { tickets: note.associations.tickets } }
      : {}),
  };
}

/** `?properties=a,b` and `?properties=a&properties=b` both appear in HubSpot clients. */
function listParam(query: URLSearchParams, name: string): string[] {
  return query
    .getAll(name)
    .flatMap((value) => value.split(','))
    .map((value) => value.trim())
    .filter(Boolean);
}

function hubSpotError(status: number, category: string, message: string): FakeAnswer {
  return { status, body: { status: 'error', message, correlationId: randomUUID(), category } };
}

function rateLimitedAnswer(): FakeAnswer {
  return {
    status: 429,
    body: {
      status: 'error',
      message: 'You have reached your ten_secondly_rolling limit.',
      errorType: 'RATE_LIMIT',
      correlationId: randomUUID(),
      policyName: 'TEN_SECONDLY_ROLLING',
    },
  };
}

function faultAnswer(rule: FaultRule): FakeAnswer {
  const body =
    rule.body ??
    (rule.status === 429
      ? rateLimitedAnswer().body
      : {
          status: 'error',
          message: 'injected fault',
          correlationId: randomUUID(),
          category: 'INTERNAL_ERROR',
        });
  return { status: rule.status, body, headers: retryAfterHeaders(rule) };
}
