import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { Producer } from 'kafkajs';
import { OrgId, PortalId } from '../../lib/ids.ts';
import {
  createOrgRepository,
  createSecretBox,
  hashWebhookToken,
  OrgInput,
  openStoredOrg,
  type OrgDirectory,
  type OrgLookup,
  type SecretBox,
  type StoredOrg,
} from '../../lib/orgs/index.ts';

/**
 * The repository's decisions, with the directory reduced to the records it holds (the directory
 * itself, on the real broker, is exercised by test/integration/secrets-rotation.int.spec.ts).
 */
const directoryOf = (secrets: SecretBox, initial: readonly StoredOrg[]) => {
  const records = new Map(initial.map((record) => [record.orgId, record]));
  const written: StoredOrg[] = [];
  const lookupById = (orgId: string): OrgLookup => {
    const stored = records.get(orgId);
    if (!stored) return { kind: 'unknown' };
    if (stored.deleted) return { kind: 'deleted', orgId: OrgId(orgId) };
    const opened = openStoredOrg(stored, secrets);
    return opened.readable
      ? { kind: 'org', org: opened.org }
      : { kind: 'unreadable', orgId: OrgId(orgId), portalId: PortalId(stored.hubspot.portalId), detail: '' };
  };
  const directory: Pick<OrgDirectory, 'stored' | 'lookupById' | 'lookupByPortal' | 'write'> = {
    stored: (orgId) => records.get(orgId),
    lookupById,
    lookupByPortal: (portalId) => {
      const owner = [...records.values()].find(
        (record) => !record.deleted && record.hubspot.portalId === portalId,
      );
      return owner ? lookupById(owner.orgId) : { kind: 'unknown' };
    },
    write: async (_producer, record) => {
      records.set(record.orgId, record);
      written.push(record);
    },
  };
  return { directory, written };
};

const stored = (box: SecretBox, hubspot: Partial<StoredOrg['hubspot']>): StoredOrg => ({
  orgId: 'acme',
  deleted: false,
  updatedAt: 1,
  hubspot: { portalId: 77, aiActorId: 'A-1', reconnectRequired: false, ...hubspot },
  opencx: { apiKey: box.seal('ocx-old') },
  settings: { assistMode: false, ticketingEnabled: true },
  webhookToken: box.seal('webhook-token'),
  webhookTokenHash: hashWebhookToken('webhook-token'),
});

const input = (hubspot: { accessToken?: string; privateAppClientSecret?: string } = {}) => ({
  hubspot: { portalId: 77, aiActorId: 'A-1', ...hubspot },
  opencx: { apiKey: 'ocx-new' },
  settings: { assistMode: false, ticketingEnabled: true },
});

describe('organisation repository: edits of records sealed with other keys', () => {
  const lost = createSecretBox(randomBytes(32));
  const oldKey = randomBytes(32);
  const currentKey = randomBytes(32);
  const current = createSecretBox(currentKey, { previous: oldKey });
  const currentOnly = createSecretBox(currentKey);
  const repositoryOver = (records: readonly StoredOrg[]) => {
    const { directory, written } = directoryOf(current, records);
    const repository = createOrgRepository({
      directory,
      producer: {} as Producer,
      secrets: current,
      now: () => 5,
    });
    return { repository, written };
  };

  it('given OAuth tokens no key opens, when PUT without an access token, then they are dropped, the org must reconnect, and the webhook token and hash are kept as they were', async () => {
    const before = stored(lost, {
      accessToken: lost.seal('oauth-access'),
      refreshToken: lost.seal('oauth-refresh'),
    });
    const { repository, written } = repositoryOver([before]);
    const result = await repository.put('acme', input());
    assert.equal(result.kind, 'replaced');
    assert.ok(result.kind === 'replaced' && result.oauthTokensDropped);
    const [record] = written;
    assert.equal(record?.hubspot.accessToken, undefined);
    assert.equal(record?.hubspot.refreshToken, undefined);
    assert.equal(record?.hubspot.reconnectRequired, true);
    assert.equal(record?.webhookToken, before.webhookToken);
    assert.equal(record?.webhookTokenHash, before.webhookTokenHash);
    assert.ok(result.kind === 'replaced' && result.org.webhookToken === undefined);
  });

  it('given a private-app token no key opens, when PUT without it, then nothing is written and the answer names it', async () => {
    const { repository, written } = repositoryOver([stored(lost, { accessToken: lost.seal('pat-na1-old') })]);
    assert.deepEqual(await repository.put('acme', input()), {
      kind: 'secrets_unreadable',
      fields: ['hubspot.accessToken'],
    });
    assert.deepEqual(written, []);
  });

  it('given secrets sealed with the previous key, when PUT keeps them, then they are sealed again with the current key and the legacy URL token is the same', async () => {
    const previous = createSecretBox(oldKey);
    const { repository, written } = repositoryOver([
      stored(previous, { privateAppClientSecret: previous.seal('private-secret') }),
    ]);
    const result = await repository.put('acme', input({ accessToken: 'pat-na1-new' }));
    assert.equal(result.kind, 'replaced');
    const record = written[0];
    assert.ok(record);
    const opened = openStoredOrg(record, currentOnly);
    assert.ok(opened.readable, 'the current key alone opens everything');
    assert.equal(opened.org.hubspot.privateAppClientSecret, 'private-secret');
    assert.equal(opened.org.hubspot.accessToken, 'pat-na1-new');
    assert.equal(opened.org.webhookToken, 'webhook-token');
    assert.equal(record.webhookTokenHash, hashWebhookToken('webhook-token'));
  });

  it('given a record no key opens, when deleted, then the deletion is written without opening anything', async () => {
    const before = stored(lost, { accessToken: lost.seal('pat-na1-old') });
    const { repository, written } = repositoryOver([before]);
    assert.equal(await repository.delete('acme'), 'deleted');
    assert.deepEqual(written, [{ ...before, deleted: true, updatedAt: 5 }]);
    assert.equal(await repository.delete('acme'), 'unknown');
  });
});

describe('organisation settings: the reconcile interval (issue 23)', () => {
  const box = createSecretBox(randomBytes(32));

  it('given an interval of 0, 10 s or a day, when PUT, then it is taken; under 10 s, negative or over a day, then refused with the rule', () => {
    for (const ms of [0, 10_000, 86_400_000])
      assert.equal(
        OrgInput.safeParse({ ...input(), settings: { ...input().settings, reconcileIntervalMs: ms } })
          .success,
        true,
        `${ms}`,
      );
    for (const ms of [5_000, -1, 86_400_001, 1.5]) {
      const parsed = OrgInput.safeParse({
        ...input(),
        settings: { ...input().settings, reconcileIntervalMs: ms },
      });
      assert.equal(parsed.success, false, `${ms}`);
    }
    const tooShort = OrgInput.safeParse({
      ...input(),
      settings: { ...input().settings, reconcileIntervalMs: 5_000 },
    });
    assert.match(JSON.stringify(tooShort.error?.issues), /expected 0 \(never\) or at least 10000 ms/);
  });

  it("given an organisation with its own interval, when the console's settings form is saved, then the interval is kept", async () => {
    const { directory, written } = directoryOf(box, [
      {
        ...stored(box, {}),
        settings: { assistMode: false, ticketingEnabled: true, reconcileIntervalMs: 60_000 },
      },
    ]);
    const repository = createOrgRepository({
      directory,
      producer: {} as Producer,
      secrets: box,
      now: () => 5,
    });

    assert.equal(
      await repository.updateSettings('acme', { assistMode: true, ticketingEnabled: true }),
      'stored',
    );
    assert.deepEqual(written.at(-1)?.settings, {
      assistMode: true,
      ticketingEnabled: true,
      reconcileIntervalMs: 60_000,
    });
  });
});
