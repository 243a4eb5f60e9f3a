export { OrgDirectory, type OrgLookup, type UnreadableOrg } from './directory.ts';
export { registerOrgDirectoryMetrics } from './metrics.ts';
export {
  OrgInput,
  StoredOrg,
  LEGACY_WEBHOOK_URL_HIDDEN,
  publicView,
  hashWebhookToken,
  openStoredOrg,
  resealStoredOrg,
  type Org,
  type OpenedOrg,
  type SealedField,
} from './model.ts';
export {
  createOrgRepository,
  type OrgRepository,
  type OrgTokens,
  type PutOrgResult,
  type ResealResult,
  type StoreTokensResult,
} from './repository.ts';
export { createSecretBox, type SecretBox, type SealedSecret, type SealingKey } from './secrets.ts';
