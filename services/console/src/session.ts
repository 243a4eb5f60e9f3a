import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * The console's sign-in: the operator types ADMIN_TOKEN once; the browser then holds a signed
 * session (an id and an expiry, HMAC-SHA256), never the token. The signing key is derived from
 * SECRETS_KEY (so every console replica accepts the same sessions) and from the admin token's
 * hash (so changing ADMIN_TOKEN signs every session out).
 */
export type ConsoleSession = { readonly sid: string; readonly expiresAt: number };

export type SessionSigner = {
  /** Constant-time comparison with ADMIN_TOKEN. */
  readonly tokenMatches: (given: string) => boolean;
  readonly issue: () => { readonly cookie: string; readonly session: ConsoleSession };
  /** The session in a cookie value, or undefined when it is forged, malformed or expired. */
  readonly open: (cookie: string | undefined) => ConsoleSession | undefined;
  /** The CSRF token of a session: every form of the console carries it. */
  readonly csrfToken: (session: ConsoleSession) => string;
  readonly csrfMatches: (session: ConsoleSession, given: string | undefined) => boolean;
};

const sha256 = (text: string): Buffer => createHash('sha256').update(text).digest();

const sameBytes = (a: Buffer, b: Buffer): boolean => a.length === b.length && timingSafeEqual(a, b);

export const createSessionSigner = (options: {
  readonly adminToken: string;
  readonly secretsKey: Buffer;
  readonly ttlMs: number;
  readonly now: () => number;
}): SessionSigner => {
  const tokenDigest = sha256(options.adminToken);
  const key = createHmac('sha256', options.secretsKey)
    .update('console-session\u0000')
    .update(tokenDigest)
    .digest();
  const mac = (purpose: string, text: string): Buffer =>
    createHmac('sha256', key).update(`${purpose}\u0000${text}`).digest();

  return {
    tokenMatches: (given) => given.length > 0 && sameBytes(sha256(given), tokenDigest),
    issue: () => {
      const session: ConsoleSession = {
        sid: randomBytes(18).toString('base64url'),
        expiresAt: options.now() + options.ttlMs,
      };
      const payload = Buffer.from(JSON.stringify(session)).toString('base64url');
      return { cookie: `v1.${payload}.${mac('session', payload).toString('base64url')}`, session };
    },
    open: (cookie) => {
      const [version, payload, signature] = (cookie ?? '').split('.');
      if (version !== 'v1' || !payload || !signature) return undefined;
      if (!sameBytes(Buffer.from(signature, 'base64url'), mac('session', payload))) return undefined;
      let parsed: unknown;
      try {
        parsed = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'));
      } catch {
        return undefined;
      }
      const { sid, expiresAt } = (parsed ?? {}) as Partial<ConsoleSession>;
      if (typeof sid !== 'string' || typeof expiresAt !== 'number') return undefined;
      return expiresAt > options.now() ? { sid, expiresAt } : undefined;
    },
    csrfToken: (session) => mac('csrf', session.sid).toString('base64url'),
    csrfMatches: (session, given) =>
      given !== undefined && sameBytes(Buffer.from(given, 'base64url'), mac('csrf', session.sid)),
  };
};
