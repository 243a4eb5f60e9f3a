import { randomBytes } from 'node:crypto';
import type { Producer } from 'kafkajs';
import type { OrgId } from '../ids.ts';
import type { OrgDirectory } from './directory.ts';
import {
  hashWebhookToken,
  openStoredOrg,
  resealStoredOrg,
  type Org,
  type OrgInput,
  type SealedField,
  type StoredOrg,
} from './model.ts';
import type { SecretBox } from './secrets.ts';

export type PutOrgResult =
  | {
      readonly kind: 'created' | 'replaced';
      readonly org: Org;
      /** OAuth tokens no key opened were dropped: the organisation must reconnect the app. */
      readonly oauthTokensDropped: boolean;
    }
  | { readonly kind: 'portal_taken'; readonly owner: OrgId }
  /** Stored secrets no key opens, which only the caller can give again. */
  | { readonly kind: 'secrets_unreadable'; readonly fields: readonly SealedField[] };

export type StoreTokensResult =
  | { readonly kind: 'stored' }
  | { readonly kind: 'unknown' }
  | { readonly kind: 'portal_taken'; readonly owner: OrgId };

export type ResealResult =
  | {
      readonly kind: 'resealed';
      readonly fields: readonly SealedField[];
      readonly webhookTokenUnreadable: boolean;
    }
  | { readonly kind: 'current'; readonly webhookTokenUnreadable: boolean }
  | { readonly kind: 'unreadable'; readonly fields: readonly SealedField[]; readonly deleted: boolean }
  | { readonly kind: 'unknown' };

export type OrgTokens = {
  readonly accessToken: string;
  readonly refreshToken: string;
  readonly expiresAt: number;
};

export type OrgRepository = ReturnType<typeof createOrgRepository>;

/**
 * Every edit of an organisation goes through here: the admin API, the OAuth callback, the token
 * refresher, the processor's reconnect-required and the reseal command. Each edit reads the
 * stored record, changes what it owns, seals with the current key and writes it durably
 * (acks=all); the directory applies it at once. Only the write can fail (kafkaUnavailable).
 * Edits are last-writer-wins on the compacted topic, as before: two replicas editing one
 * organisation in the same instant keep one of the two.
 */
export const createOrgRepository = (deps: {
  readonly directory: Pick<OrgDirectory, 'stored' | 'lookupById' | 'lookupByPortal' | 'write'>;
  readonly producer: Producer;
  readonly secrets: SecretBox;
  readonly now: () => number;
  /** 192 random bits unless a test says otherwise. */
  readonly newWebhookToken?: () => string;
}) => {
  const { directory, secrets } = deps;
  const newWebhookToken = deps.newWebhookToken ?? (() => randomBytes(24).toString('base64url'));
  const write = (record: StoredOrg): Promise<void> => directory.write(deps.producer, record);
  const live = (orgId: string): StoredOrg | undefined => {
    const stored = directory.stored(orgId);
    return stored && !stored.deleted ? stored : undefined;
  };
  const portalOwner = (portalId: number, orgId: string): OrgId | undefined => {
    const found = directory.lookupByPortal(portalId);
    if (found.kind === 'org' && found.org.orgId !== orgId) return found.org.orgId;
    if (found.kind === 'unreadable' && found.orgId !== orgId) return found.orgId;
    return undefined;
  };
  /** A kept secret, sealed again with the current key; `unreadable` when no key opens it. */
  const keep = (sealed: string | undefined): { sealed: string | undefined } | 'unreadable' => {
    if (sealed === undefined) return { sealed: undefined };
    const opened = secrets.tryOpen(sealed);
    return opened ? { sealed: secrets.seal(opened.plain) } : 'unreadable';
  };
  const readable = (orgId: string): Org => {
    const found = directory.lookupById(orgId);
    if (found.kind !== 'org') throw new Error(`organisation ${orgId} is ${found.kind} right after its write`);
    return found.org;
  };

  return {
    /**
     * PUT /admin/orgs/{orgId}: creates, or replaces a live record, even one no key opens. The
     * webhook token is kept (the legacy URL HubSpot calls keeps working): sealed again with the
     * current key when a key opens it, else kept sealed as it is with its hash.
     */
    async put(orgId: string, input: OrgInput): Promise<PutOrgResult> {
      const owner = portalOwner(input.hubspot.portalId, orgId);
      if (owner) return { kind: 'portal_taken', owner };
      const previous = live(orgId);
      const { hubspot } = input;

      let webhookToken: string;
      let webhookTokenHash: string;
      const openedToken = previous ? secrets.tryOpen(previous.webhookToken) : undefined;
      if (previous && !openedToken) {
        webhookToken = previous.webhookToken;
        webhookTokenHash = previous.webhookTokenHash;
      } else {
        const token = openedToken?.plain ?? newWebhookToken();
        webhookToken = secrets.seal(token);
        webhookTokenHash = hashWebhookToken(token);
      }

      // A PUT without tokens keeps those an OAuth install stored; OAuth tokens no key opens are
      // dropped (the org reconnects), a private-app token or secret must be sent again.
      let accessToken: string | undefined;
      let refreshToken: string | undefined;
      let tokenExpiresAt: number | undefined;
      let oauthTokensDropped = false;
      const unreadable: SealedField[] = [];
      if (hubspot.accessToken) accessToken = secrets.seal(hubspot.accessToken);
      else if (previous) {
        const keptAccess = keep(previous.hubspot.accessToken);
        const keptRefresh = keep(previous.hubspot.refreshToken);
        if (keptAccess !== 'unreadable' && keptRefresh !== 'unreadable') {
          accessToken = keptAccess.sealed;
          refreshToken = keptRefresh.sealed;
          tokenExpiresAt = previous.hubspot.tokenExpiresAt;
        } else if (previous.hubspot.refreshToken !== undefined) oauthTokensDropped = true;
        else unreadable.push('hubspot.accessToken');
      }
      let privateAppClientSecret: string | undefined;
      if (hubspot.privateAppClientSecret)
        privateAppClientSecret = secrets.seal(hubspot.privateAppClientSecret);
      else if (previous) {
        const kept = keep(previous.hubspot.privateAppClientSecret);
        if (kept === 'unreadable') unreadable.push('hubspot.privateAppClientSecret');
        else privateAppClientSecret = kept.sealed;
      }
      if (unreadable.length > 0) return { kind: 'secrets_unreadable', fields: unreadable };

      await write({
        orgId,
        deleted: false,
        updatedAt: deps.now(),
        hubspot: {
          portalId: hubspot.portalId,
          aiActorId: hubspot.aiActorId,
          defaultOwnerActorId: hubspot.defaultOwnerActorId,
          accessToken,
          refreshToken,
          tokenExpiresAt,
          privateAppClientSecret,
          reconnectRequired: oauthTokensDropped,
        },
        opencx: { apiKey: secrets.seal(input.opencx.apiKey) },
        settings: input.settings,
        webhookToken,
        webhookTokenHash,
      });
      return { kind: previous ? 'replaced' : 'created', org: readable(orgId), oauthTokensDropped };
    },

    /** Needs no secret: a record no key opens can be deleted. */
    async delete(orgId: string): Promise<'deleted' | 'unknown'> {
      const stored = live(orgId);
      if (!stored) return 'unknown';
      await write({ ...stored, deleted: true, updatedAt: deps.now() });
      return 'deleted';
    },

    /** The OAuth callback: the installing portal and its tokens. */
    async storeOAuthTokens(orgId: string, portalId: number, tokens: OrgTokens): Promise<StoreTokensResult> {
      const stored = live(orgId);
      if (!stored) return { kind: 'unknown' };
      const owner = portalOwner(portalId, orgId);
      if (owner) return { kind: 'portal_taken', owner };
      await write({
        ...stored,
        updatedAt: deps.now(),
        hubspot: {
          ...stored.hubspot,
          portalId,
          accessToken: secrets.seal(tokens.accessToken),
          refreshToken: secrets.seal(tokens.refreshToken),
          tokenExpiresAt: tokens.expiresAt,
          reconnectRequired: false,
        },
      });
      return { kind: 'stored' };
    },

    /** The token refresher: new tokens from HubSpot's refresh grant. */
    async refreshTokens(orgId: string, tokens: OrgTokens): Promise<'stored' | 'unknown'> {
      const stored = live(orgId);
      if (!stored) return 'unknown';
      await write({
        ...stored,
        updatedAt: deps.now(),
        hubspot: {
          ...stored.hubspot,
          accessToken: secrets.seal(tokens.accessToken),
          refreshToken: secrets.seal(tokens.refreshToken),
          tokenExpiresAt: tokens.expiresAt,
        },
      });
      return 'stored';
    },

    /**
     * The operator console's settings form: only Assist Mode and ticketing change (the reconcile
     * interval, set by PUT only, is kept). Unlike a PUT
     * (which must be given the OpenCX key and resets reconnectRequired), it needs no secret
     * and leaves tokens and reconnectRequired as they are.
     */
    async updateSettings(
      orgId: string,
      settings: { readonly assistMode: boolean; readonly ticketingEnabled: boolean },
    ): Promise<'stored' | 'unchanged' | 'unknown'> {
      const stored = live(orgId);
      if (!stored) return 'unknown';
      if (
        stored.settings.assistMode === settings.assistMode &&
        stored.settings.ticketingEnabled === settings.ticketingEnabled
      )
        return 'unchanged';
      await write({
        ...stored,
        updatedAt: deps.now(),
        settings: {
          ...stored.settings,
          assistMode: settings.assistMode,
          ticketingEnabled: settings.ticketingEnabled,
        },
      });
      return 'stored';
    },

    /** HubSpot refused the organisation's token: stop retrying until it reconnects. */
    async markReconnectRequired(orgId: string): Promise<'marked' | 'already' | 'unknown'> {
      const stored = live(orgId);
      if (!stored) return 'unknown';
      if (stored.hubspot.reconnectRequired) return 'already';
      await write({
        ...stored,
        updatedAt: deps.now(),
        hubspot: { ...stored.hubspot, reconnectRequired: true },
      });
      return 'marked';
    },

    /**
     * Seals again with the current key every secret only SECRETS_KEY_PREVIOUS opens; deleted
     * records too, so that the previous key can be dropped afterwards. `updatedAt` is kept: the
     * organisation did not change. A record with a secret no key opens is not written.
     */
    async reseal(orgId: string): Promise<ResealResult> {
      const stored = directory.stored(orgId);
      if (!stored) return { kind: 'unknown' };
      const opened = openStoredOrg(stored, secrets);
      if (!opened.readable) return { kind: 'unreadable', fields: opened.unreadable, deleted: stored.deleted };
      const record = resealStoredOrg(stored, secrets);
      if (!record) return { kind: 'current', webhookTokenUnreadable: opened.webhookTokenUnreadable };
      await write(record);
      return {
        kind: 'resealed',
        fields: opened.sealedWithPrevious,
        webhookTokenUnreadable: opened.webhookTokenUnreadable,
      };
    },
  };
};
