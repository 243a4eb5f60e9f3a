import type { Kafka, Producer } from 'kafkajs';
import { OrgId, PortalId } from '../ids.ts';
import type { Logger } from '../log.ts';
import { KafkaTable } from '../kafka/table.ts';
import { StoredOrg, hashWebhookToken, type Org } from './model.ts';
import type { SecretBox } from './secrets.ts';

/**
 * Every service's view of the organisations: the compacted orgs topic, materialised at start and
 * followed live, so a change reaches every replica without a restart.
 */
export class OrgDirectory {
  readonly #table: KafkaTable<StoredOrg>;
  readonly #secrets: SecretBox;
  readonly #topic: string;
  readonly #byId = new Map<string, Org>();
  readonly #byPortal = new Map<number, OrgId>();
  readonly #byTokenHash = new Map<string, OrgId>();

  constructor(options: {
    kafka: Kafka;
    topic: string;
    groupPrefix: string;
    secrets: SecretBox;
    logger: Logger;
  }) {
    this.#secrets = options.secrets;
    this.#topic = options.topic;
    this.#table = new KafkaTable<StoredOrg>({
      kafka: options.kafka,
      topic: options.topic,
      groupPrefix: options.groupPrefix,
      decode: (raw) => StoredOrg.parse(JSON.parse(raw.toString('utf8'))),
      logger: options.logger,
    });
    this.#table.onChange(({ key, value }) => this.#index(key, value));
  }

  start(): Promise<void> {
    return this.#table.start();
  }

  stop(): Promise<void> {
    return this.#table.stop();
  }

  /** Live organisations only; a deleted one reads as absent. */
  byId(orgId: string): Org | undefined {
    const org = this.#byId.get(orgId);
    return org && !org.deleted ? org : undefined;
  }

  /** Includes deleted organisations, so callers can tell "deleted" from "never existed". */
  byIdIncludingDeleted(orgId: string): Org | undefined {
    return this.#byId.get(orgId);
  }

  byPortal(portalId: number): Org | undefined {
    const orgId = this.#byPortal.get(portalId);
    return orgId === undefined ? undefined : this.byId(orgId);
  }

  byWebhookToken(token: string): Org | undefined {
    const orgId = this.#byTokenHash.get(hashWebhookToken(token));
    return orgId === undefined ? undefined : this.byId(orgId);
  }

  /** Every organisation, deleted ones included. */
  all(): IterableIterator<Org> {
    return this.#byId.values();
  }

  stored(orgId: string): StoredOrg | undefined {
    return this.#table.get(orgId);
  }

  /** Writes an organisation record durably, then applies it here at once (read-your-writes). */
  async write(producer: Producer, record: StoredOrg): Promise<void> {
    await producer.send({
      topic: this.#topic,
      acks: -1,
      messages: [{ key: record.orgId, value: JSON.stringify(record) }],
    });
    this.#table.applyLocal(record.orgId, record);
  }

  #index(key: string, stored: StoredOrg | undefined): void {
    const previous = this.#byId.get(key);
    if (previous) {
      if (this.#byPortal.get(previous.hubspot.portalId) === previous.orgId)
        this.#byPortal.delete(previous.hubspot.portalId);
      this.#byTokenHash.delete(hashWebhookToken(previous.webhookToken));
      this.#byId.delete(key);
    }
    if (!stored) return;
    const open = (value: string | undefined): string | undefined =>
      value === undefined ? undefined : this.#secrets.open(value);
    const org: Org = {
      orgId: OrgId(stored.orgId),
      deleted: stored.deleted,
      updatedAt: stored.updatedAt,
      hubspot: {
        portalId: PortalId(stored.hubspot.portalId),
        aiActorId: stored.hubspot.aiActorId,
        defaultOwnerActorId: stored.hubspot.defaultOwnerActorId,
        accessToken: open(stored.hubspot.accessToken),
        refreshToken: open(stored.hubspot.refreshToken),
        tokenExpiresAt: stored.hubspot.tokenExpiresAt,
        privateAppClientSecret: open(stored.hubspot.privateAppClientSecret),
        reconnectRequired: stored.hubspot.reconnectRequired,
      },
      opencx: { apiKey: this.#secrets.open(stored.opencx.apiKey) },
      settings: stored.settings,
      webhookToken: this.#secrets.open(stored.webhookToken),
    };
    this.#byId.set(key, org);
    if (!org.deleted) {
      this.#byPortal.set(org.hubspot.portalId, org.orgId);
      this.#byTokenHash.set(stored.webhookTokenHash, org.orgId);
    }
  }
}
