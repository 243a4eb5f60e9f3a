export {
  CONSUMER_FETCH_MAX_WAIT_MS,
  createKafka,
  ensureTopics,
  createDurableProducer,
  deleteThrowawayGroup,
  readTopicLimits,
  whileLeadersSettle,
  type KafkaOptions,
} from './client.ts';
export {
  topicsFor,
  consumerGroupsFor,
  minInsyncReplicasFor,
  ORDERING_KEY_HEADER,
  type Topics,
  type TopicSpec,
} from './topics.ts';
export {
  BatchingPublisher,
  encodedRecordBytes,
  type BatchingPublisherOptions,
  type TopicLimit,
} from './batching-publisher.ts';
export {
  DEFAULT_CRASH_BUDGET,
  KeyedConsumer,
  type ConsumerObserver,
  type KeyedConsumerOptions,
  type KeyedHandler,
  type TenantParking,
} from './keyed-consumer/index.ts';
export { KafkaTable, type TableEntry } from './table.ts';
export { done, type HandlerOutcome } from './handler-outcome.ts';
export { createTenantGate, type TenantGate } from './tenant-gate.ts';
export {
  MissingTopicError,
  TopicRead,
  headersAsText,
  rangesBetween,
  rangesOfRecordAt,
  readRanges,
  readRecordAt,
  readTopicWindows,
  recordsIn,
  windowRanges,
  type PartitionRange,
  type PartitionRanges,
  type TopicWindow,
  type WindowReadSummary,
  type WindowRecord,
} from './topic-window.ts';
export {
  createConsumerMetrics,
  createServiceConsumer,
  observerCounting,
  serviceGroupConfig,
  type ConsumerMetrics,
  type ServiceConsumerOptions,
  type ServiceConsumerSettings,
} from './service-consumer.ts';
