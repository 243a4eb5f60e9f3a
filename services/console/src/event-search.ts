/**
 * Event search: raw webhook events and domain events of a time window, by organisation and by
 * HubSpot thread, ticket, event or message id, each raw event with what became of it. One
 * bounded read of three windows (raw, domain events, dead letters) per search.
 */
import type { Kafka } from 'kafkajs';
import type { ArchivedDeadLetter } from '../../../lib/dead-letters/index.ts';
import { readTopicWindows, type Topics, type WindowReadSummary } from '../../../lib/kafka/index.ts';
import type { AvroCodec } from '../../../lib/registry.ts';
import {
  decodeDomain,
  decodeLetter,
  decodeRaw,
  evidentSkipReason,
  expectedEventIds,
  hubspotField,
  letterIdOf,
  type DomainRecord,
  type RawRecord,
} from './records.ts';

export type EventQuery = {
  readonly orgId?: string | undefined;
  readonly from: number;
  readonly to: number;
  readonly threadId?: string | undefined;
  readonly ticketId?: string | undefined;
  /** HubSpot's eventId, or a domain event's id. */
  readonly eventId?: string | undefined;
  readonly messageId?: string | undefined;
};

/** What became of one raw event. */
export type RawOutcome =
  | { readonly kind: 'emitted'; readonly events: readonly DomainRecord[] }
  | { readonly kind: 'dead-lettered'; readonly letters: readonly ArchivedDeadLetter[] }
  | { readonly kind: 'skipped'; readonly reason: string }
  | { readonly kind: 'unknown' };

export type RawMatch = {
  readonly raw: RawRecord;
  readonly orgId: string | undefined;
  readonly outcome: RawOutcome;
  /** Letters of the domain events it led to (outbound could not apply them). */
  readonly downstreamLetters: readonly ArchivedDeadLetter[];
};

export type EventSearchResult = {
  readonly raw: readonly RawMatch[];
  readonly domain: readonly DomainRecord[];
  readonly reads: readonly WindowReadSummary[];
  /** Records that did not decode (a registry problem looks like this too). */
  readonly undecodable: number;
  /** Matches beyond what is shown. */
  readonly rawMatchesNotShown: number;
};

/** Domain events are written after their raw event: read this much past the window's end. */
export const DOMAIN_LAG_MS = 15 * 60 * 1000;
const SHOWN = 200;

const matchesRaw = (raw: RawRecord, orgId: string | undefined, query: EventQuery): boolean =>
  (query.orgId === undefined || orgId === query.orgId) &&
  (query.threadId === undefined ||
    (raw.subscriptionType.startsWith('conversation.') && hubspotField(raw, 'objectId') === query.threadId)) &&
  (query.ticketId === undefined ||
    (raw.subscriptionType.startsWith('ticket.') && hubspotField(raw, 'objectId') === query.ticketId)) &&
  (query.messageId === undefined || hubspotField(raw, 'messageId') === query.messageId) &&
  (query.eventId === undefined ||
    hubspotField(raw, 'eventId') === query.eventId ||
    expectedEventIds(raw, orgId).includes(query.eventId));

const field = (record: DomainRecord, name: string): string | undefined => {
  const value = record.record[name];
  return typeof value === 'string' || typeof value === 'number' ? String(value) : undefined;
};

const matchesDomain = (record: DomainRecord, query: EventQuery): boolean =>
  (query.orgId === undefined || field(record, 'orgId') === query.orgId) &&
  (query.threadId === undefined || field(record, 'threadId') === query.threadId) &&
  (query.ticketId === undefined || field(record, 'ticketId') === query.ticketId) &&
  (query.messageId === undefined || field(record, 'messageId') === query.messageId) &&
  (query.eventId === undefined || field(record, 'eventId') === query.eventId);

export const searchEvents = async (deps: {
  readonly kafka: Kafka;
  readonly codec: AvroCodec;
  readonly topics: Topics;
  /** The organisation of a portal now (for raw events ingest could not route when they came). */
  readonly orgOfPortal: (portalId: number) => string | undefined;
  readonly query: EventQuery;
  readonly now: number;
  readonly maxRecords: number;
  readonly timeoutMs: number;
}): Promise<EventSearchResult> => {
  const { codec, topics, query } = deps;
  const raws: { raw: RawRecord; orgId: string | undefined }[] = [];
  const domainById = new Map<string, DomainRecord>();
  const letters: ArchivedDeadLetter[] = [];
  const seenLetters = new Set<string>();
  let undecodable = 0;

  const reads = await readTopicWindows({
    kafka: deps.kafka,
    maxRecords: deps.maxRecords,
    timeoutMs: deps.timeoutMs,
    groupPrefix: 'console',
    windows: [
      { topic: topics.rawEvents.name, from: query.from, to: Math.min(query.to, deps.now + 1) },
      {
        topic: topics.domainEvents.name,
        from: query.from,
        to: query.to + DOMAIN_LAG_MS > deps.now ? undefined : query.to + DOMAIN_LAG_MS,
      },
      { topic: topics.deadLetters.name, from: query.from },
    ],
    onRecord: async (position) => {
      try {
        if (position.topic === topics.rawEvents.name) {
          const raw = await decodeRaw(codec, position);
          const orgId = raw.orgId ?? deps.orgOfPortal(raw.portalId);
          if (matchesRaw(raw, orgId, query)) raws.push({ raw, orgId });
        } else if (position.topic === topics.domainEvents.name) {
          const record = await decodeDomain(codec, position);
          // Kept when it can belong to the answer: of the organisation asked for (if one is).
          if (query.orgId === undefined || field(record, 'orgId') === query.orgId) {
            const eventId = field(record, 'eventId');
            if (eventId !== undefined && !domainById.has(eventId)) domainById.set(eventId, record);
          }
        } else {
          const id = letterIdOf(position);
          if (id !== undefined && seenLetters.has(id)) return;
          if (id !== undefined) seenLetters.add(id);
          letters.push(await decodeLetter(codec, position));
        }
      } catch {
        undecodable += 1;
      }
    },
  });

  const lettersOfDomain = (eventIds: readonly string[]): ArchivedDeadLetter[] =>
    letters.filter(
      ({ letter }) =>
        letter.sourceTopic === topics.domainEvents.name &&
        letter.eventId !== null &&
        eventIds.includes(letter.eventId),
    );
  const rawMatches = raws.map(({ raw, orgId }): RawMatch => {
    const ids = expectedEventIds(raw, orgId);
    const emitted = ids.flatMap((id) => {
      const found = domainById.get(id);
      return found ? [found] : [];
    });
    const ownLetters = letters.filter(
      ({ letter }) =>
        letter.sourceTopic === topics.rawEvents.name &&
        letter.partition === raw.position.partition &&
        letter.offset === raw.position.offset,
    );
    const skip = evidentSkipReason(raw, orgId !== undefined);
    const outcome: RawOutcome =
      emitted.length > 0
        ? { kind: 'emitted', events: emitted }
        : ownLetters.length > 0
          ? { kind: 'dead-lettered', letters: ownLetters }
          : skip !== undefined
            ? { kind: 'skipped', reason: skip }
            : { kind: 'unknown' };
    return { raw, orgId, outcome, downstreamLetters: lettersOfDomain(ids) };
  });
  const domain = [...domainById.values()]
    .filter((record) => matchesDomain(record, query) && record.position.timestamp < query.to)
    .sort((a, b) => a.position.timestamp - b.position.timestamp);
  return {
    raw: rawMatches.slice(0, SHOWN),
    domain: domain.slice(0, SHOWN),
    reads,
    undecodable,
    rawMatchesNotShown: Math.max(0, rawMatches.length - SHOWN),
  };
};
