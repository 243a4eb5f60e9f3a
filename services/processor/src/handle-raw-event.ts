import type { KafkaMessage } from 'kafkajs';
import { DeadLetterReason, IgnoreReason, type RawWebhookEvent } from '../../../lib/contracts/index.ts';
import type { DomainEvent } from '../../../lib/domain-events.ts';
import { ErrorCode, PipelineError, describeError } from '../../../lib/errors.ts';
import { classifyDecodeFailure, classifyFailure } from '../../../lib/failure-outcome.ts';
import {
  isTruncated,
  parkOnRateLimit,
  withOriginalContent,
  type HubSpotApi,
} from '../../../lib/hubspot/index.ts';
import { done, type HandlerOutcome } from '../../../lib/kafka/index.ts';
import { catchUpOrRetryLater } from '../../../lib/kafka/table.ts';
import type { PropertyClock, PropertyClockKey } from '../../../lib/property-clock.ts';
import { lazyChild, type EventLog, type Logger } from '../../../lib/log.ts';
import type { Org, OrgDirectory, OrgLookup } from '../../../lib/orgs/index.ts';
import { withRetry, type RetryPolicy } from '../../../lib/retry.ts';
import type { SessionLinks } from '../../../lib/session-links.ts';
import type { ProcessorMetrics } from './metrics.ts';
import { claimOrWait, type DedupStore } from '../../../lib/dedup-store.ts';
import {
  checkDeliveryPortal,
  decideHandoff,
  decideNoteMirror,
  decideTicketFieldChange,
  isNoteCreation,
  parseWebhookEvent,
  routeNewMessage,
  ticketOfNote,
  type Decision,
  type WebhookEvent,
} from './rules/index.ts';

export type RawEventHandlerDeps = {
  /** The raw record's bytes as a RawWebhookEvent; throws when they are not one. */
  readonly decodeRaw: (value: Buffer) => Promise<RawWebhookEvent>;
  readonly orgs: Pick<OrgDirectory, 'lookupById' | 'lookupByPortal'>;
  /** `catchUp` before trusting a miss: a link written moments ago may not have reached this replica yet. */
  readonly links: Pick<SessionLinks, 'forThread' | 'forTicket' | 'catchUp'>;
  readonly dedup: DedupStore;
  /** Newest occurredAt handled per object property: late, older changes are skipped as stale. */
  readonly propertyClock: PropertyClock;
  readonly hubspotFor: (org: Org) => HubSpotApi;
  readonly publish: (events: readonly DomainEvent[]) => Promise<void>;
  readonly markReconnectRequired: (org: Org) => Promise<void>;
  readonly metrics: ProcessorMetrics;
  readonly logger: Logger;
  readonly settings: {
    readonly emailDelayMs: number;
    readonly claimLeaseMs: number;
    readonly retry: RetryPolicy;
    /** How long to wait before the same event again when Kafka, Redis or a claim is in the way. */
    readonly transientRetryMs: number;
  };
  readonly now: () => number;
  readonly sleep: (ms: number) => Promise<void>;
};

/**
 * One unit of work: the dedup key, how to decide (which may call HubSpot), and for a property
 * change the property clock to raise once the decision is durable.
 */
type Plan = {
  readonly dedupKey: string;
  readonly decide: () => Promise<Decision>;
  readonly clock?: { readonly key: PropertyClockKey; readonly occurredAt: number };
};

/**
 * A new message's dedup key: one per organisation and HubSpot message, however it arrived (a
 * webhook, a HubSpot retry, the reconciler).
 */
export const messageDedupKey = (orgId: string, messageId: string): string => `${orgId}:message:${messageId}`;

/**
 * A property change's dedup key (one per object, property and occurrence) and the property clock
 * it reads, and raises once its decision is durable.
 */
const propertyChange = (
  orgId: string,
  objectType: 'conversation' | 'ticket',
  event: { readonly objectId: string; readonly propertyName: string; readonly occurredAt: number },
) => {
  const key: PropertyClockKey = {
    orgId,
    objectType,
    objectId: event.objectId,
    propertyName: event.propertyName,
  };
  return {
    key,
    dedupKey: `${orgId}:${objectType}:${event.objectId}:${event.propertyName}:${event.occurredAt}`,
    clock: { key, occurredAt: event.occurredAt },
  };
};

export const createRawEventHandler = (deps: RawEventHandlerDeps) => {
  const { metrics } = deps;

  const skipped = (log: EventLog, type: string, reason: IgnoreReason): HandlerOutcome => {
    metrics.ignored.inc({ reason, subscription_type: type });
    metrics.events.inc({ subscription_type: type, outcome: 'ignored' });
    log.debug({ reason }, 'event ignored');
    return { kind: 'skipped', reason };
  };

  const countDeadLetter = (eventType: string | null): void =>
    metrics.events.inc({ subscription_type: eventType ?? 'unknown', outcome: 'dead_lettered' });

  /** The consumer writes the letter; this counts the event and says why. */
  const deadLetter = (
    reason: DeadLetterReason,
    error: string,
    context: { orgId: string | null; eventType: string | null },
  ): HandlerOutcome => {
    countDeadLetter(context.eventType);
    return { kind: 'dead-letter', reason, error, eventId: null, attempts: 1, ...context };
  };

  /** Kafka, Redis or another replica's claim in the way: the same event again shortly. */
  const retryLater = (error: unknown): HandlerOutcome => ({
    kind: 'retry',
    error: describeError(error),
    afterMs: deps.settings.transientRetryMs,
  });

  /**
   * Which organisation an event belongs to, or why none. A record no configured key opens is
   * not "unknown": its events are dead-lettered (org_unreadable), to be replayed once the key
   * is fixed, never dropped.
   */
  const resolveOrg = (raw: RawWebhookEvent): Org | IgnoreReason | (OrgLookup & { kind: 'unreadable' }) => {
    const found =
      raw.orgId === null ? deps.orgs.lookupByPortal(raw.portalId) : deps.orgs.lookupById(raw.orgId);
    switch (found.kind) {
      case 'org':
        return found.org;
      case 'deleted':
        return IgnoreReason.orgDeleted;
      case 'unknown':
        return IgnoreReason.unknownPortal;
      case 'unreadable':
        return found;
      default: {
        const unreachable: never = found;
        return unreachable;
      }
    }
  };

  const claim = (key: string): Promise<'claimed' | 'duplicate'> =>
    claimOrWait(deps.dedup, key, { leaseMs: deps.settings.claimLeaseMs, now: deps.now, sleep: deps.sleep });

  const callHubSpot = <T>(log: EventLog, work: () => Promise<T>): Promise<T> =>
    withRetry(deps.settings.retry, () => parkOnRateLimit(work), {
      sleep: deps.sleep,
      onRetry: ({ attempt, delayMs, error }) => {
        metrics.hubspotRetries.inc({ code: error instanceof PipelineError ? error.code : 'unknown' });
        log.info({ attempt, delayMs, err: describeError(error) }, 'HubSpot call failed; retrying');
      },
    });

  /** The re-fetched message, completed from its original content when HubSpot truncated it. */
  const fetchWholeMessage = async (org: Org, threadId: string, messageId: string, log: EventLog) => {
    const message = await callHubSpot(log, () => deps.hubspotFor(org).getMessage(threadId, messageId));
    if (!isTruncated(message)) return message;
    const content = await callHubSpot(log, () =>
      deps.hubspotFor(org).getOriginalContent(threadId, messageId),
    );
    return withOriginalContent(message, content);
  };

  /**
   * A thread's or ticket's session link; on a miss, once more after the links caught up with
   * their topic: a link outbound wrote moments ago (or before a broker restart slowed this
   * replica's table) is not "no session", and skipping on it would lose the event.
   */
  const linkedThread = async (orgId: string, threadId: string) =>
    deps.links.forThread(orgId, threadId) ??
    (await catchUpOrRetryLater(() => deps.links.catchUp(), 'session links'),
    deps.links.forThread(orgId, threadId));

  const planFor = (
    event: Exclude<WebhookEvent, { subscriptionType: 'unsupported' }>,
    org: Org,
    raw: RawWebhookEvent,
    log: EventLog,
  ): Plan | IgnoreReason => {
    const orgId = org.orgId;
    switch (event.subscriptionType) {
      case 'conversation.newMessage':
        return {
          dedupKey: messageDedupKey(orgId, event.messageId),
          decide: async () => {
            const message = await fetchWholeMessage(org, event.objectId, event.messageId, log);
            return routeNewMessage(event, message, {
              orgId,
              aiActorId: org.hubspot.aiActorId,
              receivedAt: raw.receivedAt,
              emailDelayMs: deps.settings.emailDelayMs,
            });
          },
        };
      case 'conversation.propertyChange': {
        const { key, dedupKey, clock } = propertyChange(orgId, 'conversation', event);
        return {
          dedupKey,
          decide: async () =>
            decideHandoff(event, {
              orgId,
              aiActorId: org.hubspot.aiActorId,
              assistMode: org.settings.assistMode,
              session: await linkedThread(orgId, event.objectId),
              lastAppliedAt: await deps.propertyClock.lastApplied(key),
            }),
          clock,
        };
      }
      case 'ticket.propertyChange': {
        const { key, dedupKey, clock } = propertyChange(orgId, 'ticket', event);
        return {
          dedupKey,
          decide: async () =>
            decideTicketFieldChange(event, {
              orgId,
              ticketingEnabled: org.settings.ticketingEnabled,
              lastAppliedAt: await deps.propertyClock.lastApplied(key),
            }),
          clock,
        };
      }
      case 'object.creation':
        // Only notes are fetched; other objects are ignored without a HubSpot call.
        if (!isNoteCreation(event)) return IgnoreReason.notANote;
        return {
          dedupKey: `${orgId}:note:${event.objectId}`,
          decide: async () => {
            const note = await callHubSpot(log, () => deps.hubspotFor(org).getNote(event.objectId));
            const tickets = note.associations?.tickets?.results.map((ticket) => ticket.id) ?? [];
            const isLinked = (ticketId: string) => deps.links.forTicket(orgId, ticketId) !== undefined;
            // A note on several tickets goes through the linked one; when none is linked in this
            // replica's view, the view is caught up first (one may have been linked moments ago).
            if (tickets.length > 1 && !tickets.some(isLinked))
              await catchUpOrRetryLater(() => deps.links.catchUp(), 'session links');
            return decideNoteMirror(event, note, { orgId, ticketId: ticketOfNote(tickets, isLinked) });
          },
        };
      default: {
        const unreachable: never = event;
        return unreachable;
      }
    }
  };

  /**
   * Raised only after the emit is durable. A crash between emit and this line redelivers the
   * event (its offset is uncommitted) and it is decided again against the old clock: the same
   * decision, the same deterministic event id, which OpenCX's Idempotency-Key makes a no-op.
   * Should a newer change of the property have been handled in between (possible only across
   * a rebalance: one conversation's events run in order on one consumer), the redelivered one
   * is now stale and skipped; its first emit went out before the newer one's, so the newer
   * value is applied last. Raising first and emitting after would instead lose the change
   * on such a crash. The clock only ever rises, so raising it for any decision is safe.
   */
  const advancePropertyClock = async (plan: Plan): Promise<void> => {
    if (plan.clock) await deps.propertyClock.advance(plan.clock.key, plan.clock.occurredAt);
  };

  return async (message: KafkaMessage): Promise<HandlerOutcome> => {
    let raw: RawWebhookEvent;
    try {
      if (!message.value) throw new Error('record has no value');
      raw = await deps.decodeRaw(message.value);
    } catch (error) {
      const outcome = classifyDecodeFailure(error, deps.settings.transientRetryMs);
      if (outcome.kind === 'dead-letter') countDeadLetter(null);
      return outcome;
    }
    const type = raw.subscriptionType;
    const parsed = parseWebhookEvent(raw.event);
    if (!parsed.ok)
      return deadLetter(DeadLetterReason.malformedEvent, parsed.detail, {
        orgId: raw.orgId,
        eventType: type,
      });
    const event = parsed.event;
    const baseLog = lazyChild(deps.logger, { portalId: raw.portalId, subscriptionType: type });
    if (event.subscriptionType === 'unsupported') return skipped(baseLog, type, IgnoreReason.unsupportedType);

    const org = resolveOrg(raw);
    if (typeof org === 'string') return skipped(baseLog, type, org);
    if ('kind' in org) {
      baseLog.error(
        { orgId: org.orgId, detail: org.detail },
        'organisation record unreadable: event dead-lettered',
      );
      return deadLetter(DeadLetterReason.orgUnreadable, org.detail, {
        orgId: org.orgId,
        eventType: type,
      });
    }
    const portalMismatch = checkDeliveryPortal(raw, org.hubspot.portalId);
    if (portalMismatch) return skipped(baseLog.child({ orgId: org.orgId }), type, portalMismatch);
    const log = baseLog.child({
      orgId: org.orgId,
      objectId: event.objectId,
      ...('messageId' in event ? { messageId: event.messageId } : {}),
    });

    const plan = planFor(event, org, raw, log);
    if (typeof plan === 'string') return skipped(log, type, plan);

    let claimed: 'claimed' | 'duplicate';
    try {
      claimed = await claim(plan.dedupKey);
    } catch (error) {
      // Redis unreachable, or another replica holding the claim: both pass.
      return retryLater(error);
    }
    if (claimed === 'duplicate') return skipped(log, type, IgnoreReason.duplicate);
    let decision: Decision;
    try {
      decision = await plan.decide();
      if (decision.kind === 'emit') {
        const wait = (decision.notBefore ?? 0) - deps.now();
        // Email: wait here. Only this conversation waits; the offset stays uncommitted, so a
        // restart during the delay redelivers the event and the wait resumes from receivedAt.
        if (wait > 0) await deps.sleep(wait);
        await deps.publish(decision.events);
      }
    } catch (error) {
      // Best effort: a claim not released expires with its lease.
      await deps.dedup.release(plan.dedupKey).catch(() => undefined);
      if (error instanceof PipelineError && error.code === ErrorCode.upstreamUnauthorized) {
        metrics.reconnectRequired.inc({ org_id: org.orgId });
        try {
          await deps.markReconnectRequired(org);
        } catch (markError) {
          return retryLater(markError);
        }
      }
      const outcome = classifyFailure(error, {
        upstream: 'hubspot',
        now: deps.now(),
        transientRetryMs: deps.settings.transientRetryMs,
        retryAttempts: deps.settings.retry.attempts,
        event: { orgId: org.orgId, eventType: type, eventId: null },
      });
      // Unclassified is a bug: the consumer tries it a few times, then dead-letters it as handler_crashed.
      if (outcome.kind === 'unclassified') throw error;
      if (outcome.kind === 'wait-for-tenant')
        log.info({ err: describeError(error) }, 'portal cannot take the event now; parked');
      if (outcome.kind === 'dead-letter') countDeadLetter(type);
      return outcome;
    }
    // Confirmed only now that the effect is durable (claim, emit, then confirm).
    try {
      await advancePropertyClock(plan);
      await deps.dedup.confirm(plan.dedupKey);
    } catch (error) {
      // The events are written; emitting them again carries the same ids (a no-op downstream).
      return retryLater(error);
    }
    metrics.endToEndDelay.observe(Math.max(0, deps.now() - raw.receivedAt) / 1000);
    if (decision.kind === 'ignore') return skipped(log, type, decision.reason);
    metrics.events.inc({ subscription_type: type, outcome: 'emitted' });
    for (const domainEvent of decision.events) {
      metrics.emitted.inc({ type: domainEvent.type });
      log.debug({ eventId: domainEvent.eventId, type: domainEvent.type }, 'domain event emitted');
    }
    return done;
  };
};
