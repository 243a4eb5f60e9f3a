/**
 * How a console page is answered: hardened headers, HTML errors, the session cookie, and the one
 * wrapper every page but the sign-in goes through (a session, and the CSRF token on a form POST).
 */
import type { Context } from 'koa';
import type { Kafka } from 'kafkajs';
import { HttpError, readBody } from '../../../../lib/http-server.ts';
import type { Topics } from '../../../../lib/kafka/index.ts';
import type { Logger } from '../../../../lib/log.ts';
import type { OrgDirectory, OrgRepository } from '../../../../lib/orgs/index.ts';
import type { ReconcileWatermarks } from '../../../../lib/reconcile-watermarks.ts';
import type { Redis } from '../../../../lib/redis.ts';
import type { AvroCodec } from '../../../../lib/registry.ts';
import type { SignedToken } from '../../../../lib/signed-tokens.ts';
import type { Html } from '../html.ts';
import { errorPage } from '../pages/index.ts';
import type { ConsoleSession, SessionSigner } from '../session.ts';

export type ConsoleDeps = {
  /** Undefined: the console answers 503 (as the admin API does). */
  readonly adminToken: string | undefined;
  /** Signs sessions (with the admin token's hash): every replica accepts the same sessions. */
  readonly secretsKey: Buffer;
  /** Where browsers reach ingest: the install links point there. */
  readonly ingestPublicUrl: string;
  readonly kafka: Kafka;
  readonly codec: AvroCodec;
  readonly topics: Topics;
  readonly orgs: Pick<OrgDirectory, 'storedRecords' | 'lookupById' | 'unreadable' | 'byPortal'>;
  readonly orgRepository: Pick<OrgRepository, 'updateSettings'>;
  /** Each organisation's last reconcile with HubSpot, as the processor's reconciler recorded it. */
  readonly watermarks: Pick<ReconcileWatermarks, 'get' | 'catchUp'>;
  /** Replay markers (lib/dead-letters): the same Redis and prefix as `npm run dlq`. */
  readonly redis: Redis;
  readonly redisKeyPrefix: string;
  /** Signs "connect HubSpot" links; undefined when the OAuth app is not configured. */
  readonly installGrants: SignedToken | undefined;
  readonly logger: Logger;
  readonly now: () => number;
  readonly limits: {
    /** Records read per topic per page, at most. */
    readonly maxRecords: number;
    readonly readTimeoutMs: number;
    readonly sessionTtlMs: number;
  };
};

export type Form = URLSearchParams;
export type SignedIn = { readonly session: ConsoleSession; readonly csrf: string };
export type PageContext = Context & { params: Record<string, string> };
export type PageHandler = (ctx: PageContext, signedIn: SignedIn, form: Form | undefined) => Promise<void>;

const COOKIE = 'console_session';

export const send = (ctx: Context, page: Html, status = 200): void => {
  ctx.status = status;
  ctx.type = 'text/html; charset=utf-8';
  ctx.body = page.text;
};

/** A 303 to another console page (after a form, or to the sign-in). */
export const seeOther = (ctx: Context, location: string): void => {
  ctx.status = 303;
  ctx.redirect(location);
};

/** Headers on every console answer: no caching, no framing, no scripts, no referrer. */
export const hardened = (ctx: Context): void => {
  ctx.set('Cache-Control', 'no-store');
  ctx.set('X-Frame-Options', 'DENY');
  ctx.set('Referrer-Policy', 'no-referrer');
  ctx.set(
    'Content-Security-Policy',
    "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
  );
};

/** The answer of every console page while ADMIN_TOKEN is not set. */
export const sendConsoleOff = (ctx: Context): void =>
  send(
    ctx,
    errorPage({ status: 503, text: 'The console is off: set ADMIN_TOKEN on the console to enable it.' }),
    503,
  );

export const readForm = async (ctx: Context): Promise<Form> =>
  new URLSearchParams((await readBody(ctx)).toString('utf8'));

export const queryText = (ctx: Context, name: string): string | undefined => {
  const value = ctx.query[name];
  const text = (Array.isArray(value) ? value[0] : value)?.trim();
  return text ? text : undefined;
};

/** A path inside the console, never another site (the sign-in form's `next`). */
export const safeNext = (next: string | null | undefined): string =>
  next && /^\/console(\/[A-Za-z0-9/_.?=&%-]*)?$/.test(next) && !next.startsWith('//')
    ? next
    : '/console/orgs';

export const oneLine = (error: unknown): string =>
  (error instanceof Error ? error.message : String(error)).replace(/\s+/g, ' ').slice(0, 300);

export const sessionOf = (ctx: Context, signer: SessionSigner): ConsoleSession | undefined =>
  signer.open(ctx.cookies.get(COOKIE));

export const setSessionCookie = (ctx: Context, value: string, maxAgeMs: number): void => {
  // Written by hand: koa's cookies refuse `Secure` on a plain socket behind a TLS proxy.
  ctx.append(
    'Set-Cookie',
    `${COOKIE}=${value}; Path=/console; Max-Age=${Math.floor(maxAgeMs / 1000)}; HttpOnly; SameSite=Strict${ctx.secure ? '; Secure' : ''}`,
  );
};

/**
 * The wrapper of every page but the sign-in: HTML errors, hardened headers, a session (and the
 * CSRF token on a form POST). A handler throws an HttpError to answer with its status and text.
 */
export const createPageRunner =
  (signer: SessionSigner | undefined, logger: Logger) =>
  (handler: PageHandler, options: { readonly form: boolean } = { form: false }) =>
  async (ctx: PageContext): Promise<void> => {
    hardened(ctx);
    if (!signer) return sendConsoleOff(ctx);
    const session = sessionOf(ctx, signer);
    if (!session) {
      const next = ctx.method === 'GET' ? ctx.originalUrl : '/console/orgs';
      return seeOther(ctx, `/console/sign-in?next=${encodeURIComponent(safeNext(next))}`);
    }
    const signedIn = { session, csrf: signer.csrfToken(session) };
    try {
      let form: Form | undefined;
      if (options.form) {
        form = await readForm(ctx);
        if (!signer.csrfMatches(session, form.get('csrf') ?? undefined)) {
          logger.warn({ path: ctx.path }, 'console: form refused (CSRF token missing or wrong)');
          throw new HttpError(
            403,
            'csrf',
            'This form is missing its CSRF token (or it is from another session): reload the page and submit it again.',
          );
        }
      }
      await handler(ctx, signedIn, form);
    } catch (error) {
      const status = error instanceof HttpError ? error.status : 502;
      if (!(error instanceof HttpError)) logger.error({ err: error, path: ctx.path }, 'console: page failed');
      const text =
        error instanceof HttpError
          ? error.detail
          : `Reading the pipeline failed: ${oneLine(error)}. Check that Kafka, the schema registry and Redis are reachable from the console, then reload.`;
      send(ctx, errorPage({ csrf: signedIn.csrf, status, text }), status);
    }
  };
