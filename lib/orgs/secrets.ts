import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { ErrorCode, PipelineError } from '../errors.ts';

/** A secret encrypted at rest: `v1.<iv>.<tag>.<ciphertext>`, base64url parts, AES-256-GCM. */
export type SealedSecret = string & { readonly __sealed: true };

/** Which configured key opened a sealed secret. */
export type SealingKey = 'current' | 'previous';

export type SecretBox = {
  /** Always with the current key (SECRETS_KEY). */
  readonly seal: (plain: string) => SealedSecret;
  /** With the current key, else the previous one; throws when neither opens it. */
  readonly open: (sealed: string) => string;
  /** Like `open`, but says which key opened it, and answers undefined instead of throwing. */
  readonly tryOpen: (sealed: string) => { readonly plain: string; readonly key: SealingKey } | undefined;
};

const assertKey = (key: Buffer, name: string): void => {
  if (key.length !== 32)
    throw new PipelineError(ErrorCode.secrets, `${name} must be 32 bytes`, { retriable: false });
};

const decrypt = (key: Buffer, iv: string, tag: string, body: string): string | undefined => {
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, Buffer.from(iv, 'base64url'));
    decipher.setAuthTag(Buffer.from(tag, 'base64url'));
    return Buffer.concat([decipher.update(Buffer.from(body, 'base64url')), decipher.final()]).toString(
      'utf8',
    );
  } catch {
    // GCM's tag check fails for a wrong key or tampered data alike: the caller tries the next key.
    return undefined;
  }
};

/**
 * AES-256-GCM with a current key and, during a rotation, the key before it. The sealed form
 * names no key: GCM's authentication tag tells a wrong key apart, so opening tries the current
 * key first and then the previous one. Sealing never uses the previous key, so once every record
 * has been written again (`npm run orgs:reseal`) the previous key can be dropped.
 */
export const createSecretBox = (key: Buffer, options: { previous?: Buffer | undefined } = {}): SecretBox => {
  assertKey(key, 'SECRETS_KEY');
  const { previous } = options;
  if (previous) assertKey(previous, 'SECRETS_KEY_PREVIOUS');
  const keys: readonly (readonly [SealingKey, Buffer])[] = previous
    ? [
        ['current', key],
        ['previous', previous],
      ]
    : [['current', key]];

  const parse = (sealed: string): [string, string, string] => {
    const [version, iv, tag, body] = sealed.split('.');
    if (version !== 'v1' || iv === undefined || tag === undefined || body === undefined) {
      throw new PipelineError(ErrorCode.secrets, 'not a sealed secret (expected v1.<iv>.<tag>.<data>)', {
        retriable: false,
      });
    }
    return [iv, tag, body];
  };

  const tryOpen: SecretBox['tryOpen'] = (sealed) => {
    let parts: [string, string, string];
    try {
      parts = parse(sealed);
    } catch {
      return undefined;
    }
    for (const [name, candidate] of keys) {
      const plain = decrypt(candidate, ...parts);
      if (plain !== undefined) return { plain, key: name };
    }
    return undefined;
  };

  return {
    seal: (plain) => {
      const iv = randomBytes(12);
      const cipher = createCipheriv('aes-256-gcm', key, iv);
      const body = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()]);
      return ['v1', iv, cipher.getAuthTag(), body]
        .map((part) => (typeof part === 'string' ? part : part.toString('base64url')))
        .join('.') as SealedSecret;
    },
    open: (sealed) => {
      parse(sealed);
      const opened = tryOpen(sealed);
      if (opened) return opened.plain;
      throw new PipelineError(
        ErrorCode.secrets,
        previous
          ? 'cannot decrypt a stored secret with SECRETS_KEY nor SECRETS_KEY_PREVIOUS: was it written with another key?'
          : 'cannot decrypt a stored secret: is SECRETS_KEY the key it was written with? (during a rotation, set SECRETS_KEY_PREVIOUS to the old key)',
        { retriable: false },
      );
    },
    tryOpen,
  };
};
