/**
 * Re-runs an organisation's raw events of a time window through the processor's CURRENT handler
 * and rules, and compares each decision with the domain events already on the domain topic.
 *
 * The handler is the processor's own (services/processor/src/handle-raw-event.ts), given:
 * - a dedup store of this run alone (in memory): the processor's store says "done" for every
 *   event it handled, which would skip them all as duplicates; this one still catches HubSpot's
 *   repeated deliveries inside the window;
 * - the live property clock read, never written (this run's own advances stay in memory): a
 *   property change older than one already handled is still stale, so a reprocess never puts an
 *   older ticket value or assignment over a newer one;
 * - a publish that only collects: events are written (real run) after every decision is made,
 *   and only those whose id the domain topic does not hold yet.
 * Running it twice is safe: the second run finds the first one's events on the domain topic (ids
 * are derived from the HubSpot source, lib/contracts), and were one written twice, outbound sends
 * it with the same Idempotency-Key, which OpenCX answers without applying it again.
 */
import type { Kafka } from 'kafkajs';
import { Registry } from 'prom-client';
import { WaitReason, decodeRawWebhookEvent } from '../../lib/contracts/index.ts';
import type { DedupStore } from '../../lib/dedup-store.ts';
import type { DomainEvent } from '../../lib/domain-events.ts';
import type { HubSpotApi } from '../../lib/hubspot/index.ts';
import type { HandlerOutcome } from '../../lib/kafka/index.ts';
import { createLogger } from '../../lib/log.ts';
import { withRetry } from '../../lib/retry.ts';
import type { Org, OrgDirectory } from '../../lib/orgs/index.ts';
import type { PropertyClock, PropertyClockKey } from '../../lib/property-clock.ts';
import type { AvroCodec } from '../../lib/registry.ts';
import type { SessionLinks } from '../../lib/session-links.ts';
import {
  createRawEventHandler,
  type RawEventHandlerDeps,
} from '../../services/processor/src/handle-raw-event.ts';
import { createProcessorMetrics } from '../../services/processor/src/metrics.ts';
import { parseWebhookEvent } from '../../services/processor/src/rules/index.ts';
import {
  Change,
  compareOutcome,
  sourceKeyOfDomainEvent,
  sourceKeyOfWebhookEvent,
  type ComparedEvent,
  type CurrentOutcome,
} from './compare.ts';
import { UpstreamUnavailable } from '../upstreams.ts';
import {
  ReprocessError,
  asKafkaMessage,
  readTopicWindow,
  type TimeWindow,
  type WindowRecord,
} from './window.ts';

/** The handler asked for the same event again later (a transient failure, or its portal must wait). */
class TryAgain extends Error {
  readonly afterMs: number;

  constructor(message: string, afterMs: number) {
    super(message);
    this.afterMs = afterMs;
  }
}

export type ReprocessDeps = {
  readonly kafka: Kafka;
  readonly codec: Pick<AvroCodec, 'decodeRecord' | 'decodeEvent'>;
  readonly rawTopic: string;
  readonly domainTopic: string;
  readonly orgs: Pick<OrgDirectory, 'lookupById' | 'lookupByPortal'>;
  readonly links: Pick<SessionLinks, 'forThread' | 'forTicket' | 'catchUp'>;
  /** The processor's clock: only read. */
  readonly propertyClock: Pick<PropertyClock, 'lastApplied'>;
  readonly hubspotFor: (org: Org) => HubSpotApi;
  /** Writes domain events durably (acks=all); called by real runs only. */
  readonly publish: (events: readonly DomainEvent[]) => Promise<void>;
  readonly settings: RawEventHandlerDeps['settings'];
  readonly now: () => number;
  readonly sleep: (ms: number) => Promise<void>;
};

/** Reading both topics' windows (at once), then deciding each raw event. */
export type ReprocessPhase = 'reading' | 'reprocessing';

export type ReprocessOptions = {
  readonly orgId: string;
  readonly window: TimeWindow;
  readonly dryRun: boolean;
  /** Refuse a window (of either topic) holding more records than this. */
  readonly maxRecords: number;
  /** Transient failures (Redis, Kafka, a claim) of one event tried this often before it counts as failed. */
  readonly attempts?: number;
  readonly onProgress?: (phase: ReprocessPhase, done: number, total: number) => void;
};

export type ReprocessedEvent = {
  /** Where the raw event sits: partition@offset. */
  readonly position: string;
  readonly subscriptionType: string;
  readonly sourceKey: string | undefined;
  readonly outcome: CurrentOutcome;
  readonly compared: ComparedEvent;
};

export type ReprocessReport = {
  readonly orgId: string;
  readonly window: TimeWindow;
  readonly dryRun: boolean;
  /** Raw records read in the window (every organisation's), and this organisation's. */
  readonly rawScanned: number;
  readonly events: readonly ReprocessedEvent[];
  /** Domain records read from the window's start to the topic's end, and this organisation's. */
  readonly domainScanned: number;
  readonly domainEventsOfOrg: number;
  readonly counts: Readonly<Record<Change, number>>;
  /** The new domain events (deduplicated by id), written unless a dry run. */
  readonly newEvents: readonly DomainEvent[];
  readonly written: number;
  /** HubSpot refused the organisation's token (401) on some event: it needs reconnecting. */
  readonly reconnectRequired: boolean;
};

/** This run's dedup: claims in memory, for the window's repeated deliveries (one process, in order). */
const runDedupStore = (): DedupStore => {
  const state = new Map<string, 'claimed' | 'done'>();
  return {
    claim: async (key) => {
      if (state.get(key) === 'done') return 'duplicate';
      state.set(key, 'claimed');
      return 'claimed';
    },
    confirm: async (key) => void state.set(key, 'done'),
    release: async (key) => {
      if (state.get(key) === 'claimed') state.delete(key);
    },
    renew: async (key) => state.get(key) === 'claimed',
  };
};

/** The live clock read; this run's advances kept aside, so nothing is written to Redis. */
const runPropertyClock = (live: Pick<PropertyClock, 'lastApplied'>): PropertyClock => {
  const local = new Map<string, number>();
  const id = (key: PropertyClockKey): string =>
    `${key.orgId}\u001f${key.objectType}\u001f${key.objectId}\u001f${key.propertyName}`;
  return {
    lastApplied: async (key) => {
      const [liveValue, localValue] = [await live.lastApplied(key), local.get(id(key))];
      if (liveValue === undefined) return localValue;
      return localValue === undefined ? liveValue : Math.max(liveValue, localValue);
    },
    advance: async (key, occurredAt) => {
      local.set(id(key), Math.max(occurredAt, local.get(id(key)) ?? occurredAt));
    },
  };
};

const resolveOrg = (orgs: ReprocessDeps['orgs'], orgId: string): Org => {
  const found = orgs.lookupById(orgId);
  switch (found.kind) {
    case 'org':
      return found.org;
    case 'unknown':
      throw new ReprocessError(
        `organisation "${orgId}" is not known (no record on the orgs topic); check --org and KAFKA_TOPIC_PREFIX (GET /admin/orgs/${orgId} shows it)`,
      );
    case 'deleted':
      throw new ReprocessError(
        `organisation "${orgId}" was deleted: its events are skipped by the rules; PUT it again first if that was a mistake`,
      );
    case 'unreadable':
      throw new ReprocessError(`organisation "${orgId}" cannot be read: ${found.detail}`);
    default: {
      const unreachable: never = found;
      return unreachable;
    }
  }
};

/** The same client, each failure of a call handed to `failed` on its way to the caller. */
const watchingFailures = (api: HubSpotApi, failed: (error: unknown) => void): HubSpotApi => {
  const watched =
    <A extends unknown[], R>(call: (...args: A) => Promise<R>) =>
    (...args: A): Promise<R> =>
      call(...args).catch((error: unknown) => {
        failed(error);
        throw error;
      });
  return {
    getMessage: watched(api.getMessage),
    getOriginalContent: watched(api.getOriginalContent),
    getThread: watched(api.getThread),
    getNote: watched(api.getNote),
    postMessage: watched(api.postMessage),
    listMessages: watched(api.listMessages),
    listThreadsSince: watched(api.listThreadsSince),
    listThreadMessages: watched(api.listThreadMessages),
  };
};

const emptyCounts = (): Record<Change, number> =>
  Object.fromEntries(Object.values(Change).map((change) => [change, 0])) as Record<Change, number>;

const describe = (error: unknown): string => (error instanceof Error ? error.message : String(error));

export const reprocessWindow = async (
  deps: ReprocessDeps,
  options: ReprocessOptions,
): Promise<ReprocessReport> => {
  const org = resolveOrg(deps.orgs, options.orgId);
  const { orgId } = org;
  const portalKey = `portal:${org.hubspot.portalId}`;

  // 1. What the domain topic already holds for this organisation, from the window's start on
  //    (a domain event is written after its raw event) to the end as it is now; and the
  //    organisation's raw events of the window (keyed by organisation, or by portal when ingest
  //    could not route them). Read at once: each read waits for its own consumer group to form.
  const read = { domain: [0, 0], raw: [0, 0] };
  const reading = (topic: 'domain' | 'raw') => (done: number, total: number) => {
    read[topic] = [done, total];
    options.onProgress?.('reading', read.domain[0]! + read.raw[0]!, read.domain[1]! + read.raw[1]!);
  };
  const [domain, raw] = await Promise.all([
    readTopicWindow({
      kafka: deps.kafka,
      topic: deps.domainTopic,
      window: { since: options.window.since, until: undefined },
      keep: (key) => key?.startsWith(`${orgId}:`) ?? false,
      maxRecords: options.maxRecords,
      onProgress: reading('domain'),
    }),
    readTopicWindow({
      kafka: deps.kafka,
      topic: deps.rawTopic,
      window: options.window,
      keep: (key) => key === orgId || key === portalKey,
      maxRecords: options.maxRecords,
      onProgress: reading('raw'),
    }),
  ]);
  const previousBySource = new Map<string, string[]>();
  const existingIds = new Set<string>();
  for (const record of domain.records) {
    if (!record.value) continue;
    const event = await deps.codec.decodeEvent(record.value).catch(() => undefined);
    if (!event || event.type === 'ai-reply' || event.type === 'ticket-hold-check' || event.orgId !== orgId)
      continue;
    existingIds.add(event.eventId);
    const key = sourceKeyOfDomainEvent(event);
    previousBySource.set(key, [...(previousBySource.get(key) ?? []), event.eventId]);
  }

  // 2. Each through the processor's handler, as the processor builds it, with this run's stores.
  let captured: DomainEvent[] = [];
  let reconnectRequired = false;
  let lastHubSpotFailure: string | undefined;
  const handle = createRawEventHandler({
    decodeRaw: async (value) => decodeRawWebhookEvent(await deps.codec.decodeRecord(value)),
    orgs: deps.orgs,
    links: deps.links,
    dedup: runDedupStore(),
    propertyClock: runPropertyClock(deps.propertyClock),
    hubspotFor: (org) =>
      watchingFailures(deps.hubspotFor(org), (error) => void (lastHubSpotFailure = describe(error))),
    publish: async (events) => void captured.push(...events),
    markReconnectRequired: async () => void (reconnectRequired = true),
    metrics: createProcessorMetrics(new Registry()),
    logger: createLogger('reprocess', 'silent'),
    settings: deps.settings,
    now: deps.now,
    sleep: deps.sleep,
  });
  const attempts = options.attempts ?? 5;
  const decide = async (message: WindowRecord): Promise<CurrentOutcome> => {
    try {
      return await withRetry(
        { attempts, delayMs: (_attempt, error) => (error as TryAgain).afterMs },
        async (): Promise<CurrentOutcome> => {
          captured = [];
          let outcome: HandlerOutcome;
          try {
            outcome = await handle(asKafkaMessage(message));
          } catch (error) {
            // Unclassified (a bug): the processor would try a few times, then dead-letter it.
            return { kind: 'failed', error: `the handler threw: ${describe(error)}` };
          }
          switch (outcome.kind) {
            case 'done':
              return { kind: 'emitted', events: captured };
            case 'skipped':
              return { kind: 'skipped', reason: outcome.reason };
            case 'dead-letter':
              return { kind: 'dead-letter', reason: outcome.reason, error: outcome.error };
            case 'retry':
              throw new TryAgain(outcome.error, outcome.afterMs);
            case 'wait-for-tenant':
              // HubSpot failed (no answer, 5xx) through the handler's own retries: every later event
              // would go the same way, each through its retries again. The run stops; nothing is
              // written before every event is decided, so it stops having written nothing.
              if (outcome.reason === WaitReason.hubspotUnavailable)
                throw new UpstreamUnavailable(
                  'hubspot',
                  `kept failing through ${deps.settings.retry.attempts} attempts of one call (${lastHubSpotFailure ?? outcome.reason}): stopped at raw event ${message.partition}@${message.offset}, nothing written`,
                );
              // The portal's HubSpot budget is spent, or HubSpot rate-limits it: wait (at most 10 s
              // a time) and try again; after the attempts the event is reported failed (run again).
              throw new TryAgain(
                `the portal must wait: ${outcome.reason}`,
                Math.min(10_000, Math.max(1000, (outcome.untilMs ?? 0) - deps.now())),
              );
            default: {
              const unreachable: never = outcome;
              return unreachable;
            }
          }
        },
        { retryIf: (error) => error instanceof TryAgain, sleep: deps.sleep },
      );
    } catch (error) {
      if (!(error instanceof TryAgain)) throw error;
      return { kind: 'failed', error: `still failing after ${attempts} attempts: ${error.message}` };
    }
  };

  const events: ReprocessedEvent[] = [];
  const counts = emptyCounts();
  const newEvents = new Map<string, DomainEvent>();
  for (const [index, record] of raw.records.entries()) {
    let subscriptionType = 'unknown';
    let sourceKey: string | undefined;
    let belongs = true;
    if (record.value) {
      const rawEvent = await deps.codec
        .decodeRecord(record.value)
        .then(decodeRawWebhookEvent)
        .catch(() => undefined);
      if (rawEvent) {
        subscriptionType = rawEvent.subscriptionType;
        // A portal-keyed record of another organisation with the same portal cannot be, but a
        // record naming another organisation is not ours to reprocess.
        belongs =
          rawEvent.orgId === orgId || (rawEvent.orgId === null && rawEvent.portalId === org.hubspot.portalId);
        const parsed = parseWebhookEvent(rawEvent.event);
        if (parsed.ok) sourceKey = sourceKeyOfWebhookEvent(parsed.event);
      }
    }
    if (belongs) {
      const outcome = await decide(record);
      const compared = compareOutcome(
        outcome,
        sourceKey === undefined ? [] : (previousBySource.get(sourceKey) ?? []),
        existingIds,
      );
      counts[compared.change] += 1;
      for (const event of compared.newEvents)
        if (!newEvents.has(event.eventId)) newEvents.set(event.eventId, event);
      events.push({
        position: `${record.partition}@${record.offset}`,
        subscriptionType,
        sourceKey,
        outcome,
        compared,
      });
    }
    options.onProgress?.('reprocessing', index + 1, raw.records.length);
  }

  // 3. The new effects, in the order they were decided (a conversation's stay in its order).
  const toWrite = [...newEvents.values()];
  if (!options.dryRun && toWrite.length > 0) await deps.publish(toWrite);

  return {
    orgId,
    window: options.window,
    dryRun: options.dryRun,
    rawScanned: raw.scanned,
    events,
    domainScanned: domain.scanned,
    domainEventsOfOrg: existingIds.size,
    counts,
    newEvents: toWrite,
    written: options.dryRun ? 0 : toWrite.length,
    reconnectRequired,
  };
};
