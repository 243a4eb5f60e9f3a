import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import {
  createSecretBox,
  hashWebhookToken,
  openStoredOrg,
  publicView,
  resealStoredOrg,
  type SecretBox,
  type StoredOrg,
} from '../../lib/orgs/index.ts';

const record = (box: SecretBox, overrides: { webhookTokenBox?: SecretBox } = {}): StoredOrg => ({
  orgId: 'acme',
  deleted: false,
  updatedAt: 1,
  hubspot: {
    portalId: 77,
    aiActorId: 'A-1',
    accessToken: box.seal('pat-na1-token'),
    privateAppClientSecret: box.seal('private-secret'),
    reconnectRequired: false,
  },
  opencx: { apiKey: box.seal('ocx-key') },
  settings: { assistMode: false, ticketingEnabled: true },
  webhookToken: (overrides.webhookTokenBox ?? box).seal('webhook-token'),
  webhookTokenHash: hashWebhookToken('webhook-token'),
});

describe('organisation records and the keys that open them', () => {
  const oldKey = randomBytes(32);
  const newKey = randomBytes(32);
  const before = createSecretBox(oldKey);
  const during = createSecretBox(newKey, { previous: oldKey });
  const after = createSecretBox(newKey);

  it('given a record sealed with the previous key, when opened, then it is readable and names every field a reseal rewrites', () => {
    const opened = openStoredOrg(record(before), during);
    assert.ok(opened.readable);
    assert.equal(opened.org.opencx.apiKey, 'ocx-key');
    assert.equal(opened.org.webhookToken, 'webhook-token');
    assert.deepEqual(opened.sealedWithPrevious, [
      'hubspot.accessToken',
      'hubspot.privateAppClientSecret',
      'opencx.apiKey',
      'webhookToken',
    ]);
  });

  it('given a record sealed with the previous key, when resealed, then the current key alone opens it, its hash and updatedAt are kept, and a second reseal does nothing', () => {
    const stored = record(before);
    const resealed = resealStoredOrg(stored, during);
    assert.ok(resealed);
    const opened = openStoredOrg(resealed, after);
    assert.ok(opened.readable);
    assert.equal(opened.org.hubspot.accessToken, 'pat-na1-token');
    assert.equal(resealed.webhookTokenHash, stored.webhookTokenHash);
    assert.equal(resealed.updatedAt, stored.updatedAt);
    assert.equal(resealStoredOrg(resealed, during), undefined);
  });

  it('given a record no configured key opens, when opened, then it is unreadable and names its sealed fields', () => {
    const opened = openStoredOrg(record(before), after);
    assert.equal(opened.readable, false);
    assert.ok(!opened.readable && opened.unreadable.includes('opencx.apiKey'));
  });

  it('given only the webhook token sealed with a lost key, when opened, then the org is readable and its legacy URL is not shown', () => {
    const opened = openStoredOrg(record(after, { webhookTokenBox: before }), after);
    assert.ok(opened.readable);
    assert.equal(opened.webhookTokenUnreadable, true);
    const view = publicView(opened.org, 'https://hooks.example.test');
    assert.equal(view.legacyWebhookUrl, null);
    assert.match(view.legacyWebhookUrlNote ?? '', /still routes/);
  });
});
