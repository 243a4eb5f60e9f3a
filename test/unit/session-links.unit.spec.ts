import assert from 'node:assert/strict';
import { ticketlessThreads, type SessionLink } from '../../lib/session-links.ts';

const link = (fields: Partial<SessionLink>): SessionLink => ({
  orgId: 'org-1',
  sessionId: 's',
  threadId: 't',
  ticketId: null,
  handedOff: false,
  updatedAt: 1000,
  ...fields,
});

describe('session links: recent sessions whose ticket is not known (owed again after a Redis loss)', () => {
  it('given thread links with and without a known ticket, then only recent ones no link gives a ticket are listed', () => {
    const links = [
      link({ threadId: 'no-ticket' }),
      link({ threadId: 'old', updatedAt: 10 }),
      // The owed look-up writes only the ticket's link: the thread's link keeps ticketId null.
      link({ threadId: 'ticket-by-ticket-link' }),
      link({ threadId: 'ticket-by-ticket-link', ticketId: '77', updatedAt: 1200 }),
      link({ threadId: 'ticket-on-thread', ticketId: '78' }),
      link({ orgId: 'org-2', threadId: 'no-ticket' }),
      link({ threadId: null, ticketId: '79' }),
      link({ threadId: 'handed-off', handedOff: true }),
    ];
    assert.deepEqual(ticketlessThreads(links, 500), [
      { orgId: 'org-1', threadId: 'no-ticket' },
      { orgId: 'org-2', threadId: 'no-ticket' },
      { orgId: 'org-1', threadId: 'handed-off' },
    ]);
  });
});
