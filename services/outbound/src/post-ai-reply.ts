import type { AiReply } from '../../../lib/domain-events.ts';
import { claimOrWait, type DedupStore } from '../../../lib/dedup-store.ts';
import type { HubSpotApi, OutgoingMessage } from '../../../lib/hubspot/index.ts';
import type { Org } from '../../../lib/orgs/index.ts';
import type { SessionLink } from '../../../lib/session-links.ts';
import { SkipReason, type ApplyOutcome } from './apply-domain-event.ts';

/** The processor skips any message carrying this: our own reply's echo webhook. */
export const AI_MARKER = '<!-- OpenCX-AI-Response -->';

/**
 * The HubSpot message for an AI reply: a public MESSAGE from the org's AI actor on the thread's
 * channel, or, in Assist Mode, an internal COMMENT draft for the agent.
 */
export const hubspotMessageFor = (reply: AiReply, org: Org): OutgoingMessage => {
  const text = `${reply.text}\n\n${AI_MARKER}`;
  if (org.settings.assistMode) return { type: 'COMMENT', text: `AI draft: ${text}`, attachments: [] };
  const deliveryIdentifier =
    reply.recipientDeliveryType && reply.recipientDeliveryValue
      ? { type: reply.recipientDeliveryType, value: reply.recipientDeliveryValue }
      : undefined;
  return {
    type: 'MESSAGE',
    text,
    senderActorId: org.hubspot.aiActorId,
    channelId: reply.channelId,
    channelAccountId: reply.channelAccountId,
    recipients: [
      {
        ...(reply.recipientActorId ? { actorId: reply.recipientActorId } : {}),
        ...(deliveryIdentifier ? { deliveryIdentifiers: [deliveryIdentifier] } : {}),
      },
    ],
    attachments: [],
  };
};

export type PostAiReplyDeps = {
  readonly orgs: { byId: (orgId: string) => Org | undefined };
  readonly links: { forThread: (orgId: string, threadId: string) => SessionLink | undefined };
  readonly hubspotFor: (org: Org) => HubSpotApi;
  /** HubSpot takes no idempotency key: a claim in Redis keeps a redelivered reply from posting twice. */
  readonly dedup: DedupStore;
  readonly claim: {
    readonly leaseMs: number;
    readonly now: () => number;
    readonly sleep: (ms: number) => Promise<void>;
  };
  readonly retry: <T>(target: 'hubspot', work: () => Promise<T>) => Promise<T>;
};

export const postAiReply = async (
  reply: AiReply,
  deps: PostAiReplyDeps,
): Promise<ApplyOutcome & { posted?: 'message' | 'comment' }> => {
  const org = deps.orgs.byId(reply.orgId);
  if (!org) return { kind: 'skipped', reason: SkipReason.unknownOrg };
  if (deps.links.forThread(reply.orgId, reply.threadId)?.handedOff)
    return { kind: 'skipped', reason: SkipReason.handedOff };
  const key = `${reply.orgId}:ai-reply:${reply.eventId}`;
  const claim = await claimOrWait(deps.dedup, key, deps.claim);
  if (claim === 'duplicate') return { kind: 'skipped', reason: SkipReason.duplicate };
  const message = hubspotMessageFor(reply, org);
  try {
    await deps.retry('hubspot', () => deps.hubspotFor(org).postMessage(reply.threadId, message));
  } catch (error) {
    await deps.dedup.release(key);
    throw error;
  }
  await deps.dedup.confirm(key);
  return { kind: 'applied', posted: message.type === 'COMMENT' ? 'comment' : 'message' };
};
