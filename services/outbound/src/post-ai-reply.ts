import { SkipReason } from '../../../lib/contracts/index.ts';
import type { AiReply } from '../../../lib/domain-events.ts';
import { ErrorCode, PipelineError } from '../../../lib/errors.ts';
import { catchUpOrRetryLater } from '../../../lib/kafka/table.ts';
import { claimOrWait, type DedupStore } from '../../../lib/dedup-store.ts';
import type { HubSpotApi, OutgoingMessage } from '../../../lib/hubspot/index.ts';
import type { Org } from '../../../lib/orgs/index.ts';
import type { SessionLink } from '../../../lib/session-links.ts';
import type { ApplyOutcome } from './apply-domain-event.ts';

/** The processor skips any message carrying this: our own reply's echo webhook. */
export const AI_MARKER = '<!-- OpenCX-AI-Response -->';

/** Names the ai-reply event inside the posted text, so a retry can tell it was already posted. */
export const replyIdMarker = (eventId: string): string => `<!-- opencx-reply:${eventId} -->`;

/**
 * The HubSpot message for an AI reply: a public MESSAGE from the org's AI actor on the thread's
 * channel, or, in Assist Mode, an internal COMMENT draft for the agent.
 */
export const hubspotMessageFor = (reply: AiReply, org: Org): OutgoingMessage => {
  const text = `${reply.text}\n\n${AI_MARKER}${replyIdMarker(reply.eventId)}`;
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
  readonly links: {
    forThread: (orgId: string, threadId: string) => SessionLink | undefined;
    /** Until this replica's links hold what is on their topic now (false: not in time). */
    catchUp?: () => Promise<boolean>;
  };
  readonly hubspotFor: (org: Org) => HubSpotApi;
  /** The last reply posted per thread, durable (Kafka): survives a Redis restart, unlike the claim. */
  readonly posted: {
    readonly alreadyPosted: (reply: AiReply) => boolean;
    readonly record: (reply: AiReply) => Promise<void>;
    /** Until this replica's table holds what is on its topic now (false: not in time). */
    readonly catchUp?: () => Promise<boolean>;
  };
  /** HubSpot takes no idempotency key: a claim in Redis keeps a redelivered reply from posting twice. */
  readonly dedup: DedupStore;
  /**
   * Records, durably beyond the claim's lease, that a post was attempted: true the first time.
   * A later attempt (the earlier one's process died after posting, before confirming) checks the
   * thread for the reply instead of posting blind. Also false when the store may have forgotten
   * an earlier attempt (Redis lost its data since the reply's message occurred: reply-attempts.ts).
   */
  readonly markAttempt: (orgId: string, key: string, occurredAt: number) => Promise<boolean>;
  /**
   * Forgets the attempt marker: every try of this attempt ended in an answer that proves nothing
   * was posted (a 429, a refusal, a wait before sending). The next attempt then posts without
   * first reading the thread's history: on a portal whose budget fits fewer calls per window than
   * "read history, post", a reply would otherwise spend its window on the check, be refused the
   * post, and do the same after every park, for ever.
   */
  readonly clearAttempt: (orgId: string, key: string) => Promise<void>;
  /**
   * How long a reply whose post may have gone out (a timeout, a dropped connection, a 5xx) waits
   * before its next attempt reads the thread's history: long enough for a post HubSpot was still
   * working on to show there (the HubSpot call timeout).
   */
  readonly maybePostedSettleMs: number;
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
  if (deps.posted.alreadyPosted(reply)) return { kind: 'skipped', reason: SkipReason.duplicate };
  const key = `${reply.orgId}:ai-reply:${reply.eventId}`;
  const claim = await claimOrWait(deps.dedup, key, deps.claim);
  if (claim === 'duplicate') return { kind: 'skipped', reason: SkipReason.duplicate };
  // Held for as long as this attempt runs (a rate-limited portal can make the post wait longer
  // than a lease): another replica that got the thread in a rebalance must not post meanwhile.
  const holding = setInterval(
    () => void deps.dedup.renew(key).catch(() => undefined),
    Math.max(50, Math.floor(deps.claim.leaseMs / 3)),
  );
  // Right before each post: is the claim still ours? It is not when Redis lost it (a restart)
  // while this attempt waited (a 429's ten seconds), and a replica that got the thread in a
  // rebalance meanwhile claimed it: then that one posts, and this one stands down (the consumer
  // tries the reply again later, and finds it posted or claimed).
  const stillOurs = async (): Promise<void> => {
    if (!(await deps.dedup.renew(key)))
      throw new PipelineError(
        ErrorCode.dedupInFlight,
        `claim on AI reply ${reply.eventId} lost while waiting to post (Redis restarted or the lease ran out): not posted by this attempt`,
        { retriable: false },
      );
  };
  const message = hubspotMessageFor(reply, org);
  try {
    // Posted moments ago by the replica that had the thread before a rebalance, and not in this
    // replica's table yet: with the Redis claims gone too (a restart), only the table can say so.
    // Likewise a handoff the thread's previous owner applied moments ago: after a handoff
    // nothing is posted (both tables lag most after a rebalance or a broker restart).
    const { catchUp: linksCatchUp } = deps.links;
    const { catchUp: postedCatchUp } = deps.posted;
    await Promise.all([
      linksCatchUp && catchUpOrRetryLater(linksCatchUp, 'session links'),
      postedCatchUp && catchUpOrRetryLater(postedCatchUp, 'posted AI replies'),
    ]);
    if (deps.links.forThread(reply.orgId, reply.threadId)?.handedOff) {
      await deps.dedup.confirm(key);
      return { kind: 'skipped', reason: SkipReason.handedOff };
    }
    if (deps.posted.alreadyPosted(reply)) {
      await deps.dedup.confirm(key);
      return { kind: 'skipped', reason: SkipReason.duplicate };
    }
    if (
      !(await deps.markAttempt(reply.orgId, key, reply.occurredAt)) &&
      (await alreadyPosted(reply, org, deps))
    ) {
      await deps.posted.record(reply);
      await deps.dedup.confirm(key);
      return { kind: 'skipped', reason: SkipReason.duplicate };
    }
    let maybeSent = false;
    try {
      await deps.retry('hubspot', async () => {
        await stillOurs();
        try {
          return await deps.hubspotFor(org).postMessage(reply.threadId, message);
        } catch (error) {
          if (provesNotPosted(error)) throw error;
          maybeSent = true;
          // Never posted again in memory: HubSpot may store a post that timed out here seconds
          // later, and a second post would then show the customer the answer twice. Stop the
          // in-memory retries; below, the reply waits, and its next attempt reads the thread.
          if (error instanceof PipelineError)
            throw new PipelineError(error.code, error.message, {
              retriable: false,
              upstream: 'hubspot',
              cause: error,
            });
          throw error;
        }
      });
    } catch (error) {
      if (!maybeSent) await deps.clearAttempt(reply.orgId, key);
      if (maybeSent && error instanceof PipelineError)
        throw new PipelineError(
          ErrorCode.upstreamUnavailable,
          `AI reply ${reply.eventId}: ${error.message}; it may have been posted, so it is not posted again ` +
            `before the thread's history is read, in ${deps.maybePostedSettleMs} ms (the organisation's replies wait meanwhile)`,
          { retriable: true, upstream: 'hubspot', retryAfterMs: deps.maybePostedSettleMs, cause: error },
        );
      throw error;
    }
    // Durable before the claim is confirmed; a crash in between is caught by the attempt marker
    // and the thread-history check above.
    await deps.posted.record(reply);
  } catch (error) {
    await deps.dedup.release(key);
    throw error;
  } finally {
    clearInterval(holding);
  }
  await deps.dedup.confirm(key);
  return { kind: 'applied', posted: message.type === 'COMMENT' ? 'comment' : 'message' };
};

/**
 * An answer after which HubSpot has surely not created the message: it refused it (429, 401, 4xx)
 * or it was never sent (the portal is waited for, the claim was lost). A timeout, a dropped
 * connection or a 5xx proves nothing: the message may exist.
 */
const provesNotPosted = (error: unknown): boolean =>
  error instanceof PipelineError &&
  (error.code === ErrorCode.upstreamRateLimited ||
    error.code === ErrorCode.upstreamRejected ||
    error.code === ErrorCode.upstreamUnauthorized ||
    error.code === ErrorCode.tenantWaiting ||
    error.code === ErrorCode.dedupInFlight);

const alreadyPosted = async (reply: AiReply, org: Org, deps: PostAiReplyDeps): Promise<boolean> => {
  const history = await deps.retry('hubspot', () => deps.hubspotFor(org).listMessages(reply.threadId));
  const marker = replyIdMarker(reply.eventId);
  return history.some(
    (message) => (message.text ?? '').includes(marker) || (message.richText ?? '').includes(marker),
  );
};
