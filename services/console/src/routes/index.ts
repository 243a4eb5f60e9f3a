/**
 * The operator's console at /console: sign-in with ADMIN_TOKEN, then organisations, event
 * search and dead letters, as server-rendered HTML. Every page but the sign-in needs a session
 * (an HMAC-signed cookie, session.ts); every form POST also needs the session's CSRF token
 * (console-page.ts). Handlers stay thin: reads are in activity.ts and event-search.ts, pages in
 * pages/.
 */
import type Router from '@koa/router';
import { createSessionSigner } from '../session.ts';
import { createPageRunner, type ConsoleDeps } from './console-page.ts';
import { deadLetterRoutes } from './dead-letters.ts';
import { eventRoutes } from './events.ts';
import { orgRoutes } from './orgs.ts';
import { signInRoutes } from './sign-in.ts';

export type { ConsoleDeps } from './console-page.ts';
export { adminRoutes } from './admin.ts';

export const CONSOLE_DEFAULT_LIMITS = {
  maxRecords: 20_000,
  readTimeoutMs: 20_000,
  sessionTtlMs: 8 * 60 * 60 * 1000,
} as const satisfies ConsoleDeps['limits'];

export const consoleRoutes = (router: Router, deps: ConsoleDeps): void => {
  const signer =
    deps.adminToken === undefined
      ? undefined
      : createSessionSigner({
          adminToken: deps.adminToken,
          secretsKey: deps.secretsKey,
          ttlMs: deps.limits.sessionTtlMs,
          now: deps.now,
        });
  const page = createPageRunner(signer, deps.logger);
  const area = {
    deps,
    page,
    reads: {
      kafka: deps.kafka,
      codec: deps.codec,
      topics: deps.topics,
      maxRecords: deps.limits.maxRecords,
      timeoutMs: deps.limits.readTimeoutMs,
    },
  };
  signInRoutes(router, {
    signer,
    page,
    sessionTtlMs: deps.limits.sessionTtlMs,
    logger: deps.logger,
    now: deps.now,
  });
  orgRoutes(router, area);
  eventRoutes(router, area);
  deadLetterRoutes(router, area);
};
