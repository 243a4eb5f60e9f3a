import assert from 'node:assert/strict';
import * as fixtures from '../fakes/hubspot-fixtures.ts';
import { sleep, type TestOrg, type TestPipeline } from './pipeline.ts';

/**
 * A help desk changes a new ticket and writes on it within a second of its conversation's first
 * message, on a portal that just took 100 new conversations: the ticket's session link is not
 * known yet (its look-up waits behind the customers' calls in the portal's HubSpot budget). Used
 * by test/integration/held-ticket-events.int.spec.ts and bench/held-tickets.bench.ts.
 */
export const BUSY_PORTAL_CONVERSATIONS = 100;

export type BusyConversation = {
  readonly threadId: string;
  readonly ticketId: string;
  readonly noteId: string;
  readonly value: string;
  readonly firstMessage: object;
  readonly change: object;
  readonly noteCreated: object;
};

/** New threads in the fake HubSpot, each with its ticket associated, a note on it, and their webhooks. */
export const busyPortal = (
  pipeline: TestPipeline,
  org: TestOrg,
  count = BUSY_PORTAL_CONVERSATIONS,
): BusyConversation[] =>
  Array.from({ length: count }, (_, index) => {
    const threadId = fixtures.newThreadId();
    const ticketId = String(1_600_000_000 + Math.floor(Math.random() * 100_000_000));
    pipeline.hubspot.setThread(
      fixtures.thread({ id: threadId, threadAssociations: { associatedTicketId: ticketId } }),
      { portalId: org.portalId },
    );
    const message = fixtures.message({ threadId, kind: 'customer-chat', text: `Help #${index}` });
    pipeline.hubspot.addMessage(message, { portalId: org.portalId });
    const note = fixtures.note({ ticketId, properties: { hs_note_body: `<p>Note on ticket #${index}</p>` } });
    pipeline.hubspot.addNote(note, { portalId: org.portalId });
    const value = `priority-${index}`;
    return {
      threadId,
      ticketId,
      noteId: note.id,
      value,
      firstMessage: fixtures.webhookEventFor(message, { portalId: org.portalId }),
      change: fixtures.ticketPropertyChangeEvent({
        portalId: org.portalId,
        objectId: Number(ticketId),
        propertyName: 'hs_ticket_priority',
        propertyValue: value,
        occurredAt: Date.now(),
      }),
      noteCreated: fixtures.noteCreationEvent({ portalId: org.portalId, objectId: Number(note.id) }),
    };
  });

/** Posts the first messages in one batch, then 200 ms later each ticket's change and its note; returns when those were sent. */
export const sendBusyPortal = async (
  pipeline: TestPipeline,
  conversations: readonly BusyConversation[],
): Promise<number> => {
  assert.equal((await pipeline.postBatch(conversations.map((c) => c.firstMessage))).status, 200);
  await sleep(200);
  const sentAt = Date.now();
  assert.equal((await pipeline.postBatch(conversations.map((c) => c.change))).status, 200);
  assert.equal((await pipeline.postBatch(conversations.map((c) => c.noteCreated))).status, 200);
  return sentAt;
};

/** When each conversation's ticket change and note reached its thread's session at OpenCX, if they did. */
export const ticketEffectsAt = (
  pipeline: TestPipeline,
  conversations: readonly BusyConversation[],
): { changeAt: number | undefined; noteAt: number | undefined }[] => {
  const sessions = new Map<string, string>();
  for (const effect of pipeline.opencx.effects)
    if (effect.kind === 'session-created')
      sessions.set(
        (effect.body as { custom_data: { hubspot_thread_id: string } }).custom_data.hubspot_thread_id,
        effect.sessionId,
      );
  return conversations.map((conversation) => {
    const sessionId = sessions.get(conversation.threadId);
    const change = pipeline.opencx.effects.find(
      (effect) =>
        effect.kind === 'custom-data' &&
        effect.sessionId === sessionId &&
        (effect.body as Record<string, string>).hs_ticket_priority === conversation.value,
    );
    const note = pipeline.opencx.effects.find(
      (effect) =>
        effect.kind === 'agent-comment' &&
        effect.sessionId === sessionId &&
        (effect.body as { hubspot_note_id: string }).hubspot_note_id === conversation.noteId,
    );
    return { changeAt: change?.at, noteAt: note?.at };
  });
};
