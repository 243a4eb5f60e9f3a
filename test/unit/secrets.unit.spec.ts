import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
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

  it('given a tampered ciphertext, when opening, then it fails', () => {
    const sealed = box.seal('value');
    const parts = sealed.split('.');
    const tampered = [parts[0], parts[1], parts[2], Buffer.from('other').toString('base64url')].join('.');
    assert.throws(() => box.open(tampered));
  });
});
