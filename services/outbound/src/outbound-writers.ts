import { createDomainEventPublisher } from '../../../lib/domain-event-publisher.ts';
import { createRecordWriter } from '../../../lib/kafka/record-writer.ts';
import type { Logger } from '../../../lib/log.ts';
import type { PipelineConnections } from '../../../lib/pipeline-connections.ts';
import { PostedReplies } from '../../../lib/posted-replies.ts';
import type { OutboundConfig } from './config.ts';

/**
 * What outbound writes to Kafka besides dead letters: AI replies and hold checks (published),
 * the compacted tables' records (session links, posted replies, held ticket events: many
 * conversations write at once, sharing requests), and the last AI reply posted per thread
 * (compacted, read whole): no reply is posted twice even when Redis, which holds the claims,
 * lost its data.
 */
export const startOutboundWriters = async (
  connections: Pick<PipelineConnections, 'kafka' | 'topics' | 'codec'>,
  config: Pick<OutboundConfig, 'KAFKA_TOPIC_PREFIX'>,
  logger: Logger,
) => {
  const { kafka, topics, codec } = connections;
  const postedReplies = new PostedReplies({
    kafka,
    topic: topics.postedReplies.name,
    groupPrefix: config.KAFKA_TOPIC_PREFIX,
    logger,
  });
  await postedReplies.start();
  const events = await createDomainEventPublisher({
    kafka,
    codec,
    topics: [topics.aiReplies.name, topics.domainEvents.name],
    logger,
  });
  const tableWrites = await createRecordWriter({
    kafka,
    topics: [topics.sessionLinks.name, topics.postedReplies.name, topics.heldTicketEvents.name],
    logger,
  });
  return { postedReplies, events, tableWrites };
};
