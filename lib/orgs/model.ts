import { createHash } from 'node:crypto';
import { z } from 'zod';
import { OrgId, PortalId } from '../ids.ts';
import type { SecretBox } from './secrets.ts';

const actorId = z.string().regex(/^[A-Z]-[A-Za-z0-9-]+$/, 'expected a HubSpot actor id such as A-111');

/**
 * How often this organisation is reconciled against HubSpot, overriding RECONCILE_INTERVAL_MS;
 * 0 never reconciles it. Shorter than 10 s would spend its HubSpot budget on bookkeeping.
 */
const reconcileIntervalMs = z
  .number()
  .int()
  .min(0)
  .max(86_400_000)
  .refine((ms) => ms === 0 || ms >= 10_000, 'expected 0 (never) or at least 10000 ms')
  .optional();

/** Body of PUT /admin/orgs/{orgId} (contract.md, Admin API). */
export const OrgInput = z.strictObject({
  hubspot: z.strictObject({
    portalId: z.number().int().positive(),
    accessToken: z.string().min(1).optional(),
    privateAppClientSecret: z.string().min(1).optional(),
    aiActorId: actorId,
    defaultOwnerActorId: actorId.optional(),
  }),
  opencx: z.strictObject({ apiKey: z.string().min(1) }),
  settings: z
    .strictObject({
      assistMode: z.boolean().default(false),
      ticketingEnabled: z.boolean().default(true),
      reconcileIntervalMs,
    })
    .default({ assistMode: false, ticketingEnabled: true }),
});
export type OrgInput = z.infer<typeof OrgInput>;

const sealed = z.string().startsWith('v1.');

/** What the orgs topic stores: secrets sealed, the webhook token both sealed and hashed. */
export const StoredOrg = z.object({
  orgId: z.string().min(1),
  deleted: z.boolean(),
  updatedAt: z.number(),
  hubspot: z.object({
    portalId: z.number().int(),
    aiActorId: z.string(),
    defaultOwnerActorId: z.string().optional(),
    accessToken: sealed.optional(),
    refreshToken: sealed.optional(),
    tokenExpiresAt: z.number().optional(),
    privateAppClientSecret: sealed.optional(),
    reconnectRequired: z.boolean().default(false),
  }),
  opencx: z.object({ apiKey: sealed }),
  settings: z.object({
    assistMode: z.boolean(),
    ticketingEnabled: z.boolean(),
    reconcileIntervalMs: z.number().int().min(0).optional(),
  }),
  webhookToken: sealed,
  webhookTokenHash: z.string(),
});
export type StoredOrg = z.infer<typeof StoredOrg>;

/** An organisation as services use it: secrets in clear, in memory only. */
export type Org = {
  readonly orgId: OrgId;
  readonly deleted: boolean;
  readonly updatedAt: number;
  readonly hubspot: {
    readonly portalId: PortalId;
    readonly aiActorId: string;
    readonly defaultOwnerActorId: string | undefined;
    readonly accessToken: string | undefined;
    readonly refreshToken: string | undefined;
    readonly tokenExpiresAt: number | undefined;
    readonly privateAppClientSecret: string | undefined;
    readonly reconnectRequired: boolean;
  };
  readonly opencx: { readonly apiKey: string };
  readonly settings: {
    readonly assistMode: boolean;
    readonly ticketingEnabled: boolean;
    /** Undefined: RECONCILE_INTERVAL_MS. */
    readonly reconcileIntervalMs?: number | undefined;
  };
  /**
   * Undefined when its sealed form opens with no configured key (kept as it was by a PUT that
   * replaced an unreadable record): its hash still routes the legacy URL, which cannot be shown.
   */
  readonly webhookToken: string | undefined;
};

/** The sealed fields of a stored record, by the name an operator reads in a log line. */
const sealedFields = (stored: StoredOrg) =>
  [
    ['hubspot.accessToken', stored.hubspot.accessToken],
    ['hubspot.refreshToken', stored.hubspot.refreshToken],
    ['hubspot.privateAppClientSecret', stored.hubspot.privateAppClientSecret],
    ['opencx.apiKey', stored.opencx.apiKey],
    ['webhookToken', stored.webhookToken],
  ] as const;
export type SealedField = ReturnType<typeof sealedFields>[number][0];

/**
 * A stored record opened with the configured keys. `unreadable` names the secrets no key opens
 * (the webhook token is not among the ones a service needs: routing uses its hash);
 * `sealedWithPrevious` the ones only SECRETS_KEY_PREVIOUS opens, which a reseal rewrites.
 */
export type OpenedOrg =
  | {
      readonly readable: true;
      readonly org: Org;
      readonly sealedWithPrevious: readonly SealedField[];
      readonly webhookTokenUnreadable: boolean;
    }
  | { readonly readable: false; readonly unreadable: readonly SealedField[] };

export const openStoredOrg = (stored: StoredOrg, secrets: SecretBox): OpenedOrg => {
  const plain = new Map<SealedField, string>();
  const unreadable: SealedField[] = [];
  const sealedWithPrevious: SealedField[] = [];
  for (const [field, sealed] of sealedFields(stored)) {
    if (sealed === undefined) continue;
    const opened = secrets.tryOpen(sealed);
    if (!opened) unreadable.push(field);
    else {
      plain.set(field, opened.plain);
      if (opened.key === 'previous') sealedWithPrevious.push(field);
    }
  }
  const needed = unreadable.filter((field) => field !== 'webhookToken');
  if (needed.length > 0) return { readable: false, unreadable };
  const org: Org = {
    orgId: OrgId(stored.orgId),
    deleted: stored.deleted,
    updatedAt: stored.updatedAt,
    hubspot: {
      portalId: PortalId(stored.hubspot.portalId),
      aiActorId: stored.hubspot.aiActorId,
      defaultOwnerActorId: stored.hubspot.defaultOwnerActorId,
      accessToken: plain.get('hubspot.accessToken'),
      refreshToken: plain.get('hubspot.refreshToken'),
      tokenExpiresAt: stored.hubspot.tokenExpiresAt,
      privateAppClientSecret: plain.get('hubspot.privateAppClientSecret'),
      reconnectRequired: stored.hubspot.reconnectRequired,
    },
    opencx: { apiKey: plain.get('opencx.apiKey') ?? '' },
    settings: stored.settings,
    webhookToken: plain.get('webhookToken'),
  };
  return {
    readable: true,
    org,
    sealedWithPrevious,
    webhookTokenUnreadable: unreadable.includes('webhookToken'),
  };
};

/** Seals again with the current key every field only the previous key opened; undefined if none. */
export const resealStoredOrg = (stored: StoredOrg, secrets: SecretBox): StoredOrg | undefined => {
  let changed = false;
  const again = <T extends string | undefined>(sealed: T): T => {
    if (sealed === undefined) return sealed;
    const opened = secrets.tryOpen(sealed);
    if (opened?.key !== 'previous') return sealed;
    changed = true;
    return secrets.seal(opened.plain) as string as T;
  };
  const record: StoredOrg = {
    ...stored,
    hubspot: {
      ...stored.hubspot,
      accessToken: again(stored.hubspot.accessToken),
      refreshToken: again(stored.hubspot.refreshToken),
      privateAppClientSecret: again(stored.hubspot.privateAppClientSecret),
    },
    opencx: { apiKey: again(stored.opencx.apiKey) },
    webhookToken: again(stored.webhookToken),
  };
  return changed ? record : undefined;
};

export const hashWebhookToken = (token: string): string => createHash('sha256').update(token).digest('hex');

export const LEGACY_WEBHOOK_URL_HIDDEN =
  'the webhook token was sealed with a key no longer configured: the URL HubSpot already calls still routes to this organisation, but it cannot be shown; set SECRETS_KEY_PREVIOUS to the old key to see it';

const legacyWebhookUrl = (
  org: Org,
  publicBaseUrl: string,
): { legacyWebhookUrl: string | null; legacyWebhookUrlNote?: string } =>
  org.webhookToken === undefined
    ? { legacyWebhookUrl: null, legacyWebhookUrlNote: LEGACY_WEBHOOK_URL_HIDDEN }
    : {
        legacyWebhookUrl: `${publicBaseUrl.replace(/\/$/, '')}/webhooks/hubspot/private/${org.webhookToken}`,
      };

/** The organisation as the admin API shows it: never a secret, but the legacy webhook URL. */
export const publicView = (org: Org, publicBaseUrl: string) => ({
  orgId: org.orgId,
  hubspot: {
    portalId: org.hubspot.portalId,
    aiActorId: org.hubspot.aiActorId,
    defaultOwnerActorId: org.hubspot.defaultOwnerActorId,
    hasAccessToken: org.hubspot.accessToken !== undefined,
    hasPrivateAppClientSecret: org.hubspot.privateAppClientSecret !== undefined,
    tokenExpiresAt: org.hubspot.tokenExpiresAt,
    reconnectRequired: org.hubspot.reconnectRequired,
  },
  opencx: { hasApiKey: true },
  settings: org.settings,
  ...legacyWebhookUrl(org, publicBaseUrl),
  updatedAt: new Date(org.updatedAt).toISOString(),
});
