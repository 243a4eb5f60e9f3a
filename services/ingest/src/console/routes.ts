/**
 * The operator's console at /console: sign-in with ADMIN_TOKEN, then organisations, event
 * search and dead letters, as server-rendered HTML. Every page but the sign-in needs a session
 * (an HMAC-signed cookie, session.ts); every form POST also needs the session's CSRF token.
 * Handlers stay thin: reads are in activity.ts and event-search.ts, pages in pages.ts.
 */
import type { Context } from 'koa';
import type Router from '@koa/router';
import type { Kafka } from 'kafkajs';
import {
  parseSince,
  replayDeadLetters,
  replayedMarkerKey,
  type ArchivedDeadLetter,
} from '../../../../lib/dead-letters/index.ts';
import { createDurableProducer, type Topics } from '../../../../lib/kafka/index.ts';
import type { Logger } from '../../../../lib/log.ts';
import type { Org, OrgDirectory, OrgRepository } from '../../../../lib/orgs/index.ts';
import type { Redis } from '../../../../lib/redis.ts';
import type { AvroCodec } from '../../../../lib/registry.ts';
import { HttpError, publicBaseUrl, readBody } from '../http.ts';
import type { SignedToken } from '../oauth.ts';
import { readActivity, readLetterAt, readLetterWindow } from './activity.ts';
import { searchEvents, type EventQuery } from './event-search.ts';
import type { Html } from './html.ts';
import {
  deadLettersPage,
  errorPage,
  eventSearchPage,
  letterPage,
  orgsPage,
  replayDonePage,
  replayDryRunPage,
  signInPage,
  type LetterGroup,
  type Notice,
  type OrgRow,
} from './pages.ts';
import { createSessionSigner, type ConsoleSession, type SessionSigner } from './session.ts';

export type ConsoleDeps = {
  /** Undefined: the console answers 503 (as the admin API does). */
  readonly adminToken: string | undefined;
  /** Signs sessions (with the admin token's hash): every replica accepts the same sessions. */
  readonly secretsKey: Buffer;
  readonly publicBaseUrl: string | undefined;
  readonly kafka: Kafka;
  readonly codec: AvroCodec;
  readonly topics: Topics;
  readonly orgs: Pick<OrgDirectory, 'storedRecords' | 'lookupById' | 'unreadable' | 'byPortal'>;
  readonly orgRepository: Pick<OrgRepository, 'updateSettings'>;
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

export const CONSOLE_DEFAULT_LIMITS = {
  maxRecords: 20_000,
  readTimeoutMs: 20_000,
  sessionTtlMs: 8 * 60 * 60 * 1000,
} as const satisfies ConsoleDeps['limits'];

const COOKIE = 'console_session';
const INSTALL_GRANT_TTL_MS = 15 * 60 * 1000;
const SIGN_IN_FAILURES = 5;
const SIGN_IN_WINDOW_MS = 60_000;

type Form = URLSearchParams;
type SignedIn = { readonly session: ConsoleSession; readonly csrf: string };

const send = (ctx: Context, page: Html, status = 200): void => {
  ctx.status = status;
  ctx.type = 'text/html; charset=utf-8';
  ctx.body = page.text;
};

/** Headers on every console answer: no caching, no framing, no scripts, no referrer. */
const hardened = (ctx: Context): void => {
  ctx.set('Cache-Control', 'no-store');
  ctx.set('X-Frame-Options', 'DENY');
  ctx.set('Referrer-Policy', 'no-referrer');
  ctx.set(
    'Content-Security-Policy',
    "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
  );
};

const readForm = async (ctx: Context): Promise<Form> =>
  new URLSearchParams((await readBody(ctx)).toString('utf8'));

const queryText = (ctx: Context, name: string): string | undefined => {
  const value = ctx.query[name];
  const text = (Array.isArray(value) ? value[0] : value)?.trim();
  return text ? text : undefined;
};

/** A path inside the console, never another site (the sign-in form's `next`). */
const safeNext = (next: string | null | undefined): string =>
  next && /^\/console(\/[A-Za-z0-9/_.?=&%-]*)?$/.test(next) && !next.startsWith('//')
    ? next
    : '/console/orgs';

const oneLine = (error: unknown): string =>
  (error instanceof Error ? error.message : String(error)).replace(/\s+/g, ' ').slice(0, 300);

const connectionOf = (org: Org): OrgRow['connection'] =>
  org.hubspot.refreshToken !== undefined
    ? 'OAuth app'
    : org.hubspot.accessToken !== undefined || org.hubspot.privateAppClientSecret !== undefined
      ? 'private app'
      : 'not connected';

/** `YYYY-MM-DDTHH:MM` from a datetime-local field, read as UTC. */
const parseUtcInput = (text: string | undefined): number | undefined => {
  if (text === undefined) return undefined;
  const parsed = Date.parse(/Z$|[+-]\d\d:\d\d$/.test(text) ? text : `${text}Z`);
  return Number.isNaN(parsed) ? undefined : parsed;
};

export const consoleRoutes = (router: Router, deps: ConsoleDeps): void => {
  const { logger } = deps;
  const signer: SessionSigner | undefined =
    deps.adminToken === undefined
      ? undefined
      : createSessionSigner({
          adminToken: deps.adminToken,
          secretsKey: deps.secretsKey,
          ttlMs: deps.limits.sessionTtlMs,
          now: deps.now,
        });
  const failures = new Map<string, { count: number; since: number }>();
  const reads = {
    kafka: deps.kafka,
    codec: deps.codec,
    topics: deps.topics,
    maxRecords: deps.limits.maxRecords,
    timeoutMs: deps.limits.readTimeoutMs,
  };

  const isHttps = (ctx: Context): boolean =>
    ctx.secure || (deps.publicBaseUrl?.startsWith('https:') ?? false);
  const setCookie = (ctx: Context, value: string, maxAgeMs: number): void => {
    // Written by hand: koa's cookies refuse `Secure` on a plain socket behind a TLS proxy.
    ctx.append(
      'Set-Cookie',
      `${COOKIE}=${value}; Path=/console; Max-Age=${Math.floor(maxAgeMs / 1000)}; HttpOnly; SameSite=Strict${isHttps(ctx) ? '; Secure' : ''}`,
    );
  };

  /** Runs a console handler: HTML errors, hardened headers, a session (and CSRF on POST) unless public. */
  const page =
    (
      handler: (
        ctx: Context & { params: Record<string, string> },
        signedIn: SignedIn,
        form: Form | undefined,
      ) => Promise<void>,
      options: { readonly form: boolean } = { form: false },
    ) =>
    async (ctx: Context & { params: Record<string, string> }): Promise<void> => {
      hardened(ctx);
      if (!signer) {
        send(
          ctx,
          errorPage({ status: 503, text: 'The console is off: set ADMIN_TOKEN on ingest to enable it.' }),
          503,
        );
        return;
      }
      const session = signer.open(ctx.cookies.get(COOKIE));
      if (!session) {
        const next = ctx.method === 'GET' ? ctx.originalUrl : '/console/orgs';
        ctx.status = 303;
        ctx.redirect(`/console/sign-in?next=${encodeURIComponent(safeNext(next))}`);
        return;
      }
      const signedIn = { session, csrf: signer.csrfToken(session) };
      try {
        let form: Form | undefined;
        if (options.form) {
          form = await readForm(ctx);
          if (!signer.csrfMatches(session, form.get('csrf') ?? undefined)) {
            logger.warn({ path: ctx.path }, 'console: form refused (CSRF token missing or wrong)');
            send(
              ctx,
              errorPage({
                csrf: signedIn.csrf,
                status: 403,
                text: 'This form is missing its CSRF token (or it is from another session): reload the page and submit it again.',
              }),
              403,
            );
            return;
          }
        }
        await handler(ctx, signedIn, form);
      } catch (error) {
        const status = error instanceof HttpError ? error.status : 502;
        if (!(error instanceof HttpError))
          logger.error({ err: error, path: ctx.path }, 'console: page failed');
        send(
          ctx,
          errorPage({
            csrf: signedIn.csrf,
            status,
            text:
              error instanceof HttpError
                ? error.detail
                : `Reading the pipeline failed: ${oneLine(error)}. Check that Kafka, the schema registry and Redis are reachable from ingest, then reload.`,
          }),
          status,
        );
      }
    };

  router.get('/console', (ctx) => {
    ctx.redirect('/console/orgs');
  });

  router.get('/console/sign-in', (ctx) => {
    hardened(ctx);
    if (!signer) {
      send(
        ctx,
        errorPage({ status: 503, text: 'The console is off: set ADMIN_TOKEN on ingest to enable it.' }),
        503,
      );
      return;
    }
    send(ctx, signInPage({ next: safeNext(queryText(ctx, 'next')) }));
  });

  router.post('/console/sign-in', async (ctx) => {
    hardened(ctx);
    if (!signer) {
      send(
        ctx,
        errorPage({ status: 503, text: 'The console is off: set ADMIN_TOKEN on ingest to enable it.' }),
        503,
      );
      return;
    }
    const now = deps.now();
    const client = ctx.ip;
    const recent = failures.get(client);
    if (recent && now - recent.since > SIGN_IN_WINDOW_MS) failures.delete(client);
    // Many addresses must not grow the map without end: forget the expired ones.
    if (failures.size > 10_000)
      for (const [address, entry] of failures)
        if (now - entry.since > SIGN_IN_WINDOW_MS) failures.delete(address);
    if ((failures.get(client)?.count ?? 0) >= SIGN_IN_FAILURES) {
      send(
        ctx,
        signInPage({ error: 'Too many wrong tokens from this address: wait a minute, then try again.' }),
        429,
      );
      return;
    }
    const form = await readForm(ctx);
    const next = safeNext(form.get('next'));
    // The token is compared and forgotten: it is never logged, echoed, or put in a URL.
    if (!signer.tokenMatches(form.get('token') ?? '')) {
      const entry = failures.get(client) ?? { count: 0, since: now };
      failures.set(client, { count: entry.count + 1, since: entry.since });
      logger.warn({ client }, 'console: sign-in refused (wrong admin token)');
      send(ctx, signInPage({ error: 'That is not the admin token (ADMIN_TOKEN of ingest).', next }), 401);
      return;
    }
    failures.delete(client);
    const { cookie } = signer.issue();
    setCookie(ctx, cookie, deps.limits.sessionTtlMs);
    logger.info({ client }, 'console: signed in');
    ctx.status = 303;
    ctx.redirect(next);
  });

  router.post(
    '/console/sign-out',
    page(
      async (ctx) => {
        setCookie(ctx, '', 0);
        ctx.status = 303;
        ctx.redirect('/console/sign-in');
      },
      { form: true },
    ),
  );

  const installUrl = (ctx: Context, orgId: string): string | undefined =>
    deps.installGrants
      ? `${publicBaseUrl(ctx, deps.publicBaseUrl)}/oauth/hubspot/install?orgId=${encodeURIComponent(orgId)}&grant=${deps.installGrants.sign({ kind: 'install', orgId }, INSTALL_GRANT_TTL_MS)}`
      : undefined;

  router.get(
    '/console/orgs',
    page(async (ctx, { csrf }) => {
      const activity = await readActivity({ ...reads, from: deps.now() - 60 * 60 * 1000 });
      const live = deps.orgs
        .storedRecords()
        .filter((stored) => !stored.deleted)
        .flatMap((stored) => {
          const found = deps.orgs.lookupById(stored.orgId);
          return found.kind === 'org' ? [found.org] : [];
        })
        .sort((a, b) => a.orgId.localeCompare(b.orgId));
      const rows = live.map((org): OrgRow => {
        const seen = activity.byKey.get(org.orgId);
        return {
          orgId: org.orgId,
          portalId: org.hubspot.portalId,
          connection: connectionOf(org),
          reconnectRequired: org.hubspot.reconnectRequired,
          assistMode: org.settings.assistMode,
          ticketingEnabled: org.settings.ticketingEnabled,
          installUrl: installUrl(ctx, org.orgId),
          events: seen?.events ?? 0,
          lastEventAt: seen?.lastEventAt,
          deadLetters: seen?.deadLetters ?? 0,
        };
      });
      const saved = queryText(ctx, 'saved');
      const notice: Notice | undefined =
        saved === undefined
          ? undefined
          : queryText(ctx, 'outcome') === 'unchanged'
            ? { kind: 'ok', text: `Settings of ${saved}: nothing changed.` }
            : { kind: 'ok', text: `Settings of ${saved} saved.` };
      send(
        ctx,
        orgsPage({
          csrf,
          rows,
          unreadable: deps.orgs.unreadable(),
          unrouted: [...activity.byKey]
            .filter(([key, seen]) => key.startsWith('portal:') && seen.events > 0)
            .map(([key, seen]) => ({ key, events: seen.events })),
          reads: activity.reads,
          oauthConfigured: deps.installGrants !== undefined,
          notice,
        }),
      );
    }),
  );

  router.post(
    '/console/orgs/:orgId/settings',
    page(
      async (ctx, _signedIn, form) => {
        const orgId = ctx.params.orgId ?? '';
        const outcome = await deps.orgRepository.updateSettings(orgId, {
          assistMode: form?.get('assistMode') === 'on',
          ticketingEnabled: form?.get('ticketingEnabled') === 'on',
        });
        if (outcome === 'unknown')
          throw new HttpError(404, 'unknown_org', `There is no organisation ${orgId}.`);
        logger.info({ orgId, outcome }, 'console: organisation settings edited');
        ctx.status = 303;
        ctx.redirect(`/console/orgs?saved=${encodeURIComponent(orgId)}&outcome=${outcome}`);
      },
      { form: true },
    ),
  );

  router.get(
    '/console/events',
    page(async (ctx, { csrf }) => {
      const now = deps.now();
      const to = parseUtcInput(queryText(ctx, 'to')) ?? now;
      const from = parseUtcInput(queryText(ctx, 'from')) ?? to - 60 * 60 * 1000;
      const query: EventQuery = {
        orgId: queryText(ctx, 'org'),
        from,
        to,
        threadId: queryText(ctx, 'thread'),
        ticketId: queryText(ctx, 'ticket'),
        eventId: queryText(ctx, 'event'),
        messageId: queryText(ctx, 'message'),
      };
      const orgIds = deps.orgs
        .storedRecords()
        .filter((stored) => !stored.deleted)
        .map((stored) => stored.orgId)
        .sort();
      const base = {
        csrf,
        query,
        window: { from: queryText(ctx, 'from'), to: queryText(ctx, 'to') },
        orgIds,
        maxRecords: deps.limits.maxRecords,
      };
      if (queryText(ctx, 'search') === undefined && query.orgId === undefined) {
        send(ctx, eventSearchPage({ ...base, result: undefined }));
        return;
      }
      if (from >= to) {
        send(
          ctx,
          eventSearchPage({
            ...base,
            result: undefined,
            error: 'The window is empty: "From" must be before "To".',
          }),
          400,
        );
        return;
      }
      const result = await searchEvents({
        ...reads,
        orgOfPortal: (portalId) => deps.orgs.byPortal(portalId)?.orgId,
        query,
        now,
      });
      send(ctx, eventSearchPage({ ...base, result }));
    }),
  );

  router.get(
    '/console/dead-letters',
    page(async (ctx, { csrf }) => {
      const since = queryText(ctx, 'since') ?? '24h';
      const sinceMs = parseSince(since, deps.now());
      if (sinceMs === undefined)
        throw new HttpError(400, 'bad_since', `"${since}" is not a duration such as 1h or 7d.`);
      const filter = { orgId: queryText(ctx, 'org'), reason: queryText(ctx, 'reason') };
      // The groups show every letter of the window; the list below, the filtered ones.
      const all = await readLetterWindow({ ...reads, filter: { since: sinceMs } });
      const groups = new Map<string, LetterGroup>();
      for (const { letter } of all.letters) {
        const orgId = letter.orgId ?? '–';
        const key = `${letter.reason}\u0000${orgId}`;
        groups.set(key, { reason: letter.reason, orgId, count: (groups.get(key)?.count ?? 0) + 1 });
      }
      const letters = all.letters.filter(
        ({ letter }) =>
          (filter.orgId === undefined || (letter.orgId ?? '–') === filter.orgId) &&
          (filter.reason === undefined || letter.reason === filter.reason),
      );
      send(
        ctx,
        deadLettersPage({
          csrf,
          since,
          sinceMs,
          filter,
          groups: [...groups.values()].sort((a, b) => b.count - a.count || a.reason.localeCompare(b.reason)),
          letters,
          read: all.read,
          undecodable: all.undecodable,
        }),
      );
    }),
  );

  const isReplayed = async (letters: readonly ArchivedDeadLetter[]): Promise<boolean[]> => {
    if (letters.length === 0) return [];
    const markers = await deps.redis.mget(
      letters.map((letter) => replayedMarkerKey(deps.redisKeyPrefix, letter)),
    );
    return markers.map((marker) => marker === 'replayed');
  };

  router.get(
    '/console/dead-letters/:partition/:offset',
    page(async (ctx, { csrf }) => {
      const partition = Number(ctx.params.partition);
      const offset = ctx.params.offset ?? '';
      if (!Number.isInteger(partition) || partition < 0 || !/^\d+$/.test(offset))
        throw new HttpError(
          404,
          'not_found',
          'A dead letter is named by its partition and offset: /console/dead-letters/0/42.',
        );
      const archived = await readLetterAt({ ...reads, partition, offset });
      if (!archived)
        throw new HttpError(
          404,
          'not_found',
          `There is no dead letter at partition ${partition}, offset ${offset} (expired from the topic, or never written).`,
        );
      let decoded: { recordName: string; record: unknown } | { error: string } | undefined;
      if (archived.letter.value) {
        try {
          decoded = await deps.codec.decodeRecord(archived.letter.value);
        } catch (error) {
          decoded = { error: `The original record does not decode: ${oneLine(error)}` };
        }
      }
      const [replayed] = await isReplayed([archived]);
      send(ctx, letterPage({ csrf, archived, decoded, replayed: replayed ?? false }));
    }),
  );

  /**
   * Dry run (the default): what would be replayed, from the letters named (`letter`) or those of
   * the filter. `confirm` replays exactly the letters the dry run listed (their positions).
   */
  router.post(
    '/console/dead-letters/replay',
    page(
      async (ctx, { csrf }, form) => {
        const sinceMs = Number(form?.get('since') ?? '');
        if (!Number.isFinite(sinceMs) || sinceMs < 0)
          throw new HttpError(
            400,
            'bad_since',
            'The replay form lost its time window: go back to the dead letters and start again.',
          );
        const positions = new Set(form?.getAll('letter') ?? []);
        const confirm = form?.get('confirm') === '1';
        if (confirm && positions.size === 0)
          throw new HttpError(
            400,
            'nothing_named',
            'A replay names its letters: run the dry run first, then confirm.',
          );
        const window = await readLetterWindow({
          ...reads,
          filter: {
            since: sinceMs,
            ...(form?.get('org') ? { orgId: form.get('org') ?? '' } : {}),
            ...(form?.get('reason') ? { reason: form.get('reason') ?? '' } : {}),
          },
        });
        const letters =
          positions.size === 0
            ? window.letters
            : window.letters.filter((letter) => positions.has(`${letter.partition}:${letter.offset}`));
        if (!confirm) {
          const replayed = await isReplayed(letters);
          send(
            ctx,
            replayDryRunPage({
              csrf,
              sinceMs,
              candidates: letters.map((archived, index) => ({
                archived,
                replayed: replayed[index] ?? false,
              })),
              read: window.read,
            }),
          );
          return;
        }
        const producer = createDurableProducer(deps.kafka);
        await producer.connect();
        try {
          const summary = await replayDeadLetters({
            letters,
            producer,
            redis: deps.redis,
            keyPrefix: deps.redisKeyPrefix,
          });
          logger.info(
            { replayed: summary.replayed, alreadyReplayed: summary.alreadyReplayed, failed: summary.failed },
            'console: dead letters replayed',
          );
          send(
            ctx,
            replayDonePage({ csrf, summary, missing: positions.size - letters.length }),
            summary.failed > 0 ? 502 : 200,
          );
        } finally {
          await producer.disconnect();
        }
      },
      { form: true },
    ),
  );
};
