export { OrgDirectory } from './directory.ts';
export { OrgInput, StoredOrg, publicView, hashWebhookToken, type Org } from './model.ts';
export { createSecretBox, type SecretBox, type SealedSecret } from './secrets.ts';
