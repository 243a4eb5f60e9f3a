import { z } from 'zod';
import { JsonTable, type JsonTableOptions } from './kafka/json-table.ts';
import type { RecordWriter } from './kafka/record-writer.ts';

/**
 * The last AI reply posted to each HubSpot thread, on a compacted topic: HubSpot's message API
 * takes no idempotency key, and the Redis claim that guards a post is gone after a Redis restart
 * (or flush), when a HubSpot retry or a redelivery brings the same reply again. Replies of a
 * thread are posted in order (one queue per thread), so "the last one" is enough: a reply for
 * the same or an older customer message is not posted again.
 */
export const PostedReply = z.object({
  /** The ai-reply event id (deterministic from the customer message). */
  eventId: z.string(),
  /** occurredAt of the customer message it answers. */
  occurredAt: z.number(),
  postedAt: z.number(),
});
export type PostedReply = z.infer<typeof PostedReply>;

const keyOf = (orgId: string, threadId: string): string => `${orgId}:thread:${threadId}`;

export class PostedReplies extends JsonTable<PostedReply> {
  constructor(options: JsonTableOptions) {
    super(PostedReply, options);
  }

  /**
   * True when this reply, or one to a later customer message, was already posted on the thread.
   * (Two customer messages of one thread in the same millisecond are told apart by id.)
   */
  alreadyPosted(reply: { orgId: string; threadId: string; eventId: string; occurredAt: number }): boolean {
    const last = this.table.get(keyOf(reply.orgId, reply.threadId));
    if (!last) return false;
    return last.eventId === reply.eventId || reply.occurredAt < last.occurredAt;
  }

  /** Durable (acks=all) before it returns, and visible here at once. */
  async record(
    writer: Pick<RecordWriter, 'write'>,
    reply: { orgId: string; threadId: string; eventId: string; occurredAt: number },
    postedAt: number,
  ): Promise<void> {
    const key = keyOf(reply.orgId, reply.threadId);
    const value: PostedReply = { eventId: reply.eventId, occurredAt: reply.occurredAt, postedAt };
    await this.writeThrough(writer, [{ key, value }], `posted reply ${reply.eventId}`);
  }
}
