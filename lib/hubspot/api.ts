import { z } from 'zod';
import { ErrorCode, PipelineError } from '../errors.ts';
import { httpRequest, jsonBodyOf, type HttpAnswer, type HttpMethod } from '../http.ts';
import { CallClass } from '../rate-limiter.ts';
import { checkHubSpotMessage, checkHubSpotMessageContent, type Checked } from './message-check.ts';
import {
  HubSpotMessage,
  HubSpotNote,
  HubSpotThread,
  HubSpotThreadActivity,
  type HubSpotMessageContent,
  type OutgoingMessage,
} from './messages.ts';

/**
 * Every Conversations path starts here. HubSpot now also publishes date-versioned paths
 * (e.g. /conversations/conversations/2026-09-beta/threads) and files v3 under "legacy":
 * moving to one is this one edit.
 */
export const CONVERSATIONS_THREADS_PATH = '/conversations/v3/conversations/threads';

/** Why a HubSpot call is made: a metric label, and what decides its place in the budget. */
export const HubSpotCallPurpose = {
  refetchMessage: 'refetch_message',
  originalContent: 'original_content',
  note: 'note',
  ticketLookup: 'ticket_lookup',
  ticketLookupAwaited: 'ticket_lookup_awaited',
  postReply: 'post_reply',
  threadHistory: 'thread_history',
  reconcileThreads: 'reconcile_threads',
  reconcileMessages: 'reconcile_messages',
} as const;
export type HubSpotCallPurpose = (typeof HubSpotCallPurpose)[keyof typeof HubSpotCallPurpose];

/**
 * Who waits on each purpose. A customer waits on the re-fetch of their message, its original
 * content, the AI's answer and the history read that guards that answer against a double post.
 * Nobody waits on a ticket look-up while no ticket event waits for its link: it can be made when
 * the portal has room. Once the portal holds ticket or note events for a link, its look-ups are
 * awaited (a help desk's first changes of a new ticket wait on them) and take customer slots. Note fetches stay customer-class: they are rare (one per
 * note a rep writes on a linked ticket), the processor has no later moment to fetch them (its
 * event would be given up), and a rep reads them in OpenCX next to the conversation.
 * The reconciler's reads (threads by latest activity, their recent messages) are bookkeeping:
 * nobody waits on them, and a run the budget has no room for is made later.
 */
export const callClassOf = {
  refetch_message: CallClass.customer,
  original_content: CallClass.customer,
  note: CallClass.customer,
  ticket_lookup: CallClass.bookkeeping,
  ticket_lookup_awaited: CallClass.customer,
  post_reply: CallClass.customer,
  thread_history: CallClass.customer,
  reconcile_threads: CallClass.bookkeeping,
  reconcile_messages: CallClass.bookkeeping,
} as const satisfies Record<HubSpotCallPurpose, CallClass>;

/** What the pipeline asks of HubSpot for one portal. */
export type HubSpotApi = {
  readonly getMessage: (threadId: string, messageId: string) => Promise<HubSpotMessage>;
  /** The full body of a truncated message (long emails): `…/messages/{id}/original-content`. */
  readonly getOriginalContent: (threadId: string, messageId: string) => Promise<HubSpotMessageContent>;
  /** `awaited`: ticket or note events wait for what it tells (customer class, not bookkeeping). */
  readonly getThread: (threadId: string, options?: { readonly awaited?: boolean }) => Promise<HubSpotThread>;
  readonly getNote: (noteId: string) => Promise<HubSpotNote>;
  readonly postMessage: (threadId: string, message: OutgoingMessage) => Promise<{ id: string }>;
  /** The thread's message history (all pages, up to `maxPages` of 100). */
  readonly listMessages: (threadId: string, maxPages?: number) => Promise<HubSpotMessage[]>;
  /**
   * One page (up to 100) of the threads whose latest message is at or after `since` (epoch ms),
   * oldest activity first: the thread list sorted by `latestMessageTimestamp`. Bookkeeping.
   */
  readonly listThreadsSince: (since: number, after?: string) => Promise<Page<HubSpotThreadActivity>>;
  /** One page (up to 100) of a thread's messages, newest first (`sort=-createdAt`). Bookkeeping. */
  readonly listThreadMessages: (threadId: string, after?: string) => Promise<Page<HubSpotMessage>>;
};

/** A page of a HubSpot list, and the cursor of the next one (none on the last page). */
export type Page<T> = { readonly results: readonly T[]; readonly after: string | undefined };

/** How `call` takes an answer apart: a zod schema (`viaSchema`) or a hand check (message-check.ts). */
type Check<T> = (json: unknown) => Checked<T>;

const viaSchema =
  <S extends z.ZodType>(schema: S): Check<z.infer<S>> =>
  (json) => {
    const parsed = schema.safeParse(json);
    return parsed.success
      ? { success: true, data: parsed.data }
      : { success: false, message: parsed.error.issues[0]?.message ?? '' };
  };

const paging = z.looseObject({ next: z.looseObject({ after: z.string() }).nullish() }).nullish();
const MessagePage = z.looseObject({ results: z.array(HubSpotMessage), paging });
const ThreadPage = z.looseObject({ results: z.array(HubSpotThreadActivity), paging });

export type HubSpotApiOptions = {
  readonly baseUrl: string;
  readonly accessToken: string;
  readonly timeoutMs: number;
  /**
   * Called before every request: per-portal rate limiting, shared across replicas, by purpose.
   * A rejection (no slot for a bookkeeping call) stops the request before it is sent.
   */
  readonly beforeRequest?: (purpose: HubSpotCallPurpose) => Promise<void>;
};

/**
 * Turns a HubSpot answer into a value or a classified error. Every status is handled here: 429
 * and 5xx are retriable (429 with HubSpot's interval as the wait), 401 means the token is gone,
 * other 4xx are the input's fault.
 */
export const classifyHubSpotResponse = (response: HttpAnswer, what: string): unknown => {
  if (response.ok) return jsonBodyOf(response, what, 'hubspot');
  const body = response.text;
  if (response.status === 429) {
    const daily = body.includes('"DAILY"');
    const interval = Number(response.header('x-hubspot-ratelimit-interval-milliseconds') ?? '');
    const retryAfter = Number(response.header('retry-after') ?? '');
    const retryAfterMs = daily
      ? 60 * 60 * 1000
      : Number.isFinite(retryAfter) && retryAfter > 0
        ? retryAfter * 1000
        : Number.isFinite(interval) && interval > 0
          ? Math.min(interval, 10000)
          : 1000;
    throw new PipelineError(
      ErrorCode.upstreamRateLimited,
      `${what}: HubSpot rate limit (${daily ? 'DAILY' : 'TEN_SECONDLY_ROLLING'})`,
      { upstream: 'hubspot', retriable: true, retryAfterMs },
    );
  }
  if (response.status >= 500) {
    throw new PipelineError(ErrorCode.upstreamUnavailable, `${what}: HubSpot answered ${response.status}`, {
      upstream: 'hubspot',
      retriable: true,
    });
  }
  if (response.status === 401) {
    throw new PipelineError(
      ErrorCode.upstreamUnauthorized,
      `${what}: HubSpot rejected the access token (401): reconnect the HubSpot app`,
      { upstream: 'hubspot', retriable: false },
    );
  }
  throw new PipelineError(
    ErrorCode.upstreamRejected,
    `${what}: HubSpot answered ${response.status}: ${body.slice(0, 300)}`,
    { upstream: 'hubspot', retriable: false },
  );
};

export const createHubSpotApi = (options: HubSpotApiOptions): HubSpotApi => {
  // Retries and the per-portal limiter are done by the callers (withRetry, beforeRequest).
  const base = options.baseUrl.replace(/\/$/, '');
  const headers = { authorization: `Bearer ${options.accessToken}`, accept: 'application/json' };
  const jsonHeaders = { ...headers, 'content-type': 'application/json' };

  const call = async <T>(
    purpose: HubSpotCallPurpose,
    what: string,
    check: Check<T>,
    method: HttpMethod,
    path: string,
    body?: unknown,
  ): Promise<T> => {
    await options.beforeRequest?.(purpose);
    let response: HttpAnswer;
    try {
      response = await httpRequest(`${base}${path}`, {
        method,
        headers: body === undefined ? headers : jsonHeaders,
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        timeoutMs: options.timeoutMs,
      });
    } catch (error) {
      const timedOut =
        error instanceof Error && (error.name === 'TimeoutError' || error.name === 'AbortError');
      throw new PipelineError(
        ErrorCode.upstreamUnavailable,
        timedOut
          ? `${what}: no answer within ${options.timeoutMs} ms`
          : `${what}: HubSpot unreachable: ${String(error)}`,
        { upstream: 'hubspot', retriable: true, cause: error },
      );
    }
    const json = classifyHubSpotResponse(response, what);
    const checked = check(json);
    if (!checked.success) {
      throw new PipelineError(
        ErrorCode.upstreamRejected,
        `${what}: unexpected HubSpot answer: ${checked.message}`,
        { upstream: 'hubspot', retriable: false },
      );
    }
    return checked.data;
  };

  const threads = CONVERSATIONS_THREADS_PATH;
  const enc = encodeURIComponent;
  return {
    getMessage: (threadId, messageId) =>
      call(
        HubSpotCallPurpose.refetchMessage,
        `GET message ${messageId}`,
        // Every customer message is re-fetched: checked by hand, zod cost ~4 % of the processor.
        checkHubSpotMessage,
        'GET',
        `${threads}/${enc(threadId)}/messages/${enc(messageId)}`,
      ),
    getOriginalContent: (threadId, messageId) =>
      call(
        HubSpotCallPurpose.originalContent,
        `GET original content of message ${messageId}`,
        checkHubSpotMessageContent,
        'GET',
        `${threads}/${enc(threadId)}/messages/${enc(messageId)}/original-content`,
      ),
    getThread: (threadId, { awaited = false } = {}) =>
      call(
        awaited ? HubSpotCallPurpose.ticketLookupAwaited : HubSpotCallPurpose.ticketLookup,
        `GET thread ${threadId}`,
        viaSchema(HubSpotThread),
        'GET',
        `${threads}/${enc(threadId)}?association=TICKET`,
      ),
    getNote: (noteId) =>
      call(
        HubSpotCallPurpose.note,
        `GET note ${noteId}`,
        viaSchema(HubSpotNote),
        'GET',
        `/crm/v3/objects/notes/${enc(noteId)}?properties=hs_note_body,hs_timestamp,hubspot_owner_id&associations=tickets`,
      ),
    listMessages: async (threadId, maxPages = 10) => {
      const messages: HubSpotMessage[] = [];
      let after: string | undefined;
      for (let page = 0; page < maxPages; page++) {
        const query = `limit=100${after === undefined ? '' : `&after=${enc(after)}`}`;
        const answer = await call(
          HubSpotCallPurpose.threadHistory,
          `GET messages of thread ${threadId}`,
          viaSchema(MessagePage),
          'GET',
          `${threads}/${enc(threadId)}/messages?${query}`,
        );
        messages.push(...answer.results);
        after = answer.paging?.next?.after;
        if (after === undefined) break;
      }
      return messages;
    },
    listThreadsSince: async (since, after) => {
      const query = new URLSearchParams({
        sort: 'latestMessageTimestamp',
        latestMessageTimestampAfter: new Date(since).toISOString(),
        limit: '100',
        ...(after === undefined ? {} : { after }),
      });
      const answer = await call(
        HubSpotCallPurpose.reconcileThreads,
        `GET threads active since ${new Date(since).toISOString()}`,
        viaSchema(ThreadPage),
        'GET',
        `${threads}?${query.toString()}`,
      );
      return { results: answer.results, after: answer.paging?.next?.after };
    },
    listThreadMessages: async (threadId, after) => {
      const query = `sort=-createdAt&limit=100${after === undefined ? '' : `&after=${enc(after)}`}`;
      const answer = await call(
        HubSpotCallPurpose.reconcileMessages,
        `GET recent messages of thread ${threadId}`,
        viaSchema(MessagePage),
        'GET',
        `${threads}/${enc(threadId)}/messages?${query}`,
      );
      return { results: answer.results, after: answer.paging?.next?.after };
    },
    postMessage: async (threadId, message) => {
      const posted = await call(
        HubSpotCallPurpose.postReply,
        `POST message on thread ${threadId}`,
        viaSchema(HubSpotMessage),
        'POST',
        `${threads}/${enc(threadId)}/messages`,
        message,
      );
      return { id: posted.id };
    },
  };
};
