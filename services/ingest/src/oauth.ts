import { z } from 'zod';
import { ErrorCode, PipelineError } from '../../../lib/errors.ts';
import type { Redis } from '../../../lib/redis.ts';

/**
 * HubSpot OAuth (public app): the OAuth states already spent, and the token endpoint calls (code
 * exchange, refresh, token → portal). The signed `state` is lib/signed-tokens.ts.
 */

/**
 * The OAuth states already spent. A state is signed and expires, but until it expires it could
 * complete any number of callbacks (each with a code from a different HubSpot portal), moving the
 * organisation to another portal: the first callback to claim its nonce wins, on every replica.
 */
export type OAuthStateLedger = {
  /** True once for a nonce, false on every later call until `expiresAt` (epoch ms). */
  readonly spend: (nonce: string, expiresAt: number) => Promise<boolean>;
};

export const createRedisOAuthStateLedger = (
  redis: Pick<Redis, 'set'>,
  keyPrefix: string,
  now: () => number,
): OAuthStateLedger => ({
  spend: async (nonce, expiresAt) =>
    // Kept as long as the state could still verify; PX must be at least 1.
    (await redis.set(
      `${keyPrefix}oauth-state:${nonce}`,
      'spent',
      'PX',
      Math.max(1, expiresAt - now()),
      'NX',
    )) === 'OK',
});

const TokenAnswer = z.object({ access_token: z.string(), refresh_token: z.string(), expires_in: z.number() });
const TokenInfo = z.looseObject({ hub_id: z.number() });
export type OAuthTokens = {
  readonly accessToken: string;
  readonly refreshToken: string;
  readonly expiresAt: number;
};

export type HubSpotOAuth = {
  readonly exchangeCode: (code: string, redirectUri: string) => Promise<OAuthTokens>;
  readonly refresh: (refreshToken: string) => Promise<OAuthTokens>;
  readonly portalOf: (accessToken: string) => Promise<number>;
};

export const createHubSpotOAuth = (options: {
  baseUrl: string;
  clientId: string;
  clientSecret: string;
  timeoutMs: number;
  now: () => number;
}): HubSpotOAuth => {
  const base = options.baseUrl.replace(/\/$/, '');
  const tokenCall = async (form: Record<string, string>): Promise<OAuthTokens> => {
    const response = await fetch(`${base}/oauth/v1/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
      body: new URLSearchParams({
        client_id: options.clientId,
        client_secret: options.clientSecret,
        ...form,
      }).toString(),
      signal: AbortSignal.timeout(options.timeoutMs),
    }).catch((error: unknown) => {
      throw new PipelineError(
        ErrorCode.upstreamUnavailable,
        `HubSpot token endpoint unreachable: ${String(error)}`,
        { retriable: true, upstream: 'hubspot', cause: error },
      );
    });
    const text = await response.text();
    if (response.status >= 500 || response.status === 429) {
      throw new PipelineError(
        ErrorCode.upstreamUnavailable,
        `HubSpot token endpoint answered ${response.status}`,
        { retriable: true, upstream: 'hubspot' },
      );
    }
    if (!response.ok) {
      // 400 BAD_REFRESH_TOKEN / BAD_AUTH_CODE: the grant is gone; the app must be reconnected.
      throw new PipelineError(
        ErrorCode.upstreamUnauthorized,
        `HubSpot refused the grant (${response.status}): ${text.slice(0, 200)}`,
        { retriable: false, upstream: 'hubspot' },
      );
    }
    const answer = TokenAnswer.parse(JSON.parse(text));
    return {
      accessToken: answer.access_token,
      refreshToken: answer.refresh_token,
      expiresAt: options.now() + answer.expires_in * 1000,
    };
  };
  return {
    exchangeCode: (code, redirectUri) =>
      tokenCall({ grant_type: 'authorization_code', code, redirect_uri: redirectUri }),
    refresh: (refreshToken) => tokenCall({ grant_type: 'refresh_token', refresh_token: refreshToken }),
    portalOf: async (accessToken) => {
      const response = await fetch(`${base}/oauth/v1/access-tokens/${encodeURIComponent(accessToken)}`, {
        signal: AbortSignal.timeout(options.timeoutMs),
      });
      if (!response.ok)
        throw new PipelineError(
          ErrorCode.upstreamRejected,
          `HubSpot token info answered ${response.status}`,
          { retriable: response.status >= 500, upstream: 'hubspot' },
        );
      return TokenInfo.parse(await response.json()).hub_id;
    },
  };
};
