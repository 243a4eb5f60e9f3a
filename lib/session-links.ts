import { z } from 'zod';
import { JsonTable, type JsonTableOptions } from './kafka/json-table.ts';
import type { RecordWriter } from './kafka/record-writer.ts';

/**
 * Which OpenCX session a HubSpot thread (or ticket) belongs to, and whether it was handed off.
 * Written by outbound (which creates sessions), read by the processor's rules. A compacted topic,
 * so the link is durable and every replica of either service sees it.
 */
export const SessionLink = z.object({
  orgId: z.string(),
  sessionId: z.string(),
  threadId: z.string().nullable(),
  ticketId: z.string().nullable(),
  handedOff: z.boolean(),
  updatedAt: z.number(),
});
export type SessionLink = z.infer<typeof SessionLink>;

export const threadLinkKey = (orgId: string, threadId: string): string => `${orgId}:thread:${threadId}`;
export const ticketLinkKey = (orgId: string, ticketId: string): string => `${orgId}:ticket:${ticketId}`;

/**
 * Threads whose link was written since `since` and whose ticket no link names (neither the
 * thread's link nor a ticket's): their ticket look-up may still be owed.
 */
export const ticketlessThreads = (
  links: Iterable<SessionLink>,
  since: number,
): { orgId: string; threadId: string }[] => {
  const withTicket = new Set<string>();
  const candidates: { orgId: string; threadId: string }[] = [];
  for (const link of links) {
    if (link.threadId === null) continue;
    if (link.ticketId !== null) withTicket.add(`${link.orgId}\0${link.threadId}`);
    else if (link.updatedAt >= since) candidates.push({ orgId: link.orgId, threadId: link.threadId });
  }
  return candidates.filter(({ orgId, threadId }) => !withTicket.has(`${orgId}\0${threadId}`));
};

export class SessionLinks extends JsonTable<SessionLink> {
  constructor(options: JsonTableOptions) {
    super(SessionLink, options);
  }

  forThread(orgId: string, threadId: string): SessionLink | undefined {
    return this.table.get(threadLinkKey(orgId, threadId));
  }
  forTicket(orgId: string, ticketId: string): SessionLink | undefined {
    return this.table.get(ticketLinkKey(orgId, ticketId));
  }

  /** Calls `listener` whenever a ticket's link arrives (written here or read from the topic). */
  onTicketLinked(listener: (orgId: string, ticketId: string) => void): void {
    this.table.onChange(({ key, value }) => {
      if (value?.ticketId && key === ticketLinkKey(value.orgId, value.ticketId))
        listener(value.orgId, value.ticketId);
    });
  }

  /** See ticketlessThreads: recent sessions whose ticket is not known yet. */
  ticketlessThreadsSince(since: number): { orgId: string; threadId: string }[] {
    return ticketlessThreads(this.table.values(), since);
  }

  /** Durable (acks=all) before it returns, and visible here at once. */
  async write(
    writer: Pick<RecordWriter, 'write'>,
    links: readonly { key: string; link: SessionLink }[],
  ): Promise<void> {
    await this.writeThrough(
      writer,
      links.map(({ key, link }) => ({ key, value: link })),
      `session links ${links.map(({ key }) => key).join(', ')}`,
    );
  }
}
