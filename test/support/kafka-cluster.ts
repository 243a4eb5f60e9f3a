import type { Admin } from 'kafkajs';
import { runLocalInfraScript } from './processes.ts';

/**
 * The brokers of the cluster `infra/local/up.sh --brokers N` started from this checkout, node 1
 * first (its .local/env names them KAFKA_CLUSTER_BROKERS); undefined when none is named. Broker i
 * of the list is node i, the one `infra/local/broker.sh kill|start i` acts on.
 */
export const clusterBrokers = (): string[] | undefined => {
  const list = process.env.KAFKA_CLUSTER_BROKERS?.split(',')
    .map((broker) => broker.trim())
    .filter((broker) => broker.length > 0);
  return list && list.length > 0 ? list : undefined;
};

/** Runs infra/local/broker.sh; rejects with its stderr when it fails. */
const brokerCommand = async (action: 'kill' | 'start', index: number): Promise<void> => {
  await runLocalInfraScript('broker.sh', [action, String(index)]);
};

/** SIGKILL broker `index`: no controlled shutdown, as a machine that dies. */
export const killBroker = (index: number): Promise<void> => brokerCommand('kill', index);

/** Starts broker `index` again from its data; resolves once it serves. */
export const startBroker = (index: number): Promise<void> => brokerCommand('start', index);

/** Partitions of every topic with fewer in-sync replicas than replicas, and those with no leader. */
export const replicationHealth = async (
  admin: Admin,
): Promise<{ underReplicated: number; offline: number; partitions: number }> => {
  const { topics } = await admin.fetchTopicMetadata({ topics: await admin.listTopics() });
  const partitions = topics.flatMap((topic) => topic.partitions);
  return {
    underReplicated: partitions.filter((partition) => partition.isr.length < partition.replicas.length)
      .length,
    offline: partitions.filter((partition) => partition.leader < 0).length,
    partitions: partitions.length,
  };
};
