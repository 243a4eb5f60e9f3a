import { ErrorCode, PipelineError } from '../../../../lib/errors.ts';
import { httpRequest, jsonBodyOf, type HttpAnswer, type HttpMethod } from '../../../../lib/http.ts';

/** OpenCX calls the pipeline makes (contract.md; schemas/opencx-api.yaml documents every one). */
export type OpenCxApi = {
  readonly createSession: (
    body: { channel: { type: string }; custom_data: Record<string, string> },
    idempotencyKey: string,
  ) => Promise<{ id: string }>;
  readonly sendContactMessage: (
    sessionId: string,
    text: string,
    idempotencyKey: string,
  ) => Promise<{ aiText: string | null }>;
  readonly addAgentMessage: (
    sessionId: string,
    body: { text: string; actor_id: string; internal: boolean; created_at: string },
    idempotencyKey: string,
  ) => Promise<void>;
  readonly handOff: (
    sessionId: string,
    body: { reason: 'assigned_away'; assignee_actor_id: string | null },
    idempotencyKey: string,
  ) => Promise<void>;
  readonly setCustomData: (
    sessionId: string,
    data: Record<string, string>,
    idempotencyKey: string,
  ) => Promise<void>;
  readonly addAgentComment: (
    sessionId: string,
    body: { text: string; hubspot_note_id: string; author_owner_id: string | null; created_at: string },
    idempotencyKey: string,
  ) => Promise<void>;
};

export type OpenCxOptions = {
  readonly baseUrl: string;
  readonly apiKey: string;
  readonly timeoutMs: number;
  /** Per-organisation rate limit, shared across replicas. */
  readonly beforeRequest?: () => Promise<void>;
};

/** 5xx, 429 and timeouts are retriable (429 with its Retry-After); other answers are final. */
export const classifyOpenCxResponse = (response: HttpAnswer, what: string): unknown => {
  if (response.ok) return jsonBodyOf(response, what, 'opencx');
  const body = response.text.slice(0, 300);
  if (response.status === 429 || response.status >= 500) {
    const retryAfter = Number(response.header('retry-after') ?? '');
    throw new PipelineError(
      response.status === 429 ? ErrorCode.upstreamRateLimited : ErrorCode.upstreamUnavailable,
      `${what}: OpenCX answered ${response.status} ${body}`,
      {
        retriable: true,
        ...(Number.isFinite(retryAfter) && retryAfter > 0 ? { retryAfterMs: retryAfter * 1000 } : {}),
      },
    );
  }
  const code =
    response.status === 401 || response.status === 403
      ? ErrorCode.upstreamUnauthorized
      : ErrorCode.upstreamRejected;
  throw new PipelineError(code, `${what}: OpenCX answered ${response.status} ${body}`, {
    upstream: 'opencx',
    retriable: false,
    status: response.status,
  });
};

export const createOpenCxApi = (options: OpenCxOptions): OpenCxApi => {
  const base = options.baseUrl.replace(/\/$/, '');
  const call = async (
    what: string,
    method: HttpMethod,
    path: string,
    body: unknown,
    idempotencyKey: string,
  ): Promise<unknown> => {
    await options.beforeRequest?.();
    let response: HttpAnswer;
    try {
      response = await httpRequest(`${base}${path}`, {
        method,
        headers: {
          authorization: `Bearer ${options.apiKey}`,
          'content-type': 'application/json',
          accept: 'application/json',
          'idempotency-key': idempotencyKey,
        },
        body: JSON.stringify(body),
        timeoutMs: options.timeoutMs,
      });
    } catch (error) {
      throw new PipelineError(
        ErrorCode.upstreamUnavailable,
        `${what}: OpenCX unreachable or slow: ${String(error)}`,
        { upstream: 'opencx', retriable: true, cause: error },
      );
    }
    return classifyOpenCxResponse(response, what);
  };
  const session = (id: string): string => `/chat/sessions/${encodeURIComponent(id)}`;

  return {
    createSession: async (body, key) => {
      const answer = (await call('create session', 'POST', '/chat/sessions', body, key)) as
        { id?: unknown } | undefined;
      if (typeof answer?.id !== 'string')
        throw new PipelineError(ErrorCode.upstreamRejected, 'create session: OpenCX answered without an id', {
          upstream: 'opencx',
          retriable: false,
        });
      return { id: answer.id };
    },
    sendContactMessage: async (sessionId, text, key) => {
      const answer = (await call(
        'send message',
        'POST',
        `${session(sessionId)}/send`,
        { sender: 'contact', message: { type: 'text', text } },
        key,
      )) as { ai_response?: { text?: unknown } | null } | undefined;
      const aiText = answer?.ai_response?.text;
      return { aiText: typeof aiText === 'string' && aiText.trim() !== '' ? aiText : null };
    },
    addAgentMessage: async (sessionId, body, key) => {
      await call('add agent message', 'POST', `${session(sessionId)}/agent-messages`, body, key);
    },
    handOff: async (sessionId, body, key) => {
      await call('hand off', 'POST', `${session(sessionId)}/handoff`, body, key);
    },
    setCustomData: async (sessionId, data, key) => {
      await call('set custom data', 'PATCH', `${session(sessionId)}/custom-data`, data, key);
    },
    addAgentComment: async (sessionId, body, key) => {
      await call('add agent comment', 'POST', `${session(sessionId)}/agent-comments`, body, key);
    },
  };
};
