import type { Context } from 'koa';
import getRawBody from 'raw-body';

/** The largest webhook or admin body ingest reads (contract: 413 above 1 MiB). */
export const MAX_BODY_BYTES = 1024 * 1024;

/** An answer other than 2xx: rendered by the app's one error handler as `{"error","detail"}`. */
export class HttpError extends Error {
  readonly status: number;
  readonly code: string;
  readonly detail: string;
  constructor(status: number, code: string, detail: string) {
    super(`${code}: ${detail}`);
    this.status = status;
    this.code = code;
    this.detail = detail;
  }
}

/** The raw body, at most MAX_BODY_BYTES: 413 above, 400 when it cannot be read. */
export const readBody = async (ctx: Context): Promise<Buffer> => {
  try {
    return await getRawBody(ctx.req, { limit: MAX_BODY_BYTES });
  } catch (error) {
    const type = (error as { type?: string }).type;
    if (type === 'entity.too.large')
      throw new HttpError(413, 'payload_too_large', `body over ${MAX_BODY_BYTES} bytes`);
    throw new HttpError(400, 'unreadable_body', String((error as Error).message));
  }
};

/** The base URL HubSpot and browsers reach ingest on: PUBLIC_BASE_URL, else the request's own. */
export const publicBaseUrl = (ctx: Context, configured: string | undefined): string =>
  configured ? configured.replace(/\/$/, '') : `${ctx.protocol}://${ctx.host}`;
