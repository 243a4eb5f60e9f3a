import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createLogger } from '../../lib/log.ts';
import { loadConsoleConfig } from '../../services/console/src/config.ts';
import { startConsole } from '../../services/console/src/main.ts';
import { loadIngestConfig } from '../../services/ingest/src/config.ts';
import { startIngest } from '../../services/ingest/src/main.ts';
import { loadOutboundConfig } from '../../services/outbound/src/config.ts';
import { startOutbound } from '../../services/outbound/src/main.ts';
import { loadProcessorConfig } from '../../services/processor/src/config.ts';
import { startProcessor } from '../../services/processor/src/main.ts';

/**
 * Regression (found by `npm start`): the schema registry client's `register` refused a subject
 * whose compatibility level was not its default ("Compatibility does not match the configuration
 * (BACKWARD != NONE)") and raced with other services setting it ("A rule named 'COMPATIBILITY'
 * already exists"), so services did not start.
 */
describe('start-up: every service at once on a fresh topic prefix', function () {
  this.timeout(90000);

  it('given no topics and no subjects yet, when ingest, processor, outbound and the console start together, then all start', async () => {
    const runId = randomBytes(4).toString('hex');
    const env = {
      KAFKA_BROKERS: process.env.KAFKA_BROKERS,
      SCHEMA_REGISTRY_URL: process.env.SCHEMA_REGISTRY_URL,
      REDIS_URL: process.env.REDIS_URL,
      KAFKA_TOPIC_PREFIX: `startup-${runId}-`,
      REDIS_KEY_PREFIX: `test:${runId}:`,
      KAFKA_REPLICATION_FACTOR: '1',
      PORT: '0',
      METRICS_PORT: '0',
      NODE_ENV: 'test',
    };
    const logger = createLogger('startup-test', 'silent');
    // An operator's choice for one subject: it must not stop the services.
    const subject = `${process.env.SCHEMA_REGISTRY_URL}/subjects/${env.KAFKA_TOPIC_PREFIX}io.opencx.pipeline.CustomerMessage`;
    const schema = await readFile(new URL('../../schemas/customer-message.avsc', import.meta.url), 'utf8');
    const registered = await fetch(`${subject}/versions`, {
      method: 'POST',
      headers: { 'content-type': 'application/vnd.schemaregistry.v1+json' },
      body: JSON.stringify({ schema }),
    });
    assert.equal(registered.status, 200, await registered.text());
    const configured = await fetch(
      `${process.env.SCHEMA_REGISTRY_URL}/config/${env.KAFKA_TOPIC_PREFIX}io.opencx.pipeline.CustomerMessage`,
      {
        method: 'PUT',
        headers: { 'content-type': 'application/vnd.schemaregistry.v1+json' },
        body: JSON.stringify({ compatibility: 'NONE' }),
      },
    );
    assert.equal(configured.status, 200, await configured.text());
    const results = await Promise.allSettled([
      startIngest(loadIngestConfig(env), logger),
      startProcessor(loadProcessorConfig(env), logger),
      startOutbound(loadOutboundConfig(env), logger),
      startProcessor(loadProcessorConfig(env), logger),
      startConsole(loadConsoleConfig(env), logger),
    ]);
    await Promise.all(
      results.map((result) => (result.status === 'fulfilled' ? result.value.stop() : Promise.resolve())),
    );
    assert.deepEqual(
      results.map((result) => (result.status === 'rejected' ? String(result.reason) : 'started')),
      ['started', 'started', 'started', 'started', 'started'],
    );
  });
});
