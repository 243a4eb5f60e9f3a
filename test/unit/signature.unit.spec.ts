import assert from 'node:assert/strict';
import { Signature } from '@hubspot/api-client';
import {
  normaliseSignedUri,
  signV3,
  verifyHubSpotSignature,
  type SignaturePolicy,
} from '../../services/ingest/src/signature.ts';

const secret = 'client-secret-for-tests';
const policy: SignaturePolicy = { clientSecret: secret, maxAgeMs: 5 * 60 * 1000, allowLegacyVersions: false };
const now = 1_702_439_400_000;
const url = 'https://hooks.example.com/webhooks/hubspot';
const body = Buffer.from(JSON.stringify([{ portalId: 1, subscriptionType: 'conversation.newMessage' }]));

/** Signed with HubSpot's own SDK: an independent check of our verifier. */
const sdkV3 = (timestamp: number, signedUrl = url, signedBody = body): Record<string, string> => ({
  'x-hubspot-signature-v3': Signature.getSignature('POST', 'v3', {
    signature: '',
    clientSecret: secret,
    requestBody: signedBody.toString('utf8'),
    url: signedUrl,
    timestamp,
  }),
  'x-hubspot-request-timestamp': String(timestamp),
});

describe('HubSpot signature verification', () => {
  it('given a v3 signature made by the HubSpot SDK, when verified, then it is accepted', () => {
    assert.deepEqual(
      verifyHubSpotSignature({ method: 'POST', url, rawBody: body, headers: sdkV3(now) }, policy, now),
      { ok: true, version: 'v3' },
    );
  });

  it('given a body changed after signing, when verified, then it is a mismatch', () => {
    const tampered = Buffer.from(body.toString().replace('"portalId":1', '"portalId":2'));
    assert.deepEqual(
      verifyHubSpotSignature({ method: 'POST', url, rawBody: tampered, headers: sdkV3(now) }, policy, now),
      { ok: false, reason: 'signature_mismatch' },
    );
  });

  it('given another secret, when verified, then it is a mismatch', () => {
    const check = verifyHubSpotSignature(
      { method: 'POST', url, rawBody: body, headers: sdkV3(now) },
      { ...policy, clientSecret: 'other' },
      now,
    );
    assert.deepEqual(check, { ok: false, reason: 'signature_mismatch' });
  });

  it('given a timestamp over 5 minutes old or ahead, when verified, then it is stale', () => {
    const old = now - 5 * 60 * 1000 - 1;
    assert.deepEqual(
      verifyHubSpotSignature({ method: 'POST', url, rawBody: body, headers: sdkV3(old) }, policy, now),
      { ok: false, reason: 'stale_timestamp' },
    );
    const ahead = now + 5 * 60 * 1000 + 1;
    assert.deepEqual(
      verifyHubSpotSignature({ method: 'POST', url, rawBody: body, headers: sdkV3(ahead) }, policy, now),
      { ok: false, reason: 'stale_timestamp' },
    );
  });

  it('given a non-numeric timestamp, when verified, then it is refused rather than skipping the age check', () => {
    const headers = { ...sdkV3(now), 'x-hubspot-request-timestamp': 'soon' };
    assert.deepEqual(verifyHubSpotSignature({ method: 'POST', url, rawBody: body, headers }, policy, now), {
      ok: false,
      reason: 'malformed_timestamp',
    });
  });

  it('given no signature header, when verified, then it is refused', () => {
    assert.deepEqual(
      verifyHubSpotSignature({ method: 'POST', url, rawBody: body, headers: {} }, policy, now),
      { ok: false, reason: 'missing_signature' },
    );
  });

  it('given a URL with encoded characters HubSpot decodes, when signed over the decoded form, then it verifies', () => {
    const encoded = 'https://hooks.example.com/webhooks/hubspot?x=a%3Ab%2Fc%40d%20e';
    assert.equal(normaliseSignedUri(encoded), 'https://hooks.example.com/webhooks/hubspot?x=a:b/c@d%20e');
    const headers = sdkV3(now, normaliseSignedUri(encoded));
    assert.equal(
      verifyHubSpotSignature({ method: 'POST', url: encoded, rawBody: body, headers }, policy, now).ok,
      true,
    );
  });

  it('given a v1 signature, when legacy versions are off, then it is refused; when on, accepted', () => {
    const headers = {
      'x-hubspot-signature': Signature.getSignature('POST', 'v1', {
        signature: '',
        clientSecret: secret,
        requestBody: body.toString(),
      }),
      'x-hubspot-signature-version': 'v1',
    };
    assert.deepEqual(verifyHubSpotSignature({ method: 'POST', url, rawBody: body, headers }, policy, now), {
      ok: false,
      reason: 'signature_version_not_allowed',
    });
    assert.deepEqual(
      verifyHubSpotSignature(
        { method: 'POST', url, rawBody: body, headers },
        { ...policy, allowLegacyVersions: true },
        now,
      ),
      { ok: true, version: 'v1' },
    );
  });

  it('given a v2 signature, when legacy versions are on, then it is accepted', () => {
    const headers = {
      'x-hubspot-signature': Signature.getSignature('POST', 'v2', {
        signature: '',
        clientSecret: secret,
        requestBody: body.toString(),
        url,
      }),
      'x-hubspot-signature-version': 'v2',
    };
    assert.deepEqual(
      verifyHubSpotSignature(
        { method: 'POST', url, rawBody: body, headers },
        { ...policy, allowLegacyVersions: true },
        now,
      ),
      { ok: true, version: 'v2' },
    );
  });

  it('signV3 matches the SDK byte for byte', () => {
    assert.equal(signV3(secret, 'POST', url, body, String(now)), sdkV3(now)['x-hubspot-signature-v3']);
  });
});
