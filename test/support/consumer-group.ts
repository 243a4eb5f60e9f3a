import { AssignerProtocol, Partitioners, type Kafka } from 'kafkajs';
import { waitFor } from './pipeline.ts';

/**
 * Waits until a consumer group is Stable with `members` members, each holding at least one
 * partition. A test that needs "both replicas handled events" must start sending only then: a
 * replica still joining gets nothing, and the test would pass or fail on timing alone.
 */
export const waitForGroupAssigned = async (
  kafka: Kafka,
  groupId: string,
  members: number,
  timeoutMs = 45000,
): Promise<void> => {
  const admin = kafka.admin();
  await admin.connect();
  try {
    await waitFor(
      `consumer group ${groupId} to be Stable with ${members} members, each assigned a partition`,
      async () => {
        const { groups } = await admin.describeGroups([groupId]);
        const group = groups[0];
        if (group?.state !== 'Stable' || group.members.length !== members) return false;
        return group.members.every((member) => {
          const assignment = AssignerProtocol.MemberAssignment.decode(member.memberAssignment);
          return Object.values(assignment?.assignment ?? {}).some((partitions) => partitions.length > 0);
        });
      },
      timeoutMs,
      200,
    );
  } finally {
    await admin.disconnect();
  }
};

const partitionOfKey = Partitioners.DefaultPartitioner();

/** The partition (of `partitions`) a record keyed `key` lands on with the pipeline's partitioner (murmur2). */
export const partitionOf = (key: string, partitions: number): number =>
  partitionOfKey({
    topic: 'any',
    partitionMetadata: Array.from({ length: partitions }, (_, partitionId) => ({
      partitionId,
      leader: 1,
      replicas: [1],
      isr: [1],
      partitionErrorCode: 0,
    })),
    message: { key, value: null },
  });

/**
 * `count` keys `${prefix}<n>` spread so that every one of `partitions` partitions gets at least
 * one (random keys leave a partition empty often enough to make a test flaky).
 */
export const keysCoveringPartitions = (prefix: string, count: number, partitions: number): string[] => {
  const byPartition = new Map<number, string[]>();
  for (let n = 0; [...byPartition.values()].flat().length < count || byPartition.size < partitions; n++) {
    const key = `${prefix}${n}`;
    const partition = partitionOf(key, partitions);
    const keys = byPartition.get(partition) ?? [];
    // Fill each partition evenly: take a key only while its partition has less than its share.
    if (keys.length < Math.ceil(count / partitions)) {
      keys.push(key);
      byPartition.set(partition, keys);
    }
    if (n > 10000) throw new Error('could not spread keys over the partitions');
  }
  return [...byPartition.values()].flat().slice(0, Math.max(count, partitions));
};
