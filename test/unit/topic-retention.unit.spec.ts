import assert from 'node:assert/strict';
import type { Admin } from 'kafkajs';
import { pino } from 'pino';
import { Writable } from 'node:stream';
import { ensureRetention } from '../../lib/kafka/client.ts';

/** A pino logger whose lines are kept, to read what an operator would see. */
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

/** The two admin calls ensureRetention makes, answering as a broker would. */
const adminWith = (retentionMs: string, alter: () => Promise<void>): { admin: Admin; altered: unknown[] } => {
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
          configEntries: [
            {
              configName: 'retention.ms',
              configValue: retentionMs,
              isDefault: false,
              configSource: 1,
              isSensitive: false,
              readOnly: false,
              configSynonyms: [],
            },
            {
              configName: 'max.message.bytes',
              configValue: '2000000',
              isDefault: false,
              configSource: 1,
              isSensitive: false,
              readOnly: false,
              configSynonyms: [],
            },
            {
              configName: 'segment.ms',
              configValue: '604800000',
              isDefault: true,
              configSource: 5,
              isSensitive: false,
              readOnly: false,
              configSynonyms: [],
            },
          ],
        },
      ],
    }),
    alterConfigs: async (request: unknown) => {
      altered.push(request);
      await alter();
      return { throttleTime: 0, resources: [] };
    },
  } as unknown as Admin;
  return { admin, altered };
};

const spec = { name: 'pipeline.dead-letters', compacted: false, retentionMs: 1_209_600_000 };

describe('dead-letter retention on an existing topic (lib/kafka/client.ts ensureRetention)', () => {
  it('given a topic that keeps 1 hour, when checked, then retention.ms is raised and its other overrides sent back, not the defaults', async () => {
    const { logger, lines } = capturingLogger();
    const { admin, altered } = adminWith('3600000', async () => undefined);

    await ensureRetention(admin, spec, logger);

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
            ],
          },
        ],
      },
    ]);
    assert.equal(lines[0]?.msg, 'topic retention raised to its configured value');
  });

  it('given a topic that keeps longer (or forever), when checked, then it is left alone', async () => {
    for (const retention of ['2419200000', '-1']) {
      const { admin, altered } = adminWith(retention, async () => undefined);
      await ensureRetention(admin, spec, capturingLogger().logger);
      assert.deepEqual(altered, [], retention);
    }
  });

  it('given a cluster that refuses the change, when checked, then a warning names the command that does it and start-up goes on', async () => {
    const { logger, lines } = capturingLogger();
    const { admin } = adminWith('3600000', async () => {
      throw new Error('Cluster authorization failed');
    });

    await ensureRetention(admin, spec, logger);

    assert.equal(lines.length, 1);
    assert.equal(lines[0]?.level, 40);
    assert.match(
      lines[0]?.msg ?? '',
      /^could not check or raise the retention of pipeline\.dead-letters to 1209600000 ms; records may expire sooner\. Fix: kafka-configs\.sh --bootstrap-server <broker> --alter --entity-type topics --entity-name pipeline\.dead-letters --add-config retention\.ms=1209600000$/,
    );
  });
});
