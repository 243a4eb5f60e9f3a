import type { CustomerMessage } from '../../lib/domain-events.ts';
import { OrgId, PortalId } from '../../lib/ids.ts';
import type { Org } from '../../lib/orgs/index.ts';

/** Organisation org-1 on portal 42, connected by OAuth, its AI actor A-111. */
export const testOrg = (settings: Partial<Org['settings']> = {}): Org => ({
  orgId: OrgId('org-1'),
  deleted: false,
  updatedAt: 0,
  hubspot: {
    portalId: PortalId(42),
    aiActorId: 'A-111',
    defaultOwnerActorId: undefined,
    accessToken: 't',
    refreshToken: undefined,
    tokenExpiresAt: undefined,
    privateAppClientSecret: undefined,
    reconnectRequired: false,
  },
  opencx: { apiKey: 'k' },
  settings: { assistMode: false, ticketingEnabled: true, ...settings },
  webhookToken: 'w',
});

/** A visitor's chat message "Hi" on thread T1 of org-1, as the processor emits it. */
export const customerMessage = (overrides: Partial<CustomerMessage> = {}): CustomerMessage => ({
  type: 'customer-message',
  eventId: 'e-1',
  orgId: 'org-1',
  portalId: 42,
  occurredAt: 1_700_000_000_000,
  threadId: 'T1',
  messageId: 'm1',
  text: 'Hi',
  subject: null,
  channelId: '1000',
  channelAccountId: 'ca',
  channelType: 'web',
  senderActorId: 'V-1',
  senderName: null,
  senderDeliveryType: null,
  senderDeliveryValue: null,
  ...overrides,
});
