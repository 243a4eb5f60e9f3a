// The soak's verdict, from what the fakes recorded: every accepted event the rules give an effect
// has exactly one, in its conversation's order; nothing for the others; one session per thread;
// no AI reply posted twice (or after a handoff).
//
// Ticket property changes differ: outbound holds those of a ticket whose session it does not
// know yet, keeping only the newest value per ticket property (by occurredAt), so a change
// superseded by a newer one of the same ticket property may never be applied. Such a change is
// lost only when no newer one of its ticket property was applied either, and their order is
// that of occurredAt: an older value applied after a newer one is out of order.
//
// Messages whose webhook was dropped (fault kind `drop`) are expected too, brought by the
// reconciler: each exactly once. They come late by nature (after the messages of their thread
// delivered meanwhile), so their order is checked among themselves: one thread's recovered
// messages in the order they were written. Their AI replies are checked as any customer
// message's, but for one rule of outbound's: it keeps the last reply posted per thread
// (lib/posted-replies.ts) and takes a reply to an older message for one posted already, so a
// recovered message whose thread had a later message answered before it reached OpenCX gets no
// reply. That is counted apart (not posted, by that rule), not as lost.
import type { FakeHubSpot } from '../../fakes/hubspot.ts';
import type { FakeOpenCx, OpenCxEffect } from '../../fakes/opencx.ts';
import type { LoadGenerator, OfferedEvent } from './load.ts';

export interface Finding {
  readonly what: string;
  readonly detail: string;
}

export interface Verdict {
  readonly offered: number;
  readonly accepted: number;
  readonly effectsExpected: number;
  readonly applied: number;
  /** Ticket changes never applied because a newer value of the same ticket property was. */
  readonly superseded: number;
  readonly lost: number;
  readonly duplicated: number;
  readonly outOfOrder: number;
  readonly unexpected: number;
  readonly sessionsExpected: number;
  readonly sessionsTwice: number;
  readonly aiRepliesPosted: number;
  readonly aiRepliesLost: number;
  readonly aiRepliesTwice: number;
  readonly aiRepliesAfterHandoff: number;
  readonly orderUnchecked: number;
  readonly contractViolations: number;
  /** Fault kind `drop`: customer messages whose webhook was never posted to ingest. */
  readonly dropped: {
    readonly webhooks: number;
    /** Of those, how many reached OpenCX (only the reconciler could bring them). */
    readonly atOpenCx: number;
    readonly lost: number;
    readonly duplicated: number;
    readonly outOfOrder: number;
    /** AI replies posted to HubSpot for recovered messages. */
    readonly aiRepliesPosted: number;
    /**
     * Not posted because a reply to a later message of the thread was posted before the
     * recovered message reached OpenCX (lib/posted-replies.ts: "an older message's reply was posted").
     */
    readonly aiRepliesNotPostedNewerFirst: number;
    /** On threads handed off: a reply is then checked only not to come after the handoff. */
    readonly onHandedOffThreads: number;
  };
  readonly findings: readonly Finding[];
}

const effectKey = (effect: OpenCxEffect, threadOfSession: ReadonlyMap<string, string>): string[] => {
  const body = effect.body as Record<string, unknown>;
  switch (effect.kind) {
    case 'session-created':
      return [`session-created|${String((body.custom_data as Record<string, unknown>).hubspot_thread_id)}`];
    case 'message-sent':
      return [`message-sent|${String((body.message as Record<string, unknown>).text)}`];
    case 'agent-message':
      return [`agent-message|${String(body.text)}`];
    case 'handoff':
      return [`handoff|${threadOfSession.get(effect.sessionId) ?? `session ${effect.sessionId}`}`];
    case 'custom-data':
      return Object.values(body).map((value) => `custom-data|${String(value)}`);
    case 'agent-comment':
      return [`agent-comment|${String(body.hubspot_note_id)}`];
  }
};

const AI_TEXT = /^AI: ([\s\S]*?)\n\n<!-- OpenCX-AI-Response -->/;

export const verify = (options: {
  load: LoadGenerator;
  opencx: FakeOpenCx;
  hubspot: FakeHubSpot;
  /** Effects at or after this time come from replayed dead letters: their order is not checked. */
  replayStartedAt: number | undefined;
  /**
   * Domain event ids that were dead-lettered: a dead letter lets its conversation move on, so
   * that conversation's order is not checked (OpenCX records the id as the Idempotency-Key).
   */
  deadLetteredEventIds: ReadonlySet<string>;
}): Verdict => {
  const { load, opencx, hubspot } = options;
  const findings: Finding[] = [];
  const note = (what: string, detail: string): void => {
    findings.push({ what, detail });
  };
  const accepted = load.offered.filter((event) => event.acceptedIndex !== undefined);
  const dropped = load.offered.filter((event) => event.droppedIndex !== undefined);
  /** Where an event stands in acceptance order (a dropped one: where its batch put it). */
  const indexOf = (event: OfferedEvent): number => event.acceptedIndex ?? event.droppedIndex ?? 0;
  const expected = new Map<string, OfferedEvent>();
  for (const event of [...accepted, ...dropped])
    if (event.expect !== undefined) expected.set(`${event.expect.kind}|${event.expect.key}`, event);

  const threadOfSession = new Map<string, string>();
  for (const effect of opencx.effects)
    if (effect.kind === 'session-created')
      threadOfSession.set(
        effect.sessionId,
        String(
          ((effect.body as Record<string, unknown>).custom_data as Record<string, unknown>).hubspot_thread_id,
        ),
      );

  // Effects in OpenCX's order, each matched to the event that should have caused it.
  const seen = new Map<string, OpenCxEffect[]>();
  let unexpected = 0;
  for (const effect of opencx.effects) {
    for (const key of effectKey(effect, threadOfSession)) {
      if (effect.kind !== 'session-created' && !expected.has(key)) {
        unexpected += 1;
        note(
          'unexpected effect',
          `${key} on session ${effect.sessionId} at ${new Date(effect.at).toISOString()}`,
        );
        continue;
      }
      seen.set(key, [...(seen.get(key) ?? []), effect]);
    }
  }

  // When the newest applied change of each ticket property occurred.
  const newestAppliedAt = new Map<string, number>();
  for (const [key, event] of expected) {
    const field = ticketFieldOf(event);
    if (field === undefined || (seen.get(key)?.length ?? 0) === 0) continue;
    newestAppliedAt.set(field.name, Math.max(newestAppliedAt.get(field.name) ?? -Infinity, field.occurredAt));
  }

  let applied = 0;
  let superseded = 0;
  let lost = 0;
  let duplicated = 0;
  const droppedCounts = {
    webhooks: dropped.length,
    atOpenCx: 0,
    lost: 0,
    duplicated: 0,
    outOfOrder: 0,
    aiRepliesPosted: 0,
    aiRepliesNotPostedNewerFirst: 0,
    onHandedOffThreads: 0,
  };
  for (const [key, event] of expected) {
    const effects = seen.get(key) ?? [];
    if (effects.length >= 1) applied += 1;
    if (event.droppedIndex !== undefined) {
      if (effects.length >= 1) droppedCounts.atOpenCx += 1;
      if (effects.length === 0) droppedCounts.lost += 1;
      if (effects.length > 1) droppedCounts.duplicated += 1;
    }
    const field = ticketFieldOf(event);
    if (
      effects.length === 0 &&
      field !== undefined &&
      (newestAppliedAt.get(field.name) ?? -Infinity) > field.occurredAt
    ) {
      superseded += 1;
      continue;
    }
    if (effects.length === 0) {
      lost += 1;
      note(
        'lost',
        event.droppedIndex === undefined
          ? `#${event.seq} ${event.label} (${key}) org ${event.orgId}, accepted at ${iso(event.acceptedAt)}`
          : `#${event.seq} ${event.label} (${key}) org ${event.orgId}, its webhook dropped (its batch accepted at ${iso(event.droppedAt)}): the reconciler never brought it`,
      );
    }
    if (effects.length > 1) {
      duplicated += 1;
      note(
        'duplicated',
        `#${event.seq} ${event.label} (${key}) applied ${effects.length}× at ${effects.map((e) => iso(e.at)).join(', ')}`,
      );
    }
  }

  // One session per thread that had a customer message accepted.
  const threadsWithMessages = new Set(
    accepted.filter((event) => event.expect?.kind === 'message-sent').map((event) => event.expect?.threadId),
  );
  let sessionsTwice = 0;
  for (const threadId of threadsWithMessages) {
    const sessions = seen.get(`session-created|${threadId}`) ?? [];
    if (sessions.length > 1) {
      sessionsTwice += 1;
      note('two sessions', `thread ${threadId}: ${sessions.map((s) => s.sessionId).join(', ')}`);
    }
  }

  // Order: per conversation, the first effect of each event must follow acceptance order; per
  // ticket property (its conversation), no value may be applied after a newer one (occurredAt).
  const position = new Map(opencx.effects.map((effect, index) => [effect, index] as const));
  type Placed = { index: number; at: number; key: string; occurredAt: number | undefined };
  const byConversation = new Map<string, Placed[]>();
  // The recovered messages (dropped webhooks) of each conversation, ordered among themselves.
  const recoveredByConversation = new Map<string, Placed[]>();
  const deadLettered = new Set<string>();
  for (const [key, event] of expected) {
    const effects = seen.get(key) ?? [];
    const first = effects[0];
    if (first === undefined || event.expect === undefined) continue;
    if (effects.some((effect) => options.deadLetteredEventIds.has(effect.idempotencyKey)))
      deadLettered.add(event.expect.conversation);
    const lists = event.droppedIndex === undefined ? byConversation : recoveredByConversation;
    const list = lists.get(event.expect.conversation) ?? [];
    list.push({
      index: indexOf(event),
      at: position.get(first) ?? -1,
      key,
      occurredAt: ticketFieldOf(event)?.occurredAt,
    });
    lists.set(event.expect.conversation, list);
  }
  let outOfOrder = 0;
  let orderUnchecked = 0;
  for (const [conversation, list] of byConversation) {
    const replayed =
      deadLettered.has(conversation) ||
      (options.replayStartedAt !== undefined &&
        list.some(({ at }) => (opencx.effects[at]?.at ?? 0) >= (options.replayStartedAt ?? Infinity)));
    if (replayed) {
      orderUnchecked += 1;
      continue;
    }
    const inOpenCxOrder = [...list].sort((a, b) => a.at - b.at);
    if (inOpenCxOrder.every((each) => each.occurredAt !== undefined)) {
      // A ticket property: each value applied after a newer one is out of order.
      let newest: (typeof inOpenCxOrder)[number] | undefined;
      for (const each of inOpenCxOrder) {
        if (newest !== undefined && (each.occurredAt ?? 0) < (newest.occurredAt ?? 0)) {
          outOfOrder += 1;
          note(
            'out of order',
            `${conversation}: "${each.key}" (occurred ${iso(each.occurredAt)}) applied after the newer "${newest.key}" (occurred ${iso(newest.occurredAt)})`,
          );
          continue;
        }
        newest = each;
      }
      continue;
    }
    for (let i = 1; i < inOpenCxOrder.length; i++) {
      const before = inOpenCxOrder[i - 1];
      const after = inOpenCxOrder[i];
      if (before !== undefined && after !== undefined && before.index > after.index) {
        outOfOrder += 1;
        note(
          'out of order',
          `${conversation}: "${after.key}" (accepted #${after.index}) applied after "${before.key}" (accepted #${before.index})`,
        );
      }
    }
  }
  for (const [conversation, list] of recoveredByConversation) {
    if (deadLettered.has(conversation)) continue;
    const inOpenCxOrder = [...list].sort((a, b) => a.at - b.at);
    for (let i = 1; i < inOpenCxOrder.length; i++) {
      const before = inOpenCxOrder[i - 1];
      const after = inOpenCxOrder[i];
      if (before !== undefined && after !== undefined && before.index > after.index) {
        outOfOrder += 1;
        droppedCounts.outOfOrder += 1;
        note(
          'out of order',
          `${conversation}: recovered "${after.key}" (written #${after.index}) applied after the recovered "${before.key}" (written #${before.index}), both webhooks dropped`,
        );
      }
    }
  }

  // AI replies back to HubSpot: at most once per customer message, none after the thread's handoff,
  // exactly once on threads never handed off.
  const postedByText = new Map<string, number[]>();
  const replyIdByText = new Map<string, string>();
  for (const posted of hubspot.posted) {
    const text = (posted.body as { text?: unknown }).text;
    const match = AI_TEXT.exec(typeof text === 'string' ? text : '');
    if (match?.[1] === undefined) continue;
    postedByText.set(match[1], [...(postedByText.get(match[1]) ?? []), posted.at]);
    const replyId = /opencx-reply:([0-9a-f]+)/.exec(typeof text === 'string' ? text : '')?.[1];
    if (replyId !== undefined) replyIdByText.set(match[1], replyId);
  }
  const retriesOf = (original: OfferedEvent): string[] =>
    accepted
      .filter(
        (event) =>
          event.label === 'duplicate' &&
          event.body.messageId !== undefined &&
          event.body.messageId === original.body.messageId,
      )
      .map((event) => iso(event.acceptedAt));
  // Each thread's customer messages (delivered or recovered), for the rule on recovered ones.
  const customerMessagesOf = new Map<string, OfferedEvent[]>();
  for (const event of [...accepted, ...dropped])
    if (event.customerText !== undefined && event.expect !== undefined)
      customerMessagesOf.set(event.expect.threadId, [
        ...(customerMessagesOf.get(event.expect.threadId) ?? []),
        event,
      ]);
  /** A reply to a later customer message of the event's thread was posted at or before `before`. */
  const newerReplyPostedBy = (event: OfferedEvent, before: number): boolean =>
    (customerMessagesOf.get(event.expect?.threadId ?? '') ?? []).some(
      (other) =>
        Number(other.body.occurredAt) > Number(event.body.occurredAt) &&
        (postedByText.get(other.customerText ?? '') ?? []).some((at) => at <= before),
    );
  /**
   * A later customer message of the event's thread reached OpenCX before `reachedAt`, and its reply
   * was posted (whenever): outbound posts a thread's replies in the order OpenCX answered them, so
   * that reply went first, and the event's own became stale (lib/posted-replies.ts).
   */
  const newerAnsweredFirst = (event: OfferedEvent, reachedAt: number): boolean =>
    (customerMessagesOf.get(event.expect?.threadId ?? '') ?? []).some((other) => {
      if (Number(other.body.occurredAt) <= Number(event.body.occurredAt)) return false;
      const otherReachedAt = other.expect && seen.get(`${other.expect.kind}|${other.expect.key}`)?.[0]?.at;
      return (
        otherReachedAt !== undefined &&
        otherReachedAt < reachedAt &&
        (postedByText.get(other.customerText ?? '') ?? []).length > 0
      );
    });
  let aiRepliesLost = 0;
  let aiRepliesTwice = 0;
  let aiRepliesAfterHandoff = 0;
  for (const event of [...accepted, ...dropped]) {
    if (event.customerText === undefined || event.expect === undefined) continue;
    const postedAt = postedByText.get(event.customerText) ?? [];
    const count = postedAt.length;
    const handoffIndex = load.handoffIndexOf(event.expect.threadId);
    if (event.droppedIndex !== undefined && count > 0) droppedCounts.aiRepliesPosted += 1;
    if (event.droppedIndex !== undefined && handoffIndex !== undefined) droppedCounts.onHandedOffThreads += 1;
    const reachedOpenCxAt = seen.get(`${event.expect.kind}|${event.expect.key}`)?.[0]?.at;
    if (
      event.droppedIndex !== undefined &&
      handoffIndex === undefined &&
      count === 0 &&
      reachedOpenCxAt !== undefined &&
      (newerReplyPostedBy(event, reachedOpenCxAt) || newerAnsweredFirst(event, reachedOpenCxAt))
    ) {
      droppedCounts.aiRepliesNotPostedNewerFirst += 1;
      continue;
    }
    if (count > 1) {
      aiRepliesTwice += 1;
      note(
        'AI reply posted twice',
        `#${event.seq} "${event.customerText}" (org ${event.orgId}, thread ${event.expect.threadId}, accepted ${iso(event.acceptedAt)}, ai-reply event ${replyIdByText.get(event.customerText) ?? '?'}) posted at ${postedAt.map(iso).join(' and ')}; HubSpot retries of it offered at ${retriesOf(event).join(', ') || 'none'}`,
      );
    }
    if (handoffIndex === undefined && count === 0) {
      aiRepliesLost += 1;
      note(
        'AI reply lost',
        `#${event.seq} "${event.customerText}" on thread ${event.expect.threadId}${event.droppedIndex === undefined ? '' : ' (recovered: its webhook dropped; no reply to a later message of the thread posted before it reached OpenCX, and no later message that reached OpenCX before it answered)'}`,
      );
    }
    if (handoffIndex !== undefined && indexOf(event) > handoffIndex && count > 0) {
      aiRepliesAfterHandoff += 1;
      note('AI reply after handoff', `#${event.seq} "${event.customerText}"`);
    }
  }
  for (const violation of opencx.violations)
    note('OpenCX contract violation', `${violation.method} ${violation.path}: ${violation.reason}`);

  return {
    offered: load.offered.length,
    accepted: accepted.length,
    effectsExpected: expected.size,
    applied,
    superseded,
    lost,
    duplicated,
    outOfOrder,
    unexpected,
    sessionsExpected: threadsWithMessages.size,
    sessionsTwice,
    aiRepliesPosted: hubspot.posted.length,
    aiRepliesLost,
    aiRepliesTwice,
    aiRepliesAfterHandoff,
    orderUnchecked,
    contractViolations: opencx.violations.length,
    dropped: droppedCounts,
    findings,
  };
};

/** The ticket property a ticket change sets ("ticket <id> <property>") and when it occurred. */
const ticketFieldOf = (event: OfferedEvent): { name: string; occurredAt: number } | undefined => {
  const field = event.expect?.ticketField;
  return field === undefined
    ? undefined
    : { name: `ticket ${field.ticketId} ${field.property}`, occurredAt: field.occurredAt };
};

const iso = (at: number | undefined): string => (at === undefined ? '?' : new Date(at).toISOString());

/** Any loss, duplicate or reordering (OpenCX or the AI replies) fails the soak. */
export const failed = (verdict: Verdict): boolean =>
  verdict.lost +
    verdict.duplicated +
    verdict.outOfOrder +
    verdict.unexpected +
    verdict.sessionsTwice +
    verdict.aiRepliesLost +
    verdict.aiRepliesTwice +
    verdict.aiRepliesAfterHandoff +
    verdict.contractViolations >
  0;
