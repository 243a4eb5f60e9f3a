import assert from 'node:assert/strict';
import { createRequire } from 'node:module';

/**
 * patches/kafkajs+2.2.4.patch, the producer's retry after a broker fails mid-send
 * (kafkajs/src/producer/sendMessages.js). Unpatched, kafkajs kept what it had sent per broker:
 * when the failed broker's partitions moved to a broker that had already answered for others,
 * the retry skipped that broker and send() resolved without writing them (tulios/kafkajs#1303).
 * These drive the real sendMessages and retrier against a cluster of two scripted brokers; the
 * kafka-cluster integration test kills a real broker under producers.
 */
const require = createRequire(import.meta.url);

type Message = { readonly partition: number; readonly value: string };
type PartitionData = { partition: number; firstSequence: number; messages: Message[] };
type TopicData = { topic: string; partitions: PartitionData[] };
type ProduceRequest = { readonly broker: number; readonly topicData: TopicData[] };
type SendMessages = (options: {
  acks: number;
  timeout: number;
  topicMessages: readonly { topic: string; messages: readonly Message[] }[];
}) => Promise<{ topicName: string; partition: number; baseOffset: string }[]>;

const { KafkaJSConnectionError, KafkaJSNonRetriableError } = require('kafkajs/src/errors.js') as {
  KafkaJSConnectionError: new (message: string) => Error;
  KafkaJSNonRetriableError: new (message: string) => Error;
};
const createSendMessages = require('kafkajs/src/producer/sendMessages.js') as (
  options: unknown,
) => SendMessages;
const createRetry = require('kafkajs/src/retry/index.js') as (options: unknown) => unknown;

const TOPIC = 'events';
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * A cluster of brokers 1 and 2: `leaders` maps partition to leader, `failOnce` makes a broker's
 * first produce fail (after `delayMs`), `metadataAfterFailure` is the leaders a refresh reads
 * once a produce failed. Sequences are counted as kafkajs's EOS manager does.
 */
const scriptedCluster = (options: {
  leaders: Record<number, number>;
  metadataAfterFailure?: Record<number, number>;
  failOnce?: ReadonlySet<number>;
  /** Brokers that refuse every produce with an error no retry fixes. */
  refuse?: ReadonlySet<number>;
  delayMs?: Record<number, number>;
}) => {
  let leaders = { ...options.leaders };
  let failed = false;
  const failOnce = new Set(options.failOnce);
  const requests: ProduceRequest[] = [];
  const sequences = new Map<number, number>();
  const broker = (nodeId: number) => ({
    nodeId,
    produce: async ({ topicData }: { topicData: TopicData[] }) => {
      requests.push({ broker: nodeId, topicData: structuredClone(topicData) });
      await sleep(options.delayMs?.[nodeId] ?? 0);
      if (options.refuse?.has(nodeId))
        throw new KafkaJSNonRetriableError(`broker ${nodeId}: record too large`);
      if (failOnce.delete(nodeId)) {
        failed = true;
        throw new KafkaJSConnectionError(`broker ${nodeId} went away`);
      }
      return {
        topics: topicData.map(({ topic, partitions }) => ({
          topicName: topic,
          partitions: partitions.map(({ partition, firstSequence }) => ({
            partition,
            errorCode: 0,
            baseOffset: String(firstSequence),
          })),
        })),
      };
    },
  });
  const brokers = new Map([1, 2].map((nodeId) => [nodeId, broker(nodeId)]));
  const refresh = async (): Promise<void> => {
    if (failed && options.metadataAfterFailure) leaders = { ...options.metadataAfterFailure };
  };
  const cluster = {
    targetTopics: new Set([TOPIC]),
    refreshMetadataIfNecessary: refresh,
    refreshMetadata: refresh,
    addMultipleTargetTopics: async () => undefined,
    isConnected: () => true,
    removeBroker: () => undefined,
    findBroker: async ({ nodeId }: { nodeId: string }) => brokers.get(Number(nodeId)),
    findTopicPartitionMetadata: () =>
      Object.entries(leaders).map(([partitionId, leader]) => ({ partitionId: Number(partitionId), leader })),
    // As kafkajs's: a partition missing from the metadata is left out.
    findLeaderForPartitions: (_topic: string, partitions: readonly string[]) => {
      const result: Record<string, number[]> = {};
      for (const id of partitions) {
        const leader = leaders[Number(id)];
        if (leader !== undefined) (result[leader] ??= []).push(Number(id));
      }
      return result;
    },
  };
  const eosManager = {
    isTransactional: () => false,
    getProducerId: () => 7,
    getProducerEpoch: () => 0,
    acquireBrokerLock: async () => undefined,
    releaseBrokerLock: async () => undefined,
    getSequence: (_topic: string, partition: number) => sequences.get(partition) ?? 0,
    updateSequence: (_topic: string, partition: number, increment: number) =>
      sequences.set(partition, (sequences.get(partition) ?? 0) + increment),
  };
  const quiet = () => undefined;
  const send = createSendMessages({
    logger: { debug: quiet, info: quiet, warn: quiet, error: quiet },
    cluster,
    partitioner: ({ message }: { message: Message }) => message.partition,
    eosManager,
    retrier: createRetry({ retries: 3, initialRetryTime: 5, maxRetryTime: 20 }),
  });
  return { send, requests, sequences };
};

/** Which (partition: values) each broker was sent, request by request. */
const sentTo = (requests: readonly ProduceRequest[], nodeId: number): string[] =>
  requests
    .filter((request) => request.broker === nodeId)
    .flatMap((request) =>
      request.topicData.flatMap(({ partitions }) =>
        partitions.map(
          ({ partition, firstSequence, messages }) =>
            `p${partition}@${firstSequence}: ${messages.map((message) => message.value).join(',')}`,
        ),
      ),
    );

const messages: Message[] = [
  { partition: 0, value: 'a' },
  { partition: 1, value: 'b' },
  { partition: 1, value: 'c' },
];

describe('kafkajs patch: a send retried after a broker failed (patches/kafkajs+2.2.4.patch)', () => {
  it('given broker 2 fails and its partition moves to broker 1, which already answered for its own, when the send is retried, then broker 1 is sent the moved partition under its first sequence and the send resolves with both', async () => {
    const cluster = scriptedCluster({
      leaders: { 0: 1, 1: 2 },
      metadataAfterFailure: { 0: 1, 1: 1 },
      failOnce: new Set([2]),
    });
    const result = await cluster.send({
      acks: -1,
      timeout: 1000,
      topicMessages: [{ topic: TOPIC, messages }],
    });

    assert.deepEqual(sentTo(cluster.requests, 2), ['p1@0: b,c']);
    assert.deepEqual(
      sentTo(cluster.requests, 1),
      ['p0@0: a', 'p1@0: b,c'],
      'partition 0 once, then partition 1 at its new leader with the sequence the failed request had',
    );
    assert.deepEqual(
      result.map(({ partition }) => partition).sort(),
      [0, 1],
      'one acknowledgement per partition',
    );
    assert.equal(cluster.sequences.get(1), 2, 'partition 1 counted once');
  });

  it('given broker 1 fails at once while broker 2 is still writing, when the send is retried, then broker 2 is not sent its partition again (a second copy under the next sequence would be stored as new records)', async () => {
    const cluster = scriptedCluster({
      leaders: { 0: 1, 1: 2 },
      failOnce: new Set([1]),
      delayMs: { 2: 60 },
    });
    await cluster.send({ acks: -1, timeout: 1000, topicMessages: [{ topic: TOPIC, messages }] });

    assert.deepEqual(sentTo(cluster.requests, 2), ['p1@0: b,c'], 'partition 1 sent once');
    assert.deepEqual(sentTo(cluster.requests, 1), ['p0@0: a', 'p0@0: a'], 'partition 0 retried');
    assert.equal(cluster.sequences.get(1), 2);
  });

  it('given a partition missing from the metadata, when sending, then the send fails after its retries instead of resolving without it', async () => {
    const cluster = scriptedCluster({ leaders: { 0: 1 } });
    await assert.rejects(
      cluster.send({ acks: -1, timeout: 1000, topicMessages: [{ topic: TOPIC, messages }] }),
      /No metadata for partitions 1 of topic events/,
    );
  });

  it('given one broker failing retriably and another refusing for good, when sending, then the send fails at once with the refusal (not after the retries)', async () => {
    const cluster = scriptedCluster({
      leaders: { 0: 1, 1: 2 },
      failOnce: new Set([1]),
      refuse: new Set([2]),
      delayMs: { 2: 20 },
    });
    await assert.rejects(
      cluster.send({ acks: -1, timeout: 1000, topicMessages: [{ topic: TOPIC, messages }] }),
      /broker 2: record too large/,
    );
    assert.equal(cluster.requests.length, 2, 'one attempt, no retry');
  });
});
