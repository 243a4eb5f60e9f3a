import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import type { Admin } from 'kafkajs';
import { pino } from 'pino';
import { ensureTopicConfig } from '../../lib/kafka/client.ts';
import { minInsyncReplicasFor } from '../../lib/kafka/topics.ts';

const capturingLogger = () => {
  const lines: { level: number; msg: string }[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(JSON.parse(chunk.toString()) as { level: number; msg: string });
      done();
    },
  });
  return { logger: pino({ level: 'info' }, stream), lines };
};

/** A topic's configuration as describeConfigs reports it: its own overrides (source 1) and defaults (5). */
const adminWith = (
  entries: Record<string, { value: string; own: boolean }>,
): { admin: Admin; altered: unknown[] } => {
  const altered: unknown[] = [];
  const admin = {
    describeConfigs: async () => ({
      throttleTime: 0,
      resources: [
        {
          errorCode: 0,
          errorMessage: null,
          resourceName: 'pipeline.dead-letters',
          resourceType: 2,
          configEntries: Object.entries(entries).map(([configName, { value, own }]) => ({
            configName,
            configValue: value,
            isDefault: !own,
            configSource: own ? 1 : 5,
            isSensitive: false,
            readOnly: false,
            configSynonyms: [],
          })),
        },
      ],
    }),
    alterConfigs: async (request: unknown) => {
      altered.push(request);
      return { throttleTime: 0, resources: [] };
    },
  } as unknown as Admin;
  return { admin, altered };
};

const spec = { name: 'pipeline.dead-letters', compacted: false, retentionMs: 1_209_600_000 };

describe('min.insync.replicas of the topics (lib/kafka/topics.ts minInsyncReplicasFor)', () => {
  it('given no KAFKA_MIN_INSYNC_REPLICAS, when topics get 2 or more replicas, then 2; with 1 or the broker default, none', () => {
    assert.equal(minInsyncReplicasFor(3, undefined), 2);
    assert.equal(minInsyncReplicasFor(2, undefined), 2);
    assert.equal(minInsyncReplicasFor(1, undefined), undefined);
    assert.equal(minInsyncReplicasFor(undefined, undefined), undefined);
  });

  it('given KAFKA_MIN_INSYNC_REPLICAS, when it fits the replication factor, then it is used', () => {
    assert.equal(minInsyncReplicasFor(3, 3), 3);
    assert.equal(minInsyncReplicasFor(3, 1), 1);
    assert.equal(minInsyncReplicasFor(undefined, 2), 2);
  });

  it('given KAFKA_MIN_INSYNC_REPLICAS above the replication factor, when read, then start-up stops naming both', () => {
    assert.throws(
      () => minInsyncReplicasFor(2, 3),
      /KAFKA_MIN_INSYNC_REPLICAS = 3 is more than KAFKA_REPLICATION_FACTOR = 2/,
    );
  });
});

describe('min.insync.replicas on an existing topic (lib/kafka/client.ts ensureTopicConfig)', () => {
  it('given a topic at the broker default 1 with 3 replicas, when 2 is wanted, then it is raised and its own overrides sent back', async () => {
    const { logger, lines } = capturingLogger();
    const { admin, altered } = adminWith({
      'min.insync.replicas': { value: '1', own: false },
      'max.message.bytes': { value: '2000000', own: true },
      'retention.ms': { value: '1209600000', own: true },
    });

    await ensureTopicConfig(admin, spec, { minInsyncReplicas: { wanted: 2, replicas: 3 } }, logger);

    assert.deepEqual(altered, [
      {
        validateOnly: false,
        resources: [
          {
            type: 2,
            name: 'pipeline.dead-letters',
            configEntries: [
              { name: 'max.message.bytes', value: '2000000' },
              { name: 'retention.ms', value: '1209600000' },
              { name: 'min.insync.replicas', value: '2' },
            ],
          },
        ],
      },
    ]);
    assert.equal(lines[0]?.msg, 'topic min.insync.replicas raised to its configured value');
  });

  it('given a short retention and a low min.insync.replicas, when both are wanted, then one change raises both', async () => {
    const { admin, altered } = adminWith({
      'min.insync.replicas': { value: '1', own: true },
      'retention.ms': { value: '3600000', own: true },
    });

    await ensureTopicConfig(
      admin,
      spec,
      { retentionMs: spec.retentionMs, minInsyncReplicas: { wanted: 2, replicas: 3 } },
      capturingLogger().logger,
    );

    assert.equal(altered.length, 1);
    assert.deepEqual(
      (altered[0] as { resources: { configEntries: unknown[] }[] }).resources[0]?.configEntries,
      [
        { name: 'retention.ms', value: '1209600000' },
        { name: 'min.insync.replicas', value: '2' },
      ],
    );
  });

  it('given a topic with 1 replica, when 2 in sync are wanted, then it is left alone with a warning (every write would be refused)', async () => {
    const { logger, lines } = capturingLogger();
    const { admin, altered } = adminWith({ 'min.insync.replicas': { value: '1', own: false } });

    await ensureTopicConfig(admin, spec, { minInsyncReplicas: { wanted: 2, replicas: 1 } }, logger);

    assert.deepEqual(altered, []);
    assert.equal(lines[0]?.level, 40);
    assert.match(lines[0]?.msg ?? '', /has 1 replicas, too few for min\.insync\.replicas = 2: left as it is/);
  });

  it('given a topic that asks more in sync than wanted, when checked, then it is left alone', async () => {
    const { admin, altered } = adminWith({ 'min.insync.replicas': { value: '3', own: true } });
    await ensureTopicConfig(
      admin,
      spec,
      { minInsyncReplicas: { wanted: 2, replicas: 3 } },
      capturingLogger().logger,
    );
    assert.deepEqual(altered, []);
  });
});
