import { createHash, createHmac, createSecretKey, timingSafeEqual, type KeyObject } from 'node:crypto';

/**
 * HubSpot request signatures (v3, and v1/v2 where configured). Written here rather than taken
 * from the SDK's Signature.isValid, which defaults to v1, compares with ===, skips the URI
 * decoding and skips the age check on a non-numeric timestamp.
 */
export const SignatureRejection = {
  missingSignature: 'missing_signature',
  missingTimestamp: 'missing_timestamp',
  malformedTimestamp: 'malformed_timestamp',
  staleTimestamp: 'stale_timestamp',
  mismatch: 'signature_mismatch',
  versionNotAllowed: 'signature_version_not_allowed',
} as const;
export type SignatureRejection = (typeof SignatureRejection)[keyof typeof SignatureRejection];

export type SignatureCheck =
  | { readonly ok: true; readonly version: 'v1' | 'v2' | 'v3' }
  | { readonly ok: false; readonly reason: SignatureRejection };

export type SignedRequest = {
  readonly method: string;
  /** The full public URL HubSpot called: scheme, host, path and query. */
  readonly url: string;
  readonly rawBody: Buffer;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
};

export type SignaturePolicy = {
  readonly clientSecret: string;
  readonly maxAgeMs: number;
  /** v1/v2 carry no timestamp (replayable): accepted only when configured. */
  readonly allowLegacyVersions: boolean;
};

/** HubSpot decodes exactly these escapes before signing (and no others). */
const decodedEscapes: Record<string, string> = {
  '3A': ':',
  '2F': '/',
  '3F': '?',
  '40': '@',
  '21': '!',
  '24': '$',
  '27': "'",
  '28': '(',
  '29': ')',
  '2A': '*',
  '2C': ',',
  '3B': ';',
};

export const normaliseSignedUri = (url: string): string =>
  // Nearly every webhook URL has no escape at all: no regular expression for it.
  !url.includes('%')
    ? url
    : url.replace(
        /%(3A|2F|3F|40|21|24|27|28|29|2A|2C|3B)/gi,
        (_, hex: string) => decodedEscapes[hex.toUpperCase()] ?? `%${hex}`,
      );

const header = (headers: SignedRequest['headers'], name: string): string | undefined => {
  const value = headers[name.toLowerCase()];
  return Array.isArray(value) ? value[0] : value;
};

const equalInConstantTime = (expected: Buffer, given: Buffer): boolean =>
  expected.length === given.length && timingSafeEqual(expected, given);

/**
 * Each secret as a key object, made once: createHmac with a string encodes it into a new buffer
 * for every request. Secrets are few (the app's, and one per private-app organisation); the
 * memo is emptied should it ever hold many.
 */
const keys = new Map<string, KeyObject>();
const keyOf = (secret: string): KeyObject => {
  let key = keys.get(secret);
  if (key === undefined) {
    if (keys.size >= 1000) keys.clear();
    key = createSecretKey(Buffer.from(secret, 'utf8'));
    keys.set(secret, key);
  }
  return key;
};

/** The v3 HMAC as bytes: fed piece by piece, so the body is not copied into a joined buffer. */
const hmacV3 = (secret: string, method: string, url: string, rawBody: Buffer, timestamp: string): Buffer =>
  createHmac('sha256', keyOf(secret))
    .update(`${method.toUpperCase()}${normaliseSignedUri(url)}`, 'utf8')
    .update(rawBody)
    .update(timestamp, 'utf8')
    .digest();

export const signV3 = (
  secret: string,
  method: string,
  url: string,
  rawBody: Buffer,
  timestamp: string,
): string => hmacV3(secret, method, url, rawBody, timestamp).toString('base64');

export const verifyHubSpotSignature = (
  request: SignedRequest,
  policy: SignaturePolicy,
  now: number,
): SignatureCheck => {
  const v3 = header(request.headers, 'x-hubspot-signature-v3');
  if (v3 !== undefined) {
    const timestamp = header(request.headers, 'x-hubspot-request-timestamp');
    if (timestamp === undefined) return { ok: false, reason: SignatureRejection.missingTimestamp };
    if (!/^\d{1,16}$/.test(timestamp)) return { ok: false, reason: SignatureRejection.malformedTimestamp };
    if (Math.abs(now - Number(timestamp)) > policy.maxAgeMs)
      return { ok: false, reason: SignatureRejection.staleTimestamp };
    const expected = hmacV3(policy.clientSecret, request.method, request.url, request.rawBody, timestamp);
    return equalInConstantTime(expected, Buffer.from(v3, 'base64'))
      ? { ok: true, version: 'v3' }
      : { ok: false, reason: SignatureRejection.mismatch };
  }

  const legacy = header(request.headers, 'x-hubspot-signature');
  if (legacy === undefined) return { ok: false, reason: SignatureRejection.missingSignature };
  if (!policy.allowLegacyVersions) return { ok: false, reason: SignatureRejection.versionNotAllowed };
  const version = header(request.headers, 'x-hubspot-signature-version') === 'v2' ? 'v2' : 'v1';
  const source =
    version === 'v2'
      ? Buffer.concat([
          Buffer.from(`${policy.clientSecret}${request.method.toUpperCase()}${request.url}`, 'utf8'),
          request.rawBody,
        ])
      : Buffer.concat([Buffer.from(policy.clientSecret, 'utf8'), request.rawBody]);
  const expected = Buffer.from(createHash('sha256').update(source).digest('hex'), 'utf8');
  return equalInConstantTime(expected, Buffer.from(legacy.toLowerCase(), 'utf8'))
    ? { ok: true, version }
    : { ok: false, reason: SignatureRejection.mismatch };
};
