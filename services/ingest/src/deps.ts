/** What the ingest app is built from (routes/ read it too). */
import type { Registry } from 'prom-client';
import type { WebhookRoute } from '../../../lib/contracts/index.ts';
import type { Logger } from '../../../lib/log.ts';
import type { Org, OrgDirectory, OrgRepository } from '../../../lib/orgs/index.ts';
import type { SignedToken } from '../../../lib/signed-tokens.ts';
import type { IngestConfig } from './config.ts';
import type { IngestMetrics } from './metrics.ts';
import type { HubSpotOAuth, OAuthStateLedger } from './oauth.ts';
import type { AcceptedEvent } from './webhook-batch.ts';

/** Writes a batch's events durably (acks from all in-sync replicas); rejects when Kafka cannot. */
export type RawEventSink = (
  route: WebhookRoute,
  events: readonly { event: AcceptedEvent; org: Org | undefined }[],
) => Promise<void>;

export type IngestDeps = {
  readonly config: IngestConfig;
  readonly orgs: OrgDirectory;
  readonly sink: RawEventSink;
  /** The OAuth callback stores the tokens through it. */
  readonly orgRepository: Pick<OrgRepository, 'storeOAuthTokens'>;
  readonly isReady: () => boolean;
  readonly metrics: IngestMetrics;
  readonly registry: Registry;
  readonly logger: Logger;
  readonly now: () => number;
  /** Present when HUBSPOT_CLIENT_ID and HUBSPOT_CLIENT_SECRET are set. */
  readonly oauth:
    | {
        readonly client: HubSpotOAuth;
        readonly tokens: SignedToken;
        /** Spends each install's state once (Redis, shared by every replica). */
        readonly states: OAuthStateLedger;
      }
    | undefined;
};
