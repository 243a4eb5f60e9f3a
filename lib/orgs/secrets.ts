import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { ErrorCode, PipelineError } from '../errors.ts';

/** A secret encrypted at rest: `v1.<iv>.<tag>.<ciphertext>`, base64url parts, AES-256-GCM. */
export type SealedSecret = string & { readonly __sealed: true };

export type SecretBox = {
  readonly seal: (plain: string) => SealedSecret;
  readonly open: (sealed: string) => string;
};

export const createSecretBox = (key: Buffer): SecretBox => {
  if (key.length !== 32)
    throw new PipelineError(ErrorCode.secrets, 'SECRETS_KEY must be 32 bytes', { retriable: false });
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
      const [version, iv, tag, body] = sealed.split('.');
      if (version !== 'v1' || iv === undefined || tag === undefined || body === undefined) {
        throw new PipelineError(ErrorCode.secrets, 'not a sealed secret (expected v1.<iv>.<tag>.<data>)', {
          retriable: false,
        });
      }
      try {
        const decipher = createDecipheriv('aes-256-gcm', key, Buffer.from(iv, 'base64url'));
        decipher.setAuthTag(Buffer.from(tag, 'base64url'));
        return Buffer.concat([decipher.update(Buffer.from(body, 'base64url')), decipher.final()]).toString(
          'utf8',
        );
      } catch (error) {
        throw new PipelineError(
          ErrorCode.secrets,
          'cannot decrypt a stored secret: is SECRETS_KEY the key it was written with?',
          {
            retriable: false,
            cause: error,
          },
        );
      }
    },
  };
};
