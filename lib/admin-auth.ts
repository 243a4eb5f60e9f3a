import { createHash, timingSafeEqual } from 'node:crypto';
import type { Context } from 'koa';
import { HttpError } from './http-server.ts';

/**
 * Checks `Authorization: Bearer $ADMIN_TOKEN` in constant time; 503 when no token is configured.
 * The admin API (console) and the OAuth install without a grant (ingest) ask for it.
 */
export const createAdminAuth = (token: string | undefined): ((ctx: Context) => void) => {
  const adminToken = token === undefined ? undefined : createHash('sha256').update(token).digest();
  return (ctx) => {
    if (!adminToken) throw new HttpError(503, 'admin_disabled', 'set ADMIN_TOKEN to enable the admin API');
    const given = /^Bearer (.+)$/.exec(ctx.get('authorization'))?.[1];
    const digest = createHash('sha256')
      .update(given ?? '')
      .digest();
    if (!given || !timingSafeEqual(digest, adminToken))
      throw new HttpError(401, 'unauthorised', 'Authorization: Bearer $ADMIN_TOKEN required');
  };
};
