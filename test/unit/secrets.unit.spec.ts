import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { ErrorCode } from '../../lib/errors.ts';
import { createSecretBox } from '../../lib/orgs/index.ts';

describe('secrets at rest', () => {
  const box = createSecretBox(randomBytes(32));

  it('given a secret, when sealed and opened, then it round-trips and the sealed form hides it', () => {
    const sealed = box.seal('pat-na1-secret');
    assert.ok(!sealed.includes('pat-na1-secret'));
    assert.equal(box.open(sealed), 'pat-na1-secret');
  });

  it('given the same secret twice, when sealed, then the ciphertexts differ (fresh IV)', () => {
    assert.notEqual(box.seal('same'), box.seal('same'));
  });

  it('given another key, when opening, then it fails with what to check', () => {
    assert.throws(
      () => createSecretBox(randomBytes(32)).open(box.seal('x')),
      /is SECRETS_KEY the key it was written with/,
    );
  });

  it('given a tampered ciphertext, when opening, then it fails as undecryptable (the tag check), not as malformed', () => {
    const sealed = box.seal('value');
    const parts = sealed.split('.');
    const tampered = [parts[0], parts[1], parts[2], Buffer.from('other').toString('base64url')].join('.');
    assert.throws(() => box.open(tampered), {
      name: 'PipelineError',
      code: ErrorCode.secrets,
      message: /^cannot decrypt a stored secret/,
    });
  });
});

describe('secrets at rest during a key rotation (SECRETS_KEY_PREVIOUS)', () => {
  const oldKey = randomBytes(32);
  const newKey = randomBytes(32);
  const before = createSecretBox(oldKey);
  const during = createSecretBox(newKey, { previous: oldKey });
  const after = createSecretBox(newKey);

  it('given a secret sealed with the old key, when opened with the new key and the old one as previous, then it opens and says the previous key did', () => {
    const sealed = before.seal('pat-na1-old');
    assert.equal(during.open(sealed), 'pat-na1-old');
    assert.deepEqual(during.tryOpen(sealed), { plain: 'pat-na1-old', key: 'previous' });
  });

  it('given both keys, when sealing, then only the current key seals (the new key alone opens it)', () => {
    const sealed = during.seal('fresh');
    assert.deepEqual(during.tryOpen(sealed), { plain: 'fresh', key: 'current' });
    assert.equal(after.open(sealed), 'fresh');
    assert.equal(before.tryOpen(sealed), undefined);
  });

  it('given a secret sealed with a third key, when opened with both, then open names both variables and tryOpen answers undefined', () => {
    const sealed = createSecretBox(randomBytes(32)).seal('lost');
    assert.throws(() => during.open(sealed), /SECRETS_KEY nor SECRETS_KEY_PREVIOUS/);
    assert.equal(during.tryOpen(sealed), undefined);
    assert.equal(during.tryOpen('not sealed at all'), undefined);
  });

  it('given a previous key of the wrong length, when the box is built, then it names SECRETS_KEY_PREVIOUS', () => {
    assert.throws(
      () => createSecretBox(newKey, { previous: randomBytes(16) }),
      /SECRETS_KEY_PREVIOUS must be 32 bytes/,
    );
  });
});
