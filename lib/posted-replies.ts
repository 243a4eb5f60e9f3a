import type { Kafka } from 'kafkajs';
import type { RecordWriter } from './kafka/record-writer.ts';
import { z } from 'zod';
import { KafkaTable } from './kafka/table.ts';
import type { Logger } from './log.ts';

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

export class PostedReplies {
  readonly #table: KafkaTable<PostedReply>;
  readonly #topic: string;

  constructor(options: { kafka: Kafka; topic: string; groupPrefix: string; logger: Logger }) {
    this.#topic = options.topic;
    this.#table = new KafkaTable<PostedReply>({
      kafka: options.kafka,
      topic: options.topic,
      groupPrefix: options.groupPrefix,
      decode: (raw) => PostedReply.parse(JSON.parse(raw.toString('utf8'))),
      logger: options.logger,
    });
  }

  start(): Promise<void> {
    return this.#table.start();
  }

  stop(): Promise<void> {
    return this.#table.stop();
  }

  /** Waits (5 s at most) until the table holds everything on its topic now: before trusting "not posted". */
  catchUp(): Promise<boolean> {
    return this.#table.catchUp();
  }

  /**
   * True when this reply, or one to a later customer message, was already posted on the thread.
   * (Two customer messages of one thread in the same millisecond are told apart by id.)
   */
  alreadyPosted(reply: { orgId: string; threadId: string; eventId: string; occurredAt: number }): boolean {
    const last = this.#table.get(keyOf(reply.orgId, reply.threadId));
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
    await writer.write(this.#topic, [{ key, value: JSON.stringify(value) }], `posted reply ${reply.eventId}`);
    this.#table.applyLocal(key, value);
  }
}
