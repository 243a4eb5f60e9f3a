import type { KafkaMessage } from 'kafkajs';
import type { DomainEvent } from '../../../lib/domain-events.ts';
import { ErrorCode, PipelineError, describeError } from '../../../lib/errors.ts';
import type { HubSpotApi } from '../../../lib/hubspot/index.ts';
import type { Logger } from '../../../lib/log.ts';
import type { Org, OrgDirectory } from '../../../lib/orgs/index.ts';
import { withRetry, type RetryPolicy } from '../../../lib/retry.ts';
import type { SessionLinks } from '../../../lib/session-links.ts';
import type { ProcessorMetrics } from './metrics.ts';
import { claimOrWait, type DedupStore } from '../../../lib/dedup-store.ts';
import {
  IgnoreReason,
  decideHandoff,
  decideNoteMirror,
  decideTicketFieldChange,
  isNoteCreation,
  parseWebhookEvent,
  routeNewMessage,
  type Decision,
  type WebhookEvent,
} from './rules/index.ts';

/** The raw topic's record (schemas/raw-webhook-event.avsc). */
export type RawWebhookEvent = {
  readonly receivedAt: number;
  readonly route: string;
  readonly orgId: string | null;
  readonly portalId: number;
  readonly subscriptionType: string;
  readonly event: string;
};

export const DeadLetterReason = {
  undecodable: 'undecodable',
  malformedEvent: 'malformed_event',
  hubspotRejected: 'hubspot_rejected',
  hubspotUnauthorized: 'hubspot_unauthorized',
  retriesExhausted: 'retries_exhausted',
} as const;
export type DeadLetterReason = (typeof DeadLetterReason)[keyof typeof DeadLetterReason];

export type DeadLetterInput = {
  readonly message: KafkaMessage;
  readonly topic: string;
  readonly partition: number;
  readonly reason: DeadLetterReason;
  readonly error: string;
  readonly attempts: number;
  readonly orgId: string | null;
  readonly eventType: string | null;
};

export type RawEventHandlerDeps = {
  readonly decodeRaw: (value: Buffer) => Promise<RawWebhookEvent>;
  readonly orgs: Pick<OrgDirectory, 'byIdIncludingDeleted' | 'byPortal'>;
  readonly links: Pick<SessionLinks, 'forThread' | 'forTicket'>;
  readonly dedup: DedupStore;
  readonly hubspotFor: (org: Org) => HubSpotApi;
  readonly publish: (events: readonly DomainEvent[]) => Promise<void>;
  readonly deadLetter: (input: DeadLetterInput) => Promise<void>;
  readonly markReconnectRequired: (org: Org) => Promise<void>;
  readonly metrics: ProcessorMetrics;
  readonly logger: Logger;
  readonly settings: {
    readonly emailDelayMs: number;
    readonly claimLeaseMs: number;
    readonly retry: RetryPolicy;
  };
  readonly now: () => number;
  readonly sleep: (ms: number) => Promise<void>;
};

/** One unit of work: the dedup key, and how to decide (which may call HubSpot). */
type Plan = { readonly dedupKey: string; readonly decide: () => Promise<Decision> };

export const createRawEventHandler = (deps: RawEventHandlerDeps) => {
  const { metrics } = deps;

  const skipped = (log: Logger, type: string, reason: IgnoreReason): void => {
    metrics.ignored.inc({ reason, subscription_type: type });
    metrics.events.inc({ subscription_type: type, outcome: 'ignored' });
    log.debug({ reason }, 'event ignored');
  };

  /** Which organisation an event belongs to, or why none. */
  const resolveOrg = (raw: RawWebhookEvent): Org | IgnoreReason => {
    const org =
      raw.orgId === null ? deps.orgs.byPortal(raw.portalId) : deps.orgs.byIdIncludingDeleted(raw.orgId);
    if (!org) return IgnoreReason.unknownPortal;
    return org.deleted ? IgnoreReason.orgDeleted : org;
  };

  const claim = (key: string): Promise<'claimed' | 'duplicate'> =>
    claimOrWait(deps.dedup, key, { leaseMs: deps.settings.claimLeaseMs, now: deps.now, sleep: deps.sleep });

  const callHubSpot = <T>(log: Logger, work: () => Promise<T>): Promise<T> =>
    withRetry(deps.settings.retry, work, {
      sleep: deps.sleep,
      onRetry: ({ attempt, delayMs, error }) => {
        metrics.hubspotRetries.inc({ code: error instanceof PipelineError ? error.code : 'unknown' });
        log.info({ attempt, delayMs, err: describeError(error) }, 'HubSpot call failed; retrying');
      },
    });

  const planFor = (
    event: Exclude<WebhookEvent, { subscriptionType: 'unsupported' }>,
    org: Org,
    raw: RawWebhookEvent,
    log: Logger,
  ): Plan | IgnoreReason => {
    const orgId = org.orgId;
    switch (event.subscriptionType) {
      case 'conversation.newMessage':
        return {
          dedupKey: `${orgId}:message:${event.messageId}`,
          decide: async () => {
            const message = await callHubSpot(log, () =>
              deps.hubspotFor(org).getMessage(event.objectId, event.messageId),
            );
            return routeNewMessage(event, message, {
              orgId,
              aiActorId: org.hubspot.aiActorId,
              receivedAt: raw.receivedAt,
              emailDelayMs: deps.settings.emailDelayMs,
            });
          },
        };
      case 'conversation.propertyChange':
        return {
          dedupKey: `${orgId}:conversation:${event.objectId}:${event.propertyName}:${event.occurredAt}`,
          decide: () =>
            Promise.resolve(
              decideHandoff(event, {
                orgId,
                aiActorId: org.hubspot.aiActorId,
                assistMode: org.settings.assistMode,
                session: deps.links.forThread(orgId, event.objectId),
              }),
            ),
        };
      case 'ticket.propertyChange':
        return {
          dedupKey: `${orgId}:ticket:${event.objectId}:${event.propertyName}:${event.occurredAt}`,
          decide: () =>
            Promise.resolve(
              decideTicketFieldChange(event, {
                orgId,
                ticketingEnabled: org.settings.ticketingEnabled,
                ticketLinked: deps.links.forTicket(orgId, event.objectId) !== undefined,
              }),
            ),
        };
      case 'object.creation':
        // Only notes are fetched; other objects are ignored without a HubSpot call.
        if (!isNoteCreation(event)) return IgnoreReason.notANote;
        return {
          dedupKey: `${orgId}:note:${event.objectId}`,
          decide: async () => {
            const note = await callHubSpot(log, () => deps.hubspotFor(org).getNote(event.objectId));
            const tickets = note.associations?.tickets?.results.map((ticket) => ticket.id) ?? [];
            const syncedTicketId = tickets.find(
              (ticketId) => deps.links.forTicket(orgId, ticketId) !== undefined,
            );
            return decideNoteMirror(event, note, { orgId, syncedTicketId });
          },
        };
      default: {
        const unreachable: never = event;
        return unreachable;
      }
    }
  };

  const deadLetterReasonOf = (error: PipelineError): DeadLetterReason => {
    if (error.code === ErrorCode.upstreamUnauthorized) return DeadLetterReason.hubspotUnauthorized;
    if (error.retriable) return DeadLetterReason.retriesExhausted;
    return DeadLetterReason.hubspotRejected;
  };

  return async (message: KafkaMessage, partition: number, topic: string): Promise<void> => {
    const sendToDeadLetters = async (
      reason: DeadLetterReason,
      error: string,
      context: { orgId: string | null; eventType: string | null; attempts: number },
    ): Promise<void> => {
      await deps.deadLetter({ message, topic, partition, reason, error, ...context });
      metrics.deadLettered.inc({ reason });
      metrics.events.inc({ subscription_type: context.eventType ?? 'unknown', outcome: 'dead_lettered' });
      deps.logger.warn(
        { reason, error, orgId: context.orgId, offset: message.offset, partition },
        'event dead-lettered',
      );
    };

    let raw: RawWebhookEvent;
    try {
      if (!message.value) throw new Error('record has no value');
      raw = await deps.decodeRaw(message.value);
    } catch (error) {
      return sendToDeadLetters(DeadLetterReason.undecodable, describeError(error), {
        orgId: null,
        eventType: null,
        attempts: 1,
      });
    }
    const type = raw.subscriptionType;
    const parsed = parseWebhookEvent(raw.event);
    if (!parsed.ok)
      return sendToDeadLetters(DeadLetterReason.malformedEvent, parsed.detail, {
        orgId: raw.orgId,
        eventType: type,
        attempts: 1,
      });
    const event = parsed.event;
    const baseLog = deps.logger.child({ portalId: raw.portalId, subscriptionType: type });
    if (event.subscriptionType === 'unsupported') return skipped(baseLog, type, IgnoreReason.unsupportedType);

    const org = resolveOrg(raw);
    if (typeof org === 'string') return skipped(baseLog, type, org);
    const log = baseLog.child({
      orgId: org.orgId,
      objectId: event.objectId,
      ...('messageId' in event ? { messageId: event.messageId } : {}),
    });

    const plan = planFor(event, org, raw, log);
    if (typeof plan === 'string') return skipped(log, type, plan);

    if ((await claim(plan.dedupKey)) === 'duplicate') return skipped(log, type, IgnoreReason.duplicate);
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
      await deps.dedup.release(plan.dedupKey);
      if (!(error instanceof PipelineError)) throw error;
      if (error.code === ErrorCode.upstreamUnauthorized) {
        metrics.reconnectRequired.inc({ org_id: org.orgId });
        await deps.markReconnectRequired(org);
      }
      if (error.code === ErrorCode.kafkaUnavailable || error.code === ErrorCode.dedupInFlight) throw error;
      return sendToDeadLetters(deadLetterReasonOf(error), error.message, {
        orgId: org.orgId,
        eventType: type,
        attempts: error.retriable ? deps.settings.retry.attempts : 1,
      });
    }
    // Confirmed only now that the effect is durable (claim, emit, then confirm).
    await deps.dedup.confirm(plan.dedupKey);
    metrics.endToEndDelay.observe(Math.max(0, deps.now() - raw.receivedAt) / 1000);
    if (decision.kind === 'ignore') return skipped(log, type, decision.reason);
    metrics.events.inc({ subscription_type: type, outcome: 'emitted' });
    for (const domainEvent of decision.events) {
      metrics.emitted.inc({ type: domainEvent.type });
      log.info({ eventId: domainEvent.eventId, type: domainEvent.type }, 'domain event emitted');
    }
    return undefined;
  };
};
