import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * HMAC-signed, expiring, URL-safe tokens: the OAuth install's `state` (ingest) and the install
 * grants the admin API and the console hand out (console), which ingest's install link checks.
 */
export type SignedToken = {
  readonly sign: (payload: object, ttlMs: number) => string;
  readonly verify: <T>(token: string) => T | undefined;
};

export const createSignedTokens = (key: Buffer, purpose: string, now: () => number): SignedToken => {
  const mac = (data: string): Buffer => createHmac('sha256', key).update(`${purpose}\u001f${data}`).digest();
  return {
    sign: (payload, ttlMs) => {
      const data = Buffer.from(
        JSON.stringify({ ...payload, exp: now() + ttlMs, nonce: randomBytes(8).toString('hex') }),
      ).toString('base64url');
      return `${data}.${mac(data).toString('base64url')}`;
    },
    verify: <T>(token: string): T | undefined => {
      const [data, signature] = token.split('.');
      if (!data || !signature) return undefined;
      const given = Buffer.from(signature, 'base64url');
      const expected = mac(data);
      if (given.length !== expected.length || !timingSafeEqual(given, expected)) return undefined;
      const payload = JSON.parse(Buffer.from(data, 'base64url').toString('utf8')) as T & { exp: number };
      return payload.exp >= now() ? payload : undefined;
    },
  };
};

/**
 * The tokens of the HubSpot OAuth install, signed with SECRETS_KEY: every replica of ingest and
 * the console signs and accepts the same ones.
 */
export const createOAuthTokens = (secretsKey: Buffer, now: () => number): SignedToken =>
  createSignedTokens(secretsKey, 'hubspot-oauth', now);

const INSTALL_GRANT_TTL_MS = 15 * 60 * 1000;

/**
 * A short-lived link an operator can open in a browser to connect an organisation's HubSpot
 * portal: ingest's /oauth/hubspot/install with a grant that stands in for the admin token.
 */
export const installLink = (tokens: SignedToken, ingestBaseUrl: string, orgId: string): string =>
  `${ingestBaseUrl.replace(/\/$/, '')}/oauth/hubspot/install?orgId=${encodeURIComponent(orgId)}&grant=${tokens.sign({ kind: 'install', orgId }, INSTALL_GRANT_TTL_MS)}`;

/** True when `grant` is an unexpired install grant for `orgId`. */
export const isInstallGrantFor = (tokens: SignedToken, grant: string | undefined, orgId: string): boolean => {
  if (grant === undefined) return false;
  const payload = tokens.verify<{ kind: string; orgId: string }>(grant);
  return payload?.kind === 'install' && payload.orgId === orgId;
};
