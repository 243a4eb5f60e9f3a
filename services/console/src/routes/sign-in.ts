/** /console, the sign-in (ADMIN_TOKEN once, then a signed session cookie) and the sign-out. */
import type Router from '@koa/router';
import type { Logger } from '../../../../lib/log.ts';
import { signInPage } from '../pages/index.ts';
import type { SessionSigner } from '../session.ts';
import {
  hardened,
  queryText,
  readForm,
  safeNext,
  seeOther,
  send,
  sendConsoleOff,
  setSessionCookie,
  type createPageRunner,
} from './console-page.ts';

const SIGN_IN_FAILURES = 5;
const SIGN_IN_WINDOW_MS = 60_000;

export const signInRoutes = (
  router: Router,
  deps: {
    readonly signer: SessionSigner | undefined;
    readonly page: ReturnType<typeof createPageRunner>;
    readonly sessionTtlMs: number;
    readonly logger: Logger;
    readonly now: () => number;
  },
): void => {
  const { signer, logger } = deps;
  /** Wrong tokens per client address in the last minute: the sixth is refused without a look. */
  const failures = new Map<string, { count: number; since: number }>();

  router.get('/console', (ctx) => {
    ctx.redirect('/console/orgs');
  });

  router.get('/console/sign-in', (ctx) => {
    hardened(ctx);
    if (!signer) return sendConsoleOff(ctx);
    send(ctx, signInPage({ next: safeNext(queryText(ctx, 'next')) }));
  });

  router.post('/console/sign-in', async (ctx) => {
    hardened(ctx);
    if (!signer) return sendConsoleOff(ctx);
    const now = deps.now();
    const client = ctx.ip;
    const recent = failures.get(client);
    if (recent && now - recent.since > SIGN_IN_WINDOW_MS) failures.delete(client);
    // Many addresses must not grow the map without end: forget the expired ones.
    if (failures.size > 10_000)
      for (const [address, entry] of failures)
        if (now - entry.since > SIGN_IN_WINDOW_MS) failures.delete(address);
    if ((failures.get(client)?.count ?? 0) >= SIGN_IN_FAILURES)
      return send(
        ctx,
        signInPage({ error: 'Too many wrong tokens from this address: wait a minute, then try again.' }),
        429,
      );
    const form = await readForm(ctx);
    const next = safeNext(form.get('next'));
    // The token is compared and forgotten: it is never logged, echoed, or put in a URL.
    if (!signer.tokenMatches(form.get('token') ?? '')) {
      const entry = failures.get(client) ?? { count: 0, since: now };
      failures.set(client, { count: entry.count + 1, since: entry.since });
      logger.warn({ client }, 'console: sign-in refused (wrong admin token)');
      return send(ctx, signInPage({ error: 'That is not the admin token (ADMIN_TOKEN).', next }), 401);
    }
    failures.delete(client);
    const { cookie } = signer.issue();
    setSessionCookie(ctx, cookie, deps.sessionTtlMs);
    logger.info({ client }, 'console: signed in');
    seeOther(ctx, next);
  });

  router.post(
    '/console/sign-out',
    deps.page(
      async (ctx) => {
        setSessionCookie(ctx, '', 0);
        seeOther(ctx, '/console/sign-in');
      },
      { form: true },
    ),
  );
};
