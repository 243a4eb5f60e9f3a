// The soak's load: HubSpot webhook events over several organisations, each written down with
// what the contract's rules say must happen to it at OpenCX (one effect, or none). Events of one
// conversation are accepted in the order they are generated (one batch in flight at a time), so
// that order is what OpenCX must see.
import * as fixtures from '../../fakes/hubspot-fixtures.ts';
import type { FakeHubSpot } from '../../fakes/hubspot.ts';
import type { FakeOpenCx, OpenCxEffectKind } from '../../fakes/opencx.ts';
import type { TestOrg } from '../pipeline.ts';

/** Seeded, so a run's choices (and faults) can be repeated: mulberry32. */
export const seededRandom = (seed: number): (() => number) => {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
};

/** What one accepted event must leave at OpenCX: exactly one effect of `kind` recognised by `key`. */
export interface Expectation {
  readonly kind: OpenCxEffectKind;
  readonly key: string;
  /** Effects of one conversation must reach OpenCX in acceptance order. */
  readonly conversation: string;
  readonly threadId: string;
  readonly orgId: string;
  /**
   * Set for a ticket property change. Until outbound knows which session the ticket is linked
   * to, it holds such changes and keeps only the newest value per ticket property (by
   * occurredAt): an older change superseded meanwhile may never be applied, and is not lost.
   */
  readonly ticketField?: {
    readonly ticketId: string;
    readonly property: string;
    readonly occurredAt: number;
  };
}

export interface OfferedEvent {
  readonly seq: number;
  /** What the event is, in the rules' terms (customer-chat, duplicate, unsupported-type, …). */
  readonly label: string;
  readonly orgId: string;
  readonly body: Record<string, unknown>;
  readonly expect: Expectation | undefined;
  /** A customer message: its AI answer may be posted back to HubSpot (at most once). */
  readonly customerText?: string;
  /**
   * Fault kind `drop`: HubSpot never delivers this webhook (its message is in HubSpot all the
   * same); the soak leaves it out of the batch it rode in, and the reconciler must bring it.
   */
  readonly webhookDropped?: true;
  acceptedIndex?: number;
  acceptedAt?: number;
  /**
   * A dropped webhook: its place in the acceptance order had it been delivered with its batch
   * (the AI-reply checks place it against its thread's handoff), and when that batch was accepted.
   */
  droppedIndex?: number;
  droppedAt?: number;
}

interface Conversation {
  readonly org: TestOrg;
  readonly threadId: string;
  readonly ticketId: string;
  readonly email: boolean;
  /** Acceptance index of the handoff, when one was offered. */
  handoffSeq: number | undefined;
  lastAssignAt: number;
  lastTicketAt: number;
  closed: boolean;
  /**
   * Drawn when the conversation is made: how long after its first message is accepted its ticket
   * change and its note are offered (so they often reach outbound before it linked the ticket).
   */
  readonly followUpMs: { readonly ticketChange: number; readonly note: number };
}

/** A ticket change or a note owed to a conversation shortly after its first message. */
interface FollowUp {
  readonly dueAt: number;
  readonly label: 'first-ticket-change' | 'first-note';
  readonly conversation: Conversation;
}

/** The ticket property the load changes (the rules sync any property; one is enough). */
const TICKET_PROPERTY = 'hs_ticket_priority';

/** Bounds of the delay between a conversation's first message and its ticket change and note. */
const FOLLOW_UP_MIN_MS = 200;
const FOLLOW_UP_MAX_MS = 1000;

export interface LoadOptions {
  readonly runId: string;
  readonly orgs: readonly TestOrg[];
  readonly hubspot: FakeHubSpot;
  readonly opencx: FakeOpenCx;
  readonly random: () => number;
  /**
   * How long a thread's session must have existed before a handoff is offered on it, and its
   * handoff been applied before a second assignment is.
   */
  readonly settleMs: number;
  /** Whether HubSpot drops the webhook of this event (fault kind `drop`); none when absent. */
  readonly dropsWebhook?: (event: { readonly seq: number; readonly label: string }) => boolean;
}

const weights: ReadonlyArray<readonly [string, number]> = [
  ['new-conversation', 10],
  ['customer-chat', 24],
  ['agent-reply', 8],
  ['internal-comment', 6],
  ['handoff', 3],
  ['ticket-change', 8],
  ['note', 5],
  ['duplicate', 12],
  ['unsupported-type', 3],
  ['bot-message', 3],
  ['welcome-message', 2],
  ['status-change', 2],
  ['assigned-to-ai', 2],
  ['ticket-empty-value', 2],
  ['other-object-creation', 2],
  ['unknown-portal', 2],
  ['ai-echo', 4],
  ['second-assignment', 2],
];
const totalWeight = weights.reduce((sum, [, weight]) => sum + weight, 0);

/** Creates events one at a time; `markAccepted` is called in acceptance order by the sender. */
export class LoadGenerator {
  readonly offered: OfferedEvent[] = [];
  readonly #options: LoadOptions;
  readonly #conversations: Conversation[] = [];
  readonly #accepted: OfferedEvent[] = [];
  readonly #sessionCreatedAt = new Map<string, number>();
  /** Ticket changes and notes owed to conversations that just started, by due time. */
  readonly #followUps: FollowUp[] = [];
  readonly #handoffAppliedAt = new Map<string, number>();
  readonly #echoed = new Set<string>();
  readonly #started = new Set<string>();
  readonly #runningList: Conversation[] = [];
  #effectsSeen = 0;
  #seq = 0;
  #acceptedCount = 0;
  #droppedCount = 0;

  constructor(options: LoadOptions) {
    this.#options = options;
  }

  /** The first event of a new conversation for this org (the warm-up uses it). */
  newConversation(org: TestOrg): OfferedEvent {
    const { random } = this.#options;
    const email = random() < 0.25;
    const delay = (): number => FOLLOW_UP_MIN_MS + random() * (FOLLOW_UP_MAX_MS - FOLLOW_UP_MIN_MS);
    const followUpMs = { ticketChange: delay(), note: delay() };
    const threadId = fixtures.newThreadId();
    const ticketId = String(1_700_000_000 + this.#conversations.length + 1);
    this.#options.hubspot.setThread(
      fixtures.thread({
        id: threadId,
        originalChannelId: email ? fixtures.EMAIL_CHANNEL_ID : fixtures.LIVE_CHAT_CHANNEL_ID,
        threadAssociations: { associatedTicketId: ticketId },
      }),
      { portalId: org.portalId },
    );
    const conversation: Conversation = {
      org,
      threadId,
      ticketId,
      email,
      handoffSeq: undefined,
      lastAssignAt: 0,
      lastTicketAt: 0,
      closed: false,
      followUpMs,
    };
    this.#conversations.push(conversation);
    return this.#customerMessage(conversation, 'new-conversation');
  }

  next(): OfferedEvent {
    this.#followEffects();
    const followUp = this.#dueFollowUp();
    if (followUp !== undefined) return followUp;
    for (let tries = 0; tries < 10; tries++) {
      const made = this.#make(this.#pick());
      if (made !== undefined) return made;
    }
    return this.newConversation(this.#anyOrg());
  }

  markAccepted(event: OfferedEvent, index: number, at: number): void {
    if (event.acceptedIndex !== undefined) return;
    event.acceptedIndex = index;
    event.acceptedAt = at;
    this.#acceptedCount += 1;
    if (event.label === 'duplicate') return;
    this.#accepted.push(event);
    const threadId = event.expect?.threadId;
    if (threadId !== undefined && !this.#started.has(threadId)) {
      this.#started.add(threadId);
      const conversation = this.#conversations.find((each) => each.threadId === threadId);
      if (conversation !== undefined) {
        this.#runningList.push(conversation);
        // Right after the first message: a ticket change and a note on the conversation's
        // ticket, before outbound has (most likely) looked the ticket up. Outbound must hold
        // them until it knows the ticket's session, then apply them.
        const { ticketChange, note } = conversation.followUpMs;
        this.#scheduleFollowUp({ dueAt: at + ticketChange, label: 'first-ticket-change', conversation });
        this.#scheduleFollowUp({ dueAt: at + note, label: 'first-note', conversation });
      }
    }
  }

  get acceptedCount(): number {
    return this.#acceptedCount;
  }

  /**
   * A dropped webhook's batch was accepted (called in acceptance order, with the index it would
   * have had). It is not a HubSpot retry's original (HubSpot gave up on it), and never a
   * conversation's first message (dropped-webhooks.ts), so nothing else follows from it.
   */
  markDropped(event: OfferedEvent, index: number, at: number): void {
    if (event.droppedIndex !== undefined) return;
    event.droppedIndex = index;
    event.droppedAt = at;
    this.#droppedCount += 1;
  }

  get droppedCount(): number {
    return this.#droppedCount;
  }

  #pick(): string {
    let roll = this.#options.random() * totalWeight;
    for (const [label, weight] of weights) {
      roll -= weight;
      if (roll < 0) return label;
    }
    return 'customer-chat';
  }

  #anyOrg(): TestOrg {
    const { orgs, random } = this.#options;
    return orgs[Math.floor(random() * orgs.length)] ?? (orgs[0] as TestOrg);
  }

  #choose<T>(items: readonly T[]): T | undefined {
    return items.length === 0 ? undefined : items[Math.floor(this.#options.random() * items.length)];
  }

  /** Conversations started (their first message accepted): later events of theirs have a session. */
  #running(): readonly Conversation[] {
    return this.#runningList;
  }

  /** Threads whose session has existed for `settleMs` (a handoff is offered only on those). */
  #sessionSettled(): Conversation[] {
    const settledBefore = Date.now() - this.#options.settleMs;
    return this.#running().filter(
      (conversation) => (this.#sessionCreatedAt.get(conversation.threadId) ?? Infinity) <= settledBefore,
    );
  }

  /** The earliest follow-up that is due, offered now (it takes the place of a random event). */
  #dueFollowUp(): OfferedEvent | undefined {
    const first = this.#followUps[0];
    if (first === undefined || first.dueAt > Date.now()) return undefined;
    this.#followUps.shift();
    return first.label === 'first-ticket-change'
      ? this.#ticketChange(first.conversation, first.label)
      : this.#note(first.conversation, first.label);
  }

  /** Kept in order of due time. */
  #scheduleFollowUp(followUp: FollowUp): void {
    const later = this.#followUps.findIndex((each) => each.dueAt > followUp.dueAt);
    this.#followUps.splice(later < 0 ? this.#followUps.length : later, 0, followUp);
  }

  #followEffects(): void {
    const { effects } = this.#options.opencx;
    for (; this.#effectsSeen < effects.length; this.#effectsSeen++) {
      const effect = effects[this.#effectsSeen];
      if (effect?.kind === 'session-created') {
        const threadId = (effect.body as { custom_data?: { hubspot_thread_id?: string } }).custom_data
          ?.hubspot_thread_id;
        if (threadId !== undefined && !this.#sessionCreatedAt.has(threadId))
          this.#sessionCreatedAt.set(threadId, effect.at);
      }
      if (effect?.kind === 'handoff') {
        const session = this.#options.opencx.sessions.get(effect.sessionId);
        const threadId = session?.customData.hubspot_thread_id;
        if (threadId !== undefined && !this.#handoffAppliedAt.has(threadId))
          this.#handoffAppliedAt.set(threadId, effect.at);
      }
    }
  }

  #make(label: string): OfferedEvent | undefined {
    const running = this.#running();
    switch (label) {
      case 'new-conversation':
        return this.newConversation(this.#anyOrg());
      case 'customer-chat': {
        const conversation = this.#choose(running);
        return conversation && this.#customerMessage(conversation, conversation.email ? 'email' : label);
      }
      case 'agent-reply':
      case 'internal-comment': {
        const conversation = this.#choose(running);
        if (conversation === undefined) return undefined;
        const text = `soak ${this.#options.runId} ${label} #${this.#seq + 1}`;
        const message = fixtures.message({
          kind: label === 'agent-reply' ? 'agent-reply' : 'comment',
          threadId: conversation.threadId,
          text,
        });
        this.#options.hubspot.addMessage(message, { portalId: conversation.org.portalId });
        return this.#offer(
          label,
          conversation.org,
          fixtures.webhookEventFor(message, this.#portal(conversation)),
          {
            kind: 'agent-message',
            key: text,
            conversation,
          },
        );
      }
      case 'handoff': {
        // Offered once the thread's session has existed for a while (outbound skips a handoff on
        // a thread that never got a session). Its ticket need not be linked.
        const conversation = this.#choose(
          this.#sessionSettled().filter((each) => each.handoffSeq === undefined),
        );
        if (conversation === undefined) return undefined;
        const offered = this.#offer(label, conversation.org, this.#assignment(conversation, 'A-2620022'), {
          kind: 'handoff',
          key: conversation.threadId,
          conversation,
        });
        conversation.handoffSeq = offered.seq;
        return offered;
      }
      case 'second-assignment': {
        // Only once the first handoff is applied: before that, two quick reassignments race by design.
        const settled = Date.now() - this.#options.settleMs;
        const conversation = this.#choose(
          running.filter((each) => (this.#handoffAppliedAt.get(each.threadId) ?? Infinity) <= settled),
        );
        return (
          conversation && this.#offer(label, conversation.org, this.#assignment(conversation, 'A-3000001'))
        );
      }
      case 'assigned-to-ai': {
        const conversation = this.#choose(running);
        return (
          conversation &&
          this.#offer(label, conversation.org, this.#assignment(conversation, conversation.org.aiActorId))
        );
      }
      case 'status-change': {
        const conversation = this.#choose(running);
        if (conversation === undefined) return undefined;
        return this.#offer(
          label,
          conversation.org,
          fixtures.propertyChangeEvent({
            ...this.#portal(conversation),
            objectId: Number(conversation.threadId),
            propertyName: 'status',
            propertyValue: 'OPEN',
          }),
        );
      }
      // Any started conversation: its ticket exists at HubSpot, and outbound holds a change or
      // note on a ticket it has not linked yet until it learns the link, then applies it.
      case 'ticket-change':
      case 'ticket-empty-value': {
        const conversation = this.#choose(running);
        return conversation && this.#ticketChange(conversation, label);
      }
      case 'note': {
        const conversation = this.#choose(running);
        return conversation && this.#note(conversation, label);
      }
      case 'duplicate': {
        const original = this.#choose(this.#accepted.slice(-400));
        if (original === undefined) return undefined;
        const attempt = Number(original.body.attemptNumber ?? 0) + 1;
        return this.#offer(label, this.#orgById(original.orgId), {
          ...original.body,
          attemptNumber: attempt,
        });
      }
      case 'unsupported-type': {
        const org = this.#anyOrg();
        return this.#offer(label, org, {
          eventId: 3_300_000_000 + this.#seq,
          subscriptionId: 2_371_672,
          portalId: org.portalId,
          appId: fixtures.FIXTURE_APP_ID,
          occurredAt: Date.now(),
          attemptNumber: 0,
          objectId: 90_000 + this.#seq,
          subscriptionType: 'contact.propertyChange',
          propertyName: 'email',
          propertyValue: `soak-${this.#seq}@example.com`,
          changeSource: 'CRM_UI',
        });
      }
      case 'bot-message':
      case 'welcome-message': {
        const conversation = this.#choose(running);
        if (conversation === undefined) return undefined;
        const message = fixtures.message({
          kind: label === 'bot-message' ? 'integration' : 'welcome',
          threadId: conversation.threadId,
          text: `soak ${this.#options.runId} ${label} #${this.#seq + 1}`,
        });
        this.#options.hubspot.addMessage(message, { portalId: conversation.org.portalId });
        return this.#offer(
          label,
          conversation.org,
          fixtures.webhookEventFor(message, this.#portal(conversation)),
        );
      }
      case 'other-object-creation': {
        const org = this.#anyOrg();
        return this.#offer(
          label,
          org,
          fixtures.noteCreationEvent({ portalId: org.portalId, objectTypeId: '0-1' }),
        );
      }
      case 'unknown-portal': {
        const org = this.#anyOrg();
        const message = fixtures.message({
          kind: 'customer-chat',
          text: `soak ${this.#options.runId} nobody's #${this.#seq + 1}`,
        });
        return this.#offer(label, org, fixtures.webhookEventFor(message, { portalId: 99_000_001 }));
      }
      case 'ai-echo': {
        const posted = this.#choose(
          this.#options.hubspot.posted.filter((entry) => !this.#echoed.has(entry.message.id)),
        );
        if (posted === undefined) return undefined;
        this.#echoed.add(posted.message.id);
        const org = this.#options.orgs.find((each) => each.portalId === posted.portalId);
        if (org === undefined) return undefined;
        return this.#offer(label, org, fixtures.webhookEventFor(posted.message, { portalId: org.portalId }));
      }
      default:
        return undefined;
    }
  }

  /** A change of the conversation's ticket: a new value, or (ticket-empty-value) an empty one. */
  #ticketChange(conversation: Conversation, label: string): OfferedEvent {
    const value = label === 'ticket-empty-value' ? '' : `soak-${this.#options.runId}-v${this.#seq + 1}`;
    conversation.lastTicketAt = Math.max(Date.now(), conversation.lastTicketAt + 1);
    const event = fixtures.ticketPropertyChangeEvent({
      ...this.#portal(conversation),
      objectId: Number(conversation.ticketId),
      propertyName: TICKET_PROPERTY,
      propertyValue: value,
      occurredAt: conversation.lastTicketAt,
    });
    return this.#offer(
      label,
      conversation.org,
      event,
      value === ''
        ? undefined
        : {
            kind: 'custom-data',
            key: value,
            conversation,
            // Ordered (and superseded) per ticket property, by occurredAt.
            orderKey: `ticket:${conversation.ticketId}:${TICKET_PROPERTY}`,
            ticketField: {
              ticketId: conversation.ticketId,
              property: TICKET_PROPERTY,
              occurredAt: conversation.lastTicketAt,
            },
          },
    );
  }

  /** A note on the conversation's ticket (its association to the ticket is in the note). */
  #note(conversation: Conversation, label: string): OfferedEvent {
    const note = fixtures.note({
      ticketId: conversation.ticketId,
      properties: { hs_note_body: `<p>soak ${this.#options.runId} note #${this.#seq + 1}</p>` },
    });
    this.#options.hubspot.addNote(note, { portalId: conversation.org.portalId });
    return this.#offer(
      label,
      conversation.org,
      fixtures.noteCreationEvent({ ...this.#portal(conversation), objectId: Number(note.id) }),
      // The processor can key a note's event only by the note (its ticket is known after the
      // re-fetch), so notes are not ordered against each other: each is its own conversation.
      { kind: 'agent-comment', key: note.id, conversation, orderKey: `note:${note.id}` },
    );
  }

  #portal(conversation: Conversation): { portalId: number } {
    return { portalId: conversation.org.portalId };
  }

  #orgById(orgId: string): TestOrg {
    return this.#options.orgs.find((org) => org.orgId === orgId) ?? this.#anyOrg();
  }

  #assignment(conversation: Conversation, assignee: string): fixtures.ConversationPropertyChangeEvent {
    conversation.lastAssignAt = Math.max(Date.now(), conversation.lastAssignAt + 1);
    return fixtures.propertyChangeEvent({
      ...this.#portal(conversation),
      objectId: Number(conversation.threadId),
      propertyValue: assignee,
      occurredAt: conversation.lastAssignAt,
    });
  }

  #customerMessage(conversation: Conversation, label: string): OfferedEvent {
    const text = `soak ${this.#options.runId} ${label} #${this.#seq + 1}`;
    const message = fixtures.message({
      kind: conversation.email ? 'customer-email' : 'customer-chat',
      threadId: conversation.threadId,
      text,
    });
    this.#options.hubspot.addMessage(message, { portalId: conversation.org.portalId });
    return this.#offer(
      label,
      conversation.org,
      fixtures.webhookEventFor(message, this.#portal(conversation)),
      { kind: 'message-sent', key: text, conversation },
      text,
    );
  }

  #offer(
    label: string,
    org: TestOrg,
    body: object,
    expect?: {
      kind: OpenCxEffectKind;
      key: string;
      conversation: Conversation;
      orderKey?: string;
      ticketField?: Expectation['ticketField'];
    },
    customerText?: string,
  ): OfferedEvent {
    this.#seq += 1;
    const dropped = this.#options.dropsWebhook?.({ seq: this.#seq, label }) ?? false;
    const offered: OfferedEvent = {
      seq: this.#seq,
      label,
      orgId: org.orgId,
      body: body as Record<string, unknown>,
      expect:
        expect === undefined
          ? undefined
          : {
              kind: expect.kind,
              key: expect.key,
              conversation: expect.orderKey ?? `thread:${expect.conversation.threadId}`,
              threadId: expect.conversation.threadId,
              orgId: org.orgId,
              ...(expect.ticketField === undefined ? {} : { ticketField: expect.ticketField }),
            },
      ...(customerText === undefined ? {} : { customerText }),
      ...(dropped ? { webhookDropped: true as const } : {}),
    };
    this.offered.push(offered);
    return offered;
  }

  /** The acceptance index of the thread's handoff, if one was accepted. */
  handoffIndexOf(threadId: string): number | undefined {
    const conversation = this.#conversations.find((each) => each.threadId === threadId);
    if (conversation?.handoffSeq === undefined) return undefined;
    return this.offered.find((event) => event.seq === conversation.handoffSeq)?.acceptedIndex;
  }
}
