import { createHash } from 'node:crypto';
import { z } from 'zod';
import type { OrgId, PortalId } from '../ids.ts';

const actorId = z.string().regex(/^[A-Z]-[A-Za-z0-9-]+$/, 'expected a HubSpot actor id such as A-111');

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
  settings: z.object({ assistMode: z.boolean(), ticketingEnabled: z.boolean() }),
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
  readonly settings: { readonly assistMode: boolean; readonly ticketingEnabled: boolean };
  readonly webhookToken: string;
};

export const hashWebhookToken = (token: string): string => createHash('sha256').update(token).digest('hex');

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
  legacyWebhookUrl: `${publicBaseUrl.replace(/\/$/, '')}/webhooks/hubspot/private/${org.webhookToken}`,
  updatedAt: new Date(org.updatedAt).toISOString(),
});
