import assert from 'node:assert/strict';
import { pino } from 'pino';
import type { AiReply, DomainEvent } from '../../lib/domain-events.ts';
import { ErrorCode, PipelineError } from '../../lib/errors.ts';
import type { HubSpotApi } from '../../lib/hubspot/index.ts';
import { threadLinkKey, ticketLinkKey, type SessionLink } from '../../lib/session-links.ts';
import { applyDomainEvent, type ApplyDeps } from '../../services/outbound/src/apply-domain-event.ts';
import type { OpenCxApi } from '../../services/outbound/src/opencx/client.ts';
import { customerMessage as customerMessageOf, testOrg } from '../support/fixtures.ts';
import { heldTicketsInMemory } from '../support/held-tickets.ts';
import {
  AI_MARKER,
  hubspotMessageFor,
  postAiReply,
  replyIdMarker,
  type PostAiReplyDeps,
} from '../../services/outbound/src/post-ai-reply.ts';
import type { ClaimResult } from '../../lib/dedup-store.ts';
import { withRetry } from '../../lib/retry.ts';

const org = testOrg;

/** In-memory stand-ins for the adapters: these tests are about which call each event makes. */
const harness = (
  options: {
    links?: Record<string, SessionLink>;
    aiText?: string | null;
    ticketOfThread?: string;
    noRoomForBookkeeping?: boolean;
  } = {},
) => {
  const calls: { name: string; args: unknown[] }[] = [];
  const links = new Map(Object.entries(options.links ?? {}));
  const replies: AiReply[] = [];
  const held = heldTicketsInMemory();
  const sessionsCreated = { count: 0, inc: () => void (sessionsCreated.count += 1) };
  const record =
    (name: string) =>
    async (...args: unknown[]) =>
      void calls.push({ name, args });
  const openCx: OpenCxApi = {
    createSession: async (...args) => (calls.push({ name: 'createSession', args }), { id: 'S-new' }),
    sendContactMessage: async (...args) => (
      calls.push({ name: 'sendContactMessage', args }),
      { aiText: options.aiText === undefined ? 'AI answer' : options.aiText }
    ),
    addAgentMessage: record('addAgentMessage'),
    handOff: record('handOff'),
    setCustomData: record('setCustomData'),
    addAgentComment: record('addAgentComment'),
  };
  const hubspot = {
    getThread: async () => {
      calls.push({ name: 'getThread', args: [] });
      if (options.noRoomForBookkeeping)
        throw new PipelineError(ErrorCode.upstreamRateLimited, 'no bookkeeping slot', {
          retriable: true,
          retryAfterMs: 500,
        });
      return {
        id: 't',
        threadAssociations: options.ticketOfThread ? { associatedTicketId: options.ticketOfThread } : null,
      };
    },
  } as unknown as HubSpotApi;
  const deps: ApplyDeps = {
    orgs: { byId: (orgId) => (orgId === 'org-1' ? org() : undefined) },
    links: {
      forThread: (orgId, threadId) => links.get(threadLinkKey(orgId, threadId)),
      forTicket: (orgId, ticketId) => links.get(ticketLinkKey(orgId, ticketId)),
      write: async (entries) => entries.forEach(({ key, link }) => links.set(key, link)),
    },
    openCxFor: () => openCx,
    hubspotFor: () => hubspot,
    owedTicketLookUps: {
      owe: async (...args) => void calls.push({ name: 'oweTicketLookUp', args }),
      settle: async (...args) => void calls.push({ name: 'settleTicketLookUp', args }),
    },
    held: held.deps,
    emitAiReply: async (reply) => void replies.push(reply),
    sessionsCreated,
    retry: (_target, work) => work(),
    logger: pino({ level: 'silent' }),
    now: () => 1_700_000_000_000,
  };
  return { deps, calls, links, replies, held, sessionsCreated };
};

const common = { orgId: 'org-1', portalId: 42, occurredAt: 1_700_000_000_000 };
const customerMessage = customerMessageOf({ eventId: 'e-cm', senderName: 'Jane' });
const linked: SessionLink = {
  orgId: 'org-1',
  sessionId: 'S-1',
  threadId: 'T1',
  ticketId: 'K1',
  handedOff: false,
  updatedAt: 0,
};
const withLinks = { [threadLinkKey('org-1', 'T1')]: linked, [ticketLinkKey('org-1', 'K1')]: linked };

describe('outbound: applying each domain event to OpenCX', () => {
  it('given the first customer message of a thread, then a session is created with a thread-derived key, the message sent, and only then its ticket looked up and linked (before the AI answer goes out)', async () => {
    const { deps, calls, links, replies, sessionsCreated } = harness({ ticketOfThread: 'K9' });
    assert.deepEqual(await applyDomainEvent(customerMessage, deps), { kind: 'applied' });
    assert.equal(sessionsCreated.count, 1, 'the session is counted');
    assert.deepEqual(
      calls.map((call) => call.name),
      ['createSession', 'sendContactMessage', 'getThread', 'settleTicketLookUp'],
    );
    assert.deepEqual(calls[0]?.args[0], {
      channel: { type: 'web' },
      custom_data: { hubspot_thread_id: 'T1', hubspot_portal_id: '42' },
    });
    assert.match(String(calls[0]?.args[1]), /^session-[0-9a-f]{32}$/);
    assert.deepEqual(calls[1]?.args, ['S-new', 'Hi', 'e-cm']);
    assert.equal(links.get(threadLinkKey('org-1', 'T1'))?.sessionId, 'S-new');
    assert.equal(links.get(ticketLinkKey('org-1', 'K9'))?.sessionId, 'S-new');
    assert.equal(replies.length, 1);
  });

  it('given the first customer message on a portal with no room for bookkeeping, then the message is sent, the session linked without a ticket, and the look-up owed', async () => {
    const { deps, calls, links, replies } = harness({ ticketOfThread: 'K9', noRoomForBookkeeping: true });
    assert.deepEqual(await applyDomainEvent(customerMessage, deps), { kind: 'applied' });
    assert.deepEqual(
      calls.map((call) => call.name),
      ['createSession', 'sendContactMessage', 'getThread', 'oweTicketLookUp'],
    );
    assert.deepEqual(calls[3]?.args.slice(0, 2), ['org-1', 'T1']);
    assert.equal(links.get(threadLinkKey('org-1', 'T1'))?.ticketId, null);
    assert.equal(links.get(ticketLinkKey('org-1', 'K9')), undefined);
    assert.equal(replies.length, 1, 'the AI answer is not held');
  });

  it('given a customer message redelivered after a crash that followed the send (link without ticket), then the look-up is owed again', async () => {
    const noTicket: SessionLink = { ...linked, ticketId: null };
    const { deps, calls } = harness({ links: { [threadLinkKey('org-1', 'T1')]: noTicket } });
    await applyDomainEvent(customerMessage, deps);
    assert.deepEqual(
      calls.map((call) => call.name),
      ['sendContactMessage', 'oweTicketLookUp'],
    );
  });

  it('given a thread with a session, then no new session is created (nor counted)', async () => {
    const { deps, calls, sessionsCreated } = harness({ links: withLinks });
    await applyDomainEvent(customerMessage, deps);
    assert.equal(sessionsCreated.count, 0);
    assert.deepEqual(
      calls.map((call) => call.name),
      ['sendContactMessage'],
    );
  });

  it('given an AI answer, then an ai-reply with a deterministic id and the customer as recipient is emitted; no answer, none', async () => {
    const answered = harness({ links: withLinks });
    await applyDomainEvent(customerMessage, answered.deps);
    await applyDomainEvent(customerMessage, answered.deps);
    assert.equal(answered.replies.length, 2);
    assert.equal(answered.replies[0]?.eventId, answered.replies[1]?.eventId);
    assert.equal(answered.replies[0]?.recipientActorId, 'V-1');
    assert.equal(answered.replies[0]?.inReplyToEventId, 'e-cm');
    const silent = harness({ links: withLinks, aiText: null });
    await applyDomainEvent(customerMessage, silent.deps);
    assert.equal(silent.replies.length, 0);
  });

  const others: { event: DomainEvent; call: string; args: unknown[] }[] = [
    {
      event: {
        type: 'rep-reply',
        eventId: 'e-rr',
        ...common,
        threadId: 'T1',
        messageId: 'm2',
        text: 'On it',
        actorId: 'A-5',
        internal: false,
        channelId: '1000',
      },
      call: 'addAgentMessage',
      args: [
        'S-1',
        { text: 'On it', actor_id: 'A-5', internal: false, created_at: '2023-11-14T22:13:20.000Z' },
        'e-rr',
      ],
    },
    {
      event: { type: 'handoff', eventId: 'e-ho', ...common, threadId: 'T1', assigneeActorId: 'A-5' },
      call: 'handOff',
      args: ['S-1', { reason: 'assigned_away', assignee_actor_id: 'A-5' }, 'e-ho'],
    },
    {
      event: {
        type: 'ticket-field-changed',
        eventId: 'e-tf',
        ...common,
        ticketId: 'K1',
        property: 'hs_ticket_priority',
        value: 'HIGH',
      },
      call: 'setCustomData',
      args: ['S-1', { hs_ticket_priority: 'HIGH' }, 'e-tf'],
    },
    {
      event: {
        type: 'note-mirrored',
        eventId: 'e-nm',
        ...common,
        ticketId: 'K1',
        noteId: 'N1',
        text: 'Refund ok',
        authorOwnerId: '77',
        createdAt: 1_700_000_000_000,
      },
      call: 'addAgentComment',
      args: [
        'S-1',
        {
          text: 'Refund ok',
          hubspot_note_id: 'N1',
          author_owner_id: '77',
          created_at: '2023-11-14T22:13:20.000Z',
        },
        'e-nm',
      ],
    },
  ];
  for (const { event, call, args } of others) {
    it(`given a ${event.type} on a linked session, then ${call} is called with the event id as Idempotency-Key`, async () => {
      const { deps, calls } = harness({ links: withLinks });
      assert.deepEqual(await applyDomainEvent(event, deps), { kind: 'applied' });
      assert.deepEqual(calls, [{ name: call, args }]);
    });
    if (event.type === 'ticket-field-changed' || event.type === 'note-mirrored')
      it(`given a ${event.type} whose ticket has no known session link, then it is held (nothing called) and the organisation's look-ups are awaited`, async () => {
        const { deps, calls, held } = harness();
        assert.deepEqual(await applyDomainEvent(event, deps), { kind: 'held' });
        assert.deepEqual(calls, []);
        assert.deepEqual(
          held.tickets.get(ticketLinkKey('org-1', 'K1'))?.events.map((entry) => entry.event),
          [event],
        );
        assert.deepEqual(held.awaited, ['org-1']);
      });
    else
      it(`given a ${event.type} with no linked session, then it is skipped and counted as such`, async () => {
        const { deps, calls } = harness();
        assert.deepEqual(await applyDomainEvent(event, deps), {
          kind: 'skipped',
          reason: 'no_linked_session',
        });
        assert.deepEqual(calls, []);
      });
  }

  describe('ticket and note events held until their ticket is linked', () => {
    const change = (value: string, occurredAt: number): DomainEvent => ({
      type: 'ticket-field-changed',
      eventId: `e-${value}`,
      ...common,
      occurredAt,
      ticketId: 'K1',
      property: 'hs_ticket_priority',
      value,
    });
    const note: DomainEvent = { ...others[3]!.event };
    const check = {
      type: 'ticket-hold-check',
      eventId: 'e-check',
      ...common,
      ticketId: 'K1',
    } as const;
    /** Tickets that hold events (a record with none keeps only its applied clocks). */
    const holding = (held: ReturnType<typeof heldTicketsInMemory>): number =>
      [...held.tickets.values()].filter((ticket) => ticket.events.length > 0).length;
    const linkTicket = (links: Map<string, SessionLink>) => {
      links.set(ticketLinkKey('org-1', 'K1'), linked);
    };

    it('given held events and then the link, when the hold is checked, then each is applied once in order and the hold is cleared', async () => {
      const { deps, calls, links, held } = harness();
      await applyDomainEvent(change('LOW', 1_000), deps);
      await applyDomainEvent(note, deps);
      linkTicket(links);
      assert.deepEqual(await applyDomainEvent(check, deps), { kind: 'applied' });
      assert.deepEqual(
        calls.map(({ name, args }) => [name, args[2]]),
        [
          ['setCustomData', 'e-LOW'],
          ['addAgentComment', 'e-nm'],
        ],
      );
      assert.equal(holding(held), 0);
      assert.equal(held.counts.get('released'), 2);
      assert.deepEqual(await applyDomainEvent(check, deps), { kind: 'skipped', reason: 'nothing_held' });
      assert.equal(calls.length, 2, 'a second check applies nothing again');
    });

    it('given two changes of one property held, then only the newer is kept and applied', async () => {
      const { deps, calls, links, held } = harness();
      await applyDomainEvent(change('HIGH', 2_000), deps);
      await applyDomainEvent(change('LOW', 1_000), deps);
      linkTicket(links);
      await applyDomainEvent(check, deps);
      assert.deepEqual(calls, [
        { name: 'setCustomData', args: ['S-1', { hs_ticket_priority: 'HIGH' }, 'e-HIGH'] },
      ]);
      assert.equal(held.counts.get('superseded'), 1);
    });

    it('given a held change and another event arriving once the link is known, then the held one is applied first and the new one last', async () => {
      const { deps, calls, links, held } = harness();
      await applyDomainEvent(change('LOW', 1_000), deps);
      linkTicket(links);
      assert.deepEqual(await applyDomainEvent(note, deps), { kind: 'applied' });
      assert.deepEqual(
        calls.map(({ args }) => args[2]),
        ['e-LOW', 'e-nm'],
      );
      assert.equal(holding(held), 0);
    });

    it('given a held change and a newer change of the same property arriving once the link is known, then only the newer is applied (the held one would be overwritten at once)', async () => {
      const { deps, calls, links } = harness();
      await applyDomainEvent(change('LOW', 1_000), deps);
      linkTicket(links);
      assert.deepEqual(await applyDomainEvent(change('HIGH', 2_000), deps), { kind: 'applied' });
      assert.deepEqual(
        calls.map(({ args }) => args[2]),
        ['e-HIGH'],
      );
    });

    it('given a release that fails part-way (OpenCX down), then the hold is kept and the next check applies all of it again', async () => {
      const { deps, calls, links, held } = harness();
      await applyDomainEvent(change('LOW', 1_000), deps);
      await applyDomainEvent(note, deps);
      linkTicket(links);
      const failing: ApplyDeps = {
        ...deps,
        openCxFor: (o) => ({
          ...deps.openCxFor(o),
          addAgentComment: async () => {
            throw new PipelineError(ErrorCode.upstreamUnavailable, 'OpenCX 503', { retriable: true });
          },
        }),
      };
      await assert.rejects(applyDomainEvent(check, failing), PipelineError);
      assert.equal(holding(held), 1);
      await applyDomainEvent(check, deps);
      assert.deepEqual(
        calls.map(({ args }) => args[2]),
        ['e-LOW', 'e-LOW', 'e-nm'],
      );
      assert.equal(holding(held), 0);
    });

    it('given a held note OpenCX refuses for good at release (a 4xx), then the other held events are applied, the note written back to the domain topic on its own (to be dead-lettered there), and the hold cleared', async () => {
      const { deps, calls, links, held } = harness();
      await applyDomainEvent(note, deps);
      await applyDomainEvent(change('LOW', 1_000), deps);
      linkTicket(links);
      const refusing: ApplyDeps = {
        ...deps,
        openCxFor: (o) => ({
          ...deps.openCxFor(o),
          addAgentComment: async () => {
            throw new PipelineError(ErrorCode.upstreamRejected, 'OpenCX answered 422', {
              retriable: false,
              upstream: 'opencx',
              status: 422,
            });
          },
        }),
      };
      assert.deepEqual(await applyDomainEvent(check, refusing), { kind: 'applied' });
      assert.deepEqual(
        calls.map(({ args }) => args[2]),
        ['e-LOW'],
      );
      assert.deepEqual(
        held.requeued.map((event) => event.eventId),
        ['e-nm'],
      );
      assert.equal(holding(held), 0);
      assert.equal(held.counts.get('refused'), 1);
      assert.equal(held.counts.get('released'), 1);
    });

    it('given a change older than the newest applied change of its property (superseded while held, delivered again), then it is skipped as stale, not applied over the newer one', async () => {
      const { deps, calls, links } = harness();
      await applyDomainEvent(change('HIGH', 2_000), deps);
      await applyDomainEvent(change('LOW', 1_000), deps); // superseded while held
      linkTicket(links);
      await applyDomainEvent(check, deps);
      assert.deepEqual(await applyDomainEvent(change('LOW', 1_000), deps), {
        kind: 'skipped',
        reason: 'stale',
      });
      assert.deepEqual(
        calls.map(({ args }) => args[2]),
        ['e-HIGH'],
      );
    });

    it('given changes applied directly on a linked ticket, then an older one delivered later is stale and a newer one is applied', async () => {
      const { deps, calls, links } = harness();
      linkTicket(links);
      await applyDomainEvent(change('HIGH', 2_000), deps);
      assert.deepEqual(await applyDomainEvent(change('LOW', 1_000), deps), {
        kind: 'skipped',
        reason: 'stale',
      });
      assert.deepEqual(await applyDomainEvent(change('URGENT', 3_000), deps), { kind: 'applied' });
      assert.deepEqual(
        calls.map(({ args }) => args[2]),
        ['e-HIGH', 'e-URGENT'],
      );
    });

    it('given a record that holds nothing, when checked after its clocks are old (DEDUP_TTL_MS), then it is let go; before, it stays', async () => {
      const { deps, links, held } = harness();
      linkTicket(links);
      await applyDomainEvent(change('HIGH', 2_000), deps);
      assert.deepEqual(await applyDomainEvent(check, deps), { kind: 'skipped', reason: 'nothing_held' });
      assert.equal(held.tickets.size, 1, 'the clock is kept');
      const later: ApplyDeps = { ...deps, now: () => deps.now() + deps.held.clockTtlMs };
      assert.deepEqual(await applyDomainEvent(check, later), { kind: 'skipped', reason: 'nothing_held' });
      assert.equal(held.tickets.size, 0);
    });

    it('given a ticket of an organisation since deleted, when checked, then its held events are let go (discarded) and nothing is called', async () => {
      const { deps, calls, held } = harness();
      await applyDomainEvent(change('LOW', 1_000), deps);
      const gone: ApplyDeps = { ...deps, orgs: { byId: () => undefined } };
      assert.deepEqual(await applyDomainEvent(check, gone), { kind: 'skipped', reason: 'unknown_org' });
      assert.equal(held.tickets.size, 0);
      assert.equal(held.counts.get('discarded'), 1);
      assert.deepEqual(calls, []);
    });

    it('given a ticket never linked, when checked before the hold ends, then it is still held; after, skipped as no_linked_session and cleared', async () => {
      const { deps, calls, held } = harness();
      await applyDomainEvent(change('LOW', 1_000), deps);
      assert.deepEqual(await applyDomainEvent(check, deps), { kind: 'skipped', reason: 'still_held' });
      const later: ApplyDeps = { ...deps, now: () => deps.now() + deps.held.holdMs };
      assert.deepEqual(await applyDomainEvent(check, later), {
        kind: 'skipped',
        reason: 'no_linked_session',
      });
      assert.equal(held.tickets.size, 0);
      assert.equal(held.counts.get('expired'), 1);
      assert.deepEqual(calls, []);
    });
  });

  it('regression (soak): given a handoff whose thread is not in the links and the links cannot catch up in time (a broker restart), then it fails as Kafka unavailable (tried again later), not skipped as no linked session', async () => {
    const { deps, calls } = harness();
    const stale: ApplyDeps = { ...deps, links: { ...deps.links, catchUp: async () => false } };
    await assert.rejects(applyDomainEvent(others[1]!.event, stale), (error: unknown) => {
      assert.ok(error instanceof PipelineError);
      assert.equal(error.code, ErrorCode.kafkaUnavailable);
      return true;
    });
    assert.deepEqual(calls, []);
  });

  it('given a handoff, then the link records it (so later AI replies are not posted)', async () => {
    const { deps, links } = harness({ links: withLinks });
    await applyDomainEvent(others[1]!.event, deps);
    assert.equal(links.get(threadLinkKey('org-1', 'T1'))?.handedOff, true);
  });

  it('regression (soak): given a second handoff of a thread already handed off (reassigned to another rep), then OpenCX is not called again (same event id, another body: a 409) and it is skipped as handed off', async () => {
    const handedOff: SessionLink = { ...linked, handedOff: true };
    const { deps, calls } = harness({ links: { [threadLinkKey('org-1', 'T1')]: handedOff } });
    const reassigned = {
      type: 'handoff',
      eventId: 'e-ho',
      ...common,
      threadId: 'T1',
      assigneeActorId: 'A-6',
    } as const;
    assert.deepEqual(await applyDomainEvent(reassigned, deps), { kind: 'skipped', reason: 'handed_off' });
    assert.deepEqual(calls, []);
  });

  it('regression (outside soak): given a handoff whose link in this view is not handed off yet but is on the topic, then the view is caught up first and OpenCX is not called', async () => {
    const { deps, calls, links } = harness({ links: withLinks });
    const caughtUp: ApplyDeps = {
      ...deps,
      links: {
        ...deps.links,
        catchUp: async () => {
          links.set(threadLinkKey('org-1', 'T1'), { ...linked, handedOff: true });
          return true;
        },
      },
    };
    const reassigned = { ...others[1]!.event, assigneeActorId: 'A-6' } as DomainEvent;
    assert.deepEqual(await applyDomainEvent(reassigned, caughtUp), { kind: 'skipped', reason: 'handed_off' });
    assert.deepEqual(calls, []);
  });

  it('regression (outside soak): given a second handoff that OpenCX refuses with 409 (its key used by an earlier handoff of the thread), then it is skipped as handed off and the link records the handoff', async () => {
    const { deps, links } = harness({ links: withLinks });
    const conflicting: ApplyDeps = {
      ...deps,
      openCxFor: (o) => ({
        ...deps.openCxFor(o),
        handOff: async () => {
          throw new PipelineError(ErrorCode.upstreamRejected, 'OpenCX answered 409', {
            retriable: false,
            upstream: 'opencx',
            status: 409,
          });
        },
      }),
    };
    assert.deepEqual(await applyDomainEvent(others[1]!.event, conflicting), {
      kind: 'skipped',
      reason: 'handed_off',
    });
    assert.equal(links.get(threadLinkKey('org-1', 'T1'))?.handedOff, true);
  });

  it('given a handoff that OpenCX refuses with another 4xx, then the error is not taken for a handoff', async () => {
    const { deps, links } = harness({ links: withLinks });
    const refusing: ApplyDeps = {
      ...deps,
      openCxFor: (o) => ({
        ...deps.openCxFor(o),
        handOff: async () => {
          throw new PipelineError(ErrorCode.upstreamRejected, 'OpenCX answered 422', {
            retriable: false,
            upstream: 'opencx',
            status: 422,
          });
        },
      }),
    };
    await assert.rejects(applyDomainEvent(others[1]!.event, refusing), PipelineError);
    assert.equal(links.get(threadLinkKey('org-1', 'T1'))?.handedOff, false);
  });

  it('given a handoff on a thread whose session has no ticket yet, then the ticket HubSpot now associates is linked', async () => {
    const noTicket: SessionLink = { ...linked, threadId: 'T-handoff', ticketId: null };
    const { deps, links } = harness({
      links: { [threadLinkKey('org-1', 'T-handoff')]: noTicket },
      ticketOfThread: 'K7',
    });
    await applyDomainEvent(
      { type: 'handoff', eventId: 'e-h2', ...common, threadId: 'T-handoff', assigneeActorId: 'A-5' },
      deps,
    );
    assert.equal(links.get(ticketLinkKey('org-1', 'K7'))?.sessionId, 'S-1');
    assert.equal(links.get(threadLinkKey('org-1', 'T-handoff'))?.handedOff, true);
  });

  it('given rep replies on a thread with no ticket, then the association is looked up at most once a minute', async () => {
    const noTicket: SessionLink = { ...linked, threadId: 'T-rep', ticketId: null };
    const { deps, calls, links } = harness({ links: { [threadLinkKey('org-1', 'T-rep')]: noTicket } });
    const reply = {
      type: 'rep-reply',
      eventId: 'e-r',
      ...common,
      threadId: 'T-rep',
      messageId: 'm',
      text: 'x',
      actorId: 'A-5',
      internal: false,
      channelId: '1000',
    } as const;
    await applyDomainEvent(reply, deps);
    await applyDomainEvent({ ...reply, eventId: 'e-r2' }, deps);
    assert.equal(calls.filter((call) => call.name === 'getThread').length, 1);
    assert.equal(links.get(threadLinkKey('org-1', 'T-rep'))?.ticketId, null, 'no ticket yet: nothing linked');
  });

  const undatable = [
    [
      'a rep comment dated 9e15 (new Date(9e15).toISOString() throws)',
      { ...others[0]!.event, occurredAt: 9e15 },
    ],
    ['a rep reply dated 1.5 ms', { ...others[0]!.event, occurredAt: 1.5 }],
    ['a note dated before 1970', { ...others[3]!.event, createdAt: -1 }],
  ] as [string, DomainEvent][];
  for (const [name, event] of undatable) {
    it(`given ${name}, when applied, then it is malformed (dead-lettered), nothing is called, and nothing throws`, async () => {
      const { deps, calls } = harness({ links: withLinks });
      const outcome = await applyDomainEvent(event, deps);
      assert.equal(outcome.kind, 'malformed');
      assert.match(outcome.kind === 'malformed' ? outcome.detail : '', /is not a date OpenCX can take/);
      assert.deepEqual(calls, []);
    });
  }

  it('given an event of an unknown or deleted organisation, then it is skipped', async () => {
    const { deps } = harness();
    assert.deepEqual(await applyDomainEvent({ ...customerMessage, orgId: 'gone' }, deps), {
      kind: 'skipped',
      reason: 'unknown_org',
    });
  });
});

describe('outbound: the HubSpot message for an AI reply', () => {
  const reply: AiReply = {
    type: 'ai-reply',
    eventId: 'e-ai',
    ...common,
    threadId: 'T1',
    sessionId: 'S-1',
    inReplyToEventId: 'e-cm',
    text: 'Here you go',
    channelId: '1002',
    channelAccountId: 'ca',
    recipientActorId: 'E-jane@example.com',
    recipientDeliveryType: 'HS_EMAIL_ADDRESS',
    recipientDeliveryValue: 'jane@example.com',
  };
  it('given normal mode, then a public MESSAGE from the AI actor on the thread channel, carrying the marker, to the customer', () => {
    assert.deepEqual(hubspotMessageFor(reply, org()), {
      type: 'MESSAGE',
      text: `Here you go\n\n${AI_MARKER}${replyIdMarker('e-ai')}`,
      senderActorId: 'A-111',
      channelId: '1002',
      channelAccountId: 'ca',
      recipients: [
        {
          actorId: 'E-jane@example.com',
          deliveryIdentifiers: [{ type: 'HS_EMAIL_ADDRESS', value: 'jane@example.com' }],
        },
      ],
      attachments: [],
    });
  });
  it('given Assist Mode, then an internal COMMENT draft', () => {
    const message = hubspotMessageFor(reply, org({ assistMode: true }));
    assert.equal(message.type, 'COMMENT');
    assert.ok(message.text.includes(AI_MARKER));
  });
});

describe('outbound: posting an AI reply when an earlier attempt may have posted it', () => {
  const reply: AiReply = {
    type: 'ai-reply',
    eventId: 'e-ai-2',
    ...common,
    threadId: 'T1',
    sessionId: 'S-1',
    inReplyToEventId: 'e-cm',
    text: 'Answer',
    channelId: '1000',
    channelAccountId: 'ca',
    recipientActorId: 'V-1',
    recipientDeliveryType: null,
    recipientDeliveryValue: null,
  };
  const deps = (history: string[], firstAttempt: boolean) => {
    const posted: string[] = [];
    const states: string[] = [];
    const recorded: AiReply[] = [];
    const dedup = {
      claim: async (): Promise<ClaimResult> => 'claimed',
      confirm: async () => void states.push('confirmed'),
      release: async () => void states.push('released'),
      renew: async () => true,
    };
    const hubspot = {
      listMessages: async () =>
        history.map((text) => ({ id: 'x', type: 'MESSAGE', text, senders: [], recipients: [] })),
      postMessage: async (_thread: string, message: { text: string }) => (
        posted.push(message.text),
        { id: 'new' }
      ),
    } as unknown as HubSpotApi;
    const postDeps: PostAiReplyDeps = {
      orgs: { byId: () => org() },
      links: { forThread: () => undefined },
      hubspotFor: () => hubspot,
      posted: {
        alreadyPosted: (candidate) => recorded.some((done) => done.eventId === candidate.eventId),
        record: async (done) => void recorded.push(done),
      },
      dedup,
      markAttempt: async () => firstAttempt,
      clearAttempt: async () => undefined,
      maybePostedSettleMs: 7000,
      claim: { leaseMs: 100, now: Date.now, sleep: async () => undefined },
      retry: (_target, work) => work(),
    };
    return { postDeps, posted, states, recorded };
  };

  it('given a first attempt, then it posts without reading the thread and confirms', async () => {
    const { postDeps, posted, states } = deps([], true);
    assert.deepEqual(await postAiReply(reply, postDeps), { kind: 'applied', posted: 'message' });
    assert.equal(posted.length, 1);
    assert.deepEqual(states, ['confirmed']);
  });

  it('given a retry whose earlier attempt did post (died before confirming), then it finds its reply on the thread and does not post again', async () => {
    const { postDeps, posted, states } = deps([`Answer\n\n${AI_MARKER}${replyIdMarker('e-ai-2')}`], false);
    assert.deepEqual(await postAiReply(reply, postDeps), { kind: 'skipped', reason: 'duplicate' });
    assert.deepEqual(posted, []);
    assert.deepEqual(states, ['confirmed']);
  });

  it('given a reply posted before Redis lost its claims (a fresh claim, a first attempt), then the durable record stops a second post', async () => {
    const { postDeps, posted, recorded } = deps([], true);
    assert.deepEqual(await postAiReply(reply, postDeps), { kind: 'applied', posted: 'message' });
    assert.deepEqual(
      recorded.map((done) => done.eventId),
      ['e-ai-2'],
      'recorded once posted',
    );
    // Redis restarted: the claim and the attempt marker are gone; the same reply comes again.
    assert.deepEqual(await postAiReply(reply, postDeps), { kind: 'skipped', reason: 'duplicate' });
    assert.equal(posted.length, 1);
  });

  it('regression (soak): given the claim lost while the post waited (Redis restarted during a 429 wait, another replica claimed it), then this attempt does not post, releases nothing of the other’s, and says to try again later', async () => {
    const { postDeps, posted } = deps([], true);
    let renewals = 0;
    const waitedThenLost: PostAiReplyDeps = {
      ...postDeps,
      // The first renewal (right before the first post) finds the claim held by another replica.
      dedup: { ...postDeps.dedup, renew: async () => (renewals++, false) },
    };
    await assert.rejects(postAiReply(reply, waitedThenLost), (error: unknown) => {
      assert.ok(error instanceof PipelineError);
      assert.equal(error.code, ErrorCode.dedupInFlight);
      assert.match(error.message, /claim on AI reply e-ai-2 lost/);
      return true;
    });
    assert.deepEqual(posted, [], 'not posted');
    assert.ok(renewals >= 1);
  });

  /** A post that fails with `failure` once, against a real attempt marker (a set), then succeeds. */
  const failingOnce = (failure: Error) => {
    const { postDeps, posted } = deps([], true);
    const marked = new Set<string>();
    let historyReads = 0;
    let fail = true;
    const flaky = {
      listMessages: async () => (historyReads++, []),
      postMessage: async (_thread: string, message: { text: string }) => {
        if (fail) {
          fail = false;
          throw failure;
        }
        posted.push(message.text);
        return { id: 'new' };
      },
    } as unknown as HubSpotApi;
    const withMarker: PostAiReplyDeps = {
      ...postDeps,
      hubspotFor: () => flaky,
      markAttempt: async (key) => !marked.has(key) && Boolean(marked.add(key)),
      clearAttempt: async (key) => void marked.delete(key),
    };
    return { withMarker, posted, marked, historyReads: () => historyReads };
  };

  it('regression: given a post HubSpot refused with a 429, then the next attempt posts without reading the thread first (a 2-call budget per window would never fit "read, post")', async () => {
    const rateLimited = new PipelineError(
      ErrorCode.tenantWaiting,
      'HubSpot rate limit (TEN_SECONDLY_ROLLING)',
      {
        retriable: false,
        upstream: 'hubspot',
      },
    );
    const { withMarker, posted, marked, historyReads } = failingOnce(rateLimited);
    await assert.rejects(postAiReply(reply, withMarker), /HubSpot rate limit/);
    assert.equal(marked.size, 0, 'a refused post leaves no attempt marker');
    assert.deepEqual(await postAiReply(reply, withMarker), { kind: 'applied', posted: 'message' });
    assert.equal(historyReads(), 0);
    assert.equal(posted.length, 1);
  });

  it('given a post that timed out (it may exist), then the next attempt reads the thread before posting', async () => {
    const timedOut = new PipelineError(
      ErrorCode.upstreamUnavailable,
      'POST message: timed out after 10000 ms',
      {
        retriable: true,
        upstream: 'hubspot',
      },
    );
    const { withMarker, posted, marked, historyReads } = failingOnce(timedOut);
    await assert.rejects(postAiReply(reply, withMarker), /timed out/);
    assert.equal(marked.size, 1, 'the marker stays');
    assert.deepEqual(await postAiReply(reply, withMarker), { kind: 'applied', posted: 'message' });
    assert.equal(historyReads(), 1);
    assert.equal(posted.length, 1);
  });

  it('regression (soak): given a post that timed out and HubSpot stored moments later, then it is not posted again in memory: the reply waits the settle time, and its next attempt finds it on the thread', async () => {
    const thread: string[] = [];
    const marked = new Set<string>();
    let posts = 0;
    let historyReads = 0;
    const slow = {
      listMessages: async () => (
        historyReads++,
        thread.map((text) => ({ id: 'x', type: 'MESSAGE', text, senders: [], recipients: [] }))
      ),
      postMessage: async (_thread: string, message: { text: string }) => {
        posts++;
        // HubSpot stores every post, but answers the first one too late for our timeout.
        thread.push(message.text);
        if (posts === 1)
          throw new PipelineError(ErrorCode.upstreamUnavailable, 'POST message: timed out after 10000 ms', {
            retriable: true,
            upstream: 'hubspot',
          });
        return { id: `m${posts}` };
      },
    } as unknown as HubSpotApi;
    const { postDeps } = deps([], true);
    const realRetries: PostAiReplyDeps = {
      ...postDeps,
      hubspotFor: () => slow,
      markAttempt: async (key) => !marked.has(key) && Boolean(marked.add(key)),
      clearAttempt: async (key) => void marked.delete(key),
      // The deployed in-memory retry: three attempts.
      retry: (_target, work) =>
        withRetry({ attempts: 3, initialDelayMs: 1, maxDelayMs: 1 }, work, { sleep: async () => undefined }),
    };
    await assert.rejects(postAiReply(reply, realRetries), (error: unknown) => {
      assert.ok(error instanceof PipelineError);
      assert.equal(error.retriable, true, 'retriable: the organisation waits (parked), never a dead letter');
      assert.equal(error.upstream, 'hubspot');
      assert.equal(error.retryAfterMs, 7000, 'waits the settle time');
      assert.match(error.message, /may have been posted/);
      return true;
    });
    assert.equal(posts, 1, 'not posted a second time in memory');
    assert.deepEqual(await postAiReply(reply, realRetries), { kind: 'skipped', reason: 'duplicate' });
    assert.equal(historyReads, 1, 'the next attempt read the thread');
    assert.equal(posts, 1);
    assert.equal(thread.length, 1, 'the customer sees the answer once');
  });

  it("regression (soak): given a reply another replica posted and recorded, not yet in this replica's table, with Redis's claims and markers gone, then it waits for the table and does not post again", async () => {
    const { postDeps, posted, states } = deps([], true);
    let tableHasIt = false;
    const lagging: PostAiReplyDeps = {
      ...postDeps,
      posted: {
        alreadyPosted: () => tableHasIt,
        record: postDeps.posted.record,
        catchUp: async () => ((tableHasIt = true), true),
      },
    };
    assert.deepEqual(await postAiReply(reply, lagging), { kind: 'skipped', reason: 'duplicate' });
    assert.deepEqual(posted, []);
    assert.deepEqual(states, ['confirmed']);
  });

  it("regression (soak): given a handoff the previous owner of the thread applied, not yet in this replica's links, then the links catch up first and nothing is posted", async () => {
    const { postDeps, posted } = deps([], true);
    let handedOff = false;
    const lagging: PostAiReplyDeps = {
      ...postDeps,
      links: {
        forThread: () => (handedOff ? { ...linked, handedOff: true } : undefined),
        catchUp: async () => ((handedOff = true), true),
      },
    };
    assert.deepEqual(await postAiReply(reply, lagging), { kind: 'skipped', reason: 'handed_off' });
    assert.deepEqual(posted, []);
  });

  it('given a retry whose earlier attempt did not post, then it posts', async () => {
    const { postDeps, posted } = deps([`Other\n\n${AI_MARKER}${replyIdMarker('someone-else')}`], false);
    assert.deepEqual(await postAiReply(reply, postDeps), { kind: 'applied', posted: 'message' });
    assert.equal(posted.length, 1);
  });
});
