import { describeError, ErrorCode, PipelineError } from '../../../../lib/errors.ts';
import { catchUpOrRetryLater } from '../../../../lib/kafka/table.ts';
import type { Org } from '../../../../lib/orgs/index.ts';
import { threadLinkKey, ticketLinkKey, type SessionLink } from '../../../../lib/session-links.ts';
import type { ApplyDeps } from './deps.ts';

/** Writes a link under its thread key and, when known, its ticket key. */
export const saveLink = (deps: ApplyDeps, link: SessionLink): Promise<void> =>
  deps.links.write([
    ...(link.threadId ? [{ key: threadLinkKey(link.orgId, link.threadId), link }] : []),
    ...(link.ticketId ? [{ key: ticketLinkKey(link.orgId, link.ticketId), link }] : []),
  ]);

/**
 * The link, or on a miss the link once this replica's view caught up with the links topic: a
 * link another replica wrote moments ago (or before a broker restart slowed this replica's
 * table) is not "no session", and skipping on it would lose the event.
 */
export const linkedThread = async (deps: ApplyDeps, orgId: string, threadId: string) =>
  deps.links.forThread(orgId, threadId) ??
  (deps.links.catchUp && (await catchUpOrRetryLater(deps.links.catchUp, 'session links')),
  deps.links.forThread(orgId, threadId));
export const linkedTicket = async (deps: ApplyDeps, orgId: string, ticketId: string) =>
  deps.links.forTicket(orgId, ticketId) ??
  (deps.links.catchUp && (await catchUpOrRetryLater(deps.links.catchUp, 'session links')),
  deps.links.forTicket(orgId, ticketId));

type TicketLookUp =
  | { readonly kind: 'found'; readonly ticketId: string | null }
  /** No slot for bookkeeping now (or HubSpot's 429): owed, made later. */
  | { readonly kind: 'deferred' }
  | { readonly kind: 'failed' };

/**
 * The ticket HubSpot associates with a thread, if any. It is a bookkeeping call: when the
 * portal's budget has no room for it, it gives up at once (and the caller owes it). One attempt:
 * this look-up is optional, and later events look again; retrying it (429s ask for up to 10 s)
 * would hold the whole conversation.
 */
export const tryLookUpTicket = async (deps: ApplyDeps, org: Org, threadId: string): Promise<TicketLookUp> => {
  try {
    const thread = await deps.hubspotFor(org).getThread(threadId);
    return { kind: 'found', ticketId: thread.threadAssociations?.associatedTicketId ?? null };
  } catch (error) {
    if (
      error instanceof PipelineError &&
      (error.code === ErrorCode.upstreamRateLimited || error.code === ErrorCode.tenantWaiting)
    )
      return { kind: 'deferred' };
    deps.logger.warn(
      { err: error, orgId: org.orgId, threadId },
      'ticket association not looked up; ticket events wait for the next message',
    );
    return { kind: 'failed' };
  }
};

/** As tryLookUpTicket, null unless found; a deferred look-up is owed (made off this queue). */
export const lookUpTicket = async (deps: ApplyDeps, org: Org, threadId: string): Promise<string | null> => {
  const found = await tryLookUpTicket(deps, org, threadId);
  if (found.kind === 'deferred') await oweTicketLookUp(deps, org.orgId, threadId, { force: true });
  return found.kind === 'found' ? found.ticketId : null;
};

/** Owing is best effort: Redis down costs the early link, never the customer's message. */
export const oweTicketLookUp = async (
  deps: ApplyDeps,
  orgId: string,
  threadId: string,
  options: { force?: boolean } = {},
): Promise<void> => {
  try {
    await deps.owedTicketLookUps.owe(orgId, threadId, options);
  } catch (error) {
    deps.logger.warn(
      { err: describeError(error), orgId, threadId },
      'ticket look-up not owed; the next customer message, handoff or rep reply looks again',
    );
  }
};

/**
 * A rep may create a ticket on a thread long after its session: while a link has no ticket, a
 * rep's activity looks again, at most once a minute per thread (HubSpot's rate limit is shared).
 */
const lastTicketLookUp = new Map<string, number>();
const TICKET_LOOK_UP_INTERVAL_MS = 60_000;
export const linkTicketIfNew = async (deps: ApplyDeps, org: Org, link: SessionLink): Promise<void> => {
  if (link.ticketId !== null || link.threadId === null) return;
  const key = `${link.orgId}:${link.threadId}`;
  if (deps.now() - (lastTicketLookUp.get(key) ?? 0) < TICKET_LOOK_UP_INTERVAL_MS) return;
  lastTicketLookUp.set(key, deps.now());
  const ticketId = await lookUpTicket(deps, org, link.threadId);
  if (ticketId !== null) await saveLink(deps, { ...link, ticketId, updatedAt: deps.now() });
};

/**
 * After the customer's message is at OpenCX. A new session's thread is looked up now if the
 * portal has room for bookkeeping (so on a quiet portal the link, ticket included, is written
 * before the AI's answer goes out, as before); if not, the look-up is owed. A thread whose link
 * has no ticket and that did not get its session from this message owes it: if outbound died
 * after the send and before this, the message comes again (its send a no-op by
 * Idempotency-Key) and owes it then. Such a crash leaves a link without a ticket (what the old
 * code wrote when its look-up failed) and the message at OpenCX; nothing the old code kept is
 * lost. Owing a thread settled in the last hour is a no-op, so a ticketless conversation does
 * not cost a look-up per message.
 */
export const linkTicketAfterSend = async (
  deps: ApplyDeps,
  org: Org,
  link: SessionLink,
  created: boolean,
): Promise<void> => {
  if (link.ticketId !== null || link.threadId === null) return;
  const threadId = link.threadId;
  if (!created) return oweTicketLookUp(deps, link.orgId, threadId);
  const found = await tryLookUpTicket(deps, org, threadId);
  if (found.kind !== 'found') return oweTicketLookUp(deps, link.orgId, threadId);
  if (found.ticketId !== null)
    await saveLink(deps, { ...link, ticketId: found.ticketId, updatedAt: deps.now() });
  await deps.owedTicketLookUps.settle({ orgId: link.orgId, threadId }).catch((error: unknown) => {
    deps.logger.warn(
      { err: describeError(error), orgId: link.orgId, threadId },
      'ticket look-up not settled',
    );
  });
};
