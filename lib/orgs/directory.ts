import type { Producer } from 'kafkajs';
import { ErrorCode, PipelineError } from '../errors.ts';
import { OrgId, PortalId } from '../ids.ts';
import type { Logger } from '../log.ts';
import { JsonTable, type JsonTableOptions } from '../kafka/json-table.ts';
import {
  StoredOrg,
  hashWebhookToken,
  openStoredOrg,
  type OpenedOrg,
  type Org,
  type SealedField,
} from './model.ts';
import type { SecretBox } from './secrets.ts';

/**
 * What the directory knows of an organisation. `unreadable` is a record whose secrets no
 * configured key opens: it exists (its portal and webhook-token hash are stored in clear), so its
 * events must wait for the key, not be dropped as if no organisation owned them.
 */
export type OrgLookup =
  | { readonly kind: 'org'; readonly org: Org }
  | { readonly kind: 'deleted'; readonly orgId: OrgId }
  | {
      readonly kind: 'unreadable';
      readonly orgId: OrgId;
      readonly portalId: PortalId;
      /** One line for a dead letter or an HTTP answer: which secrets, and what to do. */
      readonly detail: string;
    }
  | { readonly kind: 'unknown' };

export type UnreadableOrg = {
  readonly orgId: OrgId;
  readonly portalId: PortalId;
  readonly fields: readonly SealedField[];
};

type Entry = { readonly stored: StoredOrg; readonly opened: OpenedOrg };

const unreadableDetail = (orgId: string, fields: readonly SealedField[]): string =>
  `organisation ${orgId}: ${fields.join(', ')} cannot be opened with SECRETS_KEY nor SECRETS_KEY_PREVIOUS; ` +
  `set SECRETS_KEY_PREVIOUS to the key that sealed them, or PUT /admin/orgs/${orgId} again with its secrets`;

/**
 * Every service's view of the organisations: the compacted orgs topic, materialised at start and
 * followed live, so a change reaches every replica without a restart. Indexing never throws: a
 * record no key opens is still indexed by portal and webhook-token hash, as unreadable.
 */
export class OrgDirectory extends JsonTable<StoredOrg> {
  readonly #secrets: SecretBox;
  readonly #logger: Logger;
  readonly #entries = new Map<string, Entry>();
  readonly #byPortal = new Map<number, OrgId>();
  readonly #byTokenHash = new Map<string, OrgId>();

  constructor(options: JsonTableOptions & { secrets: SecretBox }) {
    super(StoredOrg, options);
    this.#secrets = options.secrets;
    this.#logger = options.logger;
    this.table.onChange(({ key, value }) => this.#index(key, value));
  }

  lookupById(orgId: string): OrgLookup {
    const entry = this.#entries.get(orgId);
    if (!entry) return { kind: 'unknown' };
    if (entry.stored.deleted) return { kind: 'deleted', orgId: OrgId(orgId) };
    if (!entry.opened.readable)
      return {
        kind: 'unreadable',
        orgId: OrgId(orgId),
        portalId: PortalId(entry.stored.hubspot.portalId),
        detail: unreadableDetail(orgId, entry.opened.unreadable),
      };
    return { kind: 'org', org: entry.opened.org };
  }

  /** The live organisation that owns a portal (deleted ones release their portal). */
  lookupByPortal(portalId: number): OrgLookup {
    const orgId = this.#byPortal.get(portalId);
    return orgId === undefined ? { kind: 'unknown' } : this.lookupById(orgId);
  }

  lookupByWebhookToken(token: string): OrgLookup {
    const orgId = this.#byTokenHash.get(hashWebhookToken(token));
    return orgId === undefined ? { kind: 'unknown' } : this.lookupById(orgId);
  }

  /** Live, readable organisations only. */
  byId(orgId: string): Org | undefined {
    const found = this.lookupById(orgId);
    return found.kind === 'org' ? found.org : undefined;
  }

  /** Readable organisations, deleted ones included, so callers can tell "deleted" from "never existed". */
  byIdIncludingDeleted(orgId: string): Org | undefined {
    const opened = this.#entries.get(orgId)?.opened;
    return opened?.readable ? opened.org : undefined;
  }

  byPortal(portalId: number): Org | undefined {
    const found = this.lookupByPortal(portalId);
    return found.kind === 'org' ? found.org : undefined;
  }

  byWebhookToken(token: string): Org | undefined {
    const found = this.lookupByWebhookToken(token);
    return found.kind === 'org' ? found.org : undefined;
  }

  /** Every readable organisation, deleted ones included. */
  *all(): IterableIterator<Org> {
    for (const { opened } of this.#entries.values()) if (opened.readable) yield opened.org;
  }

  /** Live organisations no configured key opens. */
  unreadable(): UnreadableOrg[] {
    return [...this.#entries.values()].flatMap(({ stored, opened }) =>
      stored.deleted || opened.readable
        ? []
        : [
            {
              orgId: OrgId(stored.orgId),
              portalId: PortalId(stored.hubspot.portalId),
              fields: opened.unreadable,
            },
          ],
    );
  }

  stored(orgId: string): StoredOrg | undefined {
    return this.table.get(orgId);
  }

  /** Every stored record, deleted ones included (the reseal command walks them). */
  storedRecords(): StoredOrg[] {
    return [...this.table.values()];
  }

  /**
   * Writes an organisation record durably, then applies it here at once (read-your-writes).
   * Only the write can fail (kafkaUnavailable): once Kafka has it, the change is made.
   */
  async write(producer: Producer, record: StoredOrg): Promise<void> {
    try {
      await producer.send({
        topic: this.topic,
        acks: -1,
        messages: [{ key: record.orgId, value: JSON.stringify(record) }],
      });
    } catch (error) {
      throw new PipelineError(ErrorCode.kafkaUnavailable, `organisation ${record.orgId} not written`, {
        retriable: true,
        cause: error,
      });
    }
    this.table.applyLocal(record.orgId, record);
  }

  #index(key: string, stored: StoredOrg | undefined): void {
    const previous = this.#entries.get(key);
    if (previous) {
      if (this.#byPortal.get(previous.stored.hubspot.portalId) === key)
        this.#byPortal.delete(previous.stored.hubspot.portalId);
      if (this.#byTokenHash.get(previous.stored.webhookTokenHash) === key)
        this.#byTokenHash.delete(previous.stored.webhookTokenHash);
      this.#entries.delete(key);
    }
    if (!stored) return;
    const opened = openStoredOrg(stored, this.#secrets);
    this.#entries.set(key, { stored, opened });
    if (!stored.deleted) {
      // Portal and token hash are stored in clear: an unreadable record still owns its routes.
      this.#byPortal.set(stored.hubspot.portalId, OrgId(key));
      this.#byTokenHash.set(stored.webhookTokenHash, OrgId(key));
    }
    this.#report(key, stored, opened, previous?.opened);
  }

  #report(key: string, stored: StoredOrg, opened: OpenedOrg, before: OpenedOrg | undefined): void {
    if (stored.deleted) return;
    const context = { orgId: key, portalId: stored.hubspot.portalId };
    if (!opened.readable) {
      this.#logger.error(
        { ...context, unreadable: opened.unreadable },
        `${unreadableDetail(key, opened.unreadable)}; until then its events are dead-lettered (org_unreadable) and can be replayed`,
      );
      return;
    }
    if (before && !before.readable) this.#logger.info(context, 'organisation readable again');
    if (opened.webhookTokenUnreadable && (!before?.readable || !before.webhookTokenUnreadable))
      this.#logger.warn(
        context,
        'the webhook token cannot be opened with the configured keys: its legacy URL still routes but cannot be shown',
      );
  }
}
