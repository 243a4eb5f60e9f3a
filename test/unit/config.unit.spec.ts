import assert from 'node:assert/strict';
import { resolveSecretsKey } from '../../lib/config.ts';
import { loadIngestConfig } from '../../services/ingest/src/config.ts';
import { loadProcessorConfig } from '../../services/processor/src/config.ts';

describe('configuration', () => {
  it('given an empty environment, when loaded, then the contract defaults apply', () => {
    const config = loadProcessorConfig({});
    assert.deepEqual(config.KAFKA_BROKERS, ['127.0.0.1:9092']);
    assert.equal(config.SCHEMA_REGISTRY_URL, 'http://127.0.0.1:8081/apis/ccompat/v7');
    assert.equal(config.REDIS_URL, 'redis://127.0.0.1:6379');
    assert.equal(config.HUBSPOT_API_BASE_URL, 'https://api.hubapi.com');
    assert.equal(config.OPENCX_API_BASE_URL, 'https://api.open.cx');
    assert.equal(config.EMAIL_DELAY_MS, 5000);
    assert.equal(config.KAFKA_TOPIC_PREFIX, '');
    assert.ok(Object.isFrozen(config));
  });

  it('given a malformed broker list, when loaded, then one line names the variable', () => {
    assert.throws(
      () => loadIngestConfig({ KAFKA_BROKERS: 'not a broker' }),
      /^PipelineError: invalid configuration: KAFKA_BROKERS = "not a broker"/,
    );
  });

  it('given a bad port, when loaded, then the error names PORT', () => {
    assert.throws(() => loadIngestConfig({ PORT: 'eighty' }), /invalid configuration: PORT/);
  });

  it('given a secret that is malformed, when loaded, then its value is not printed', () => {
    assert.throws(
      () => loadIngestConfig({ SECRETS_KEY: 'c2hvcnQ=' }),
      (error: Error) =>
        error.message.includes('SECRETS_KEY = "<8 characters>"') && !error.message.includes('c2hvcnQ='),
    );
  });

  it('given production without SECRETS_KEY, when the key is resolved, then start-up is refused', () => {
    assert.throws(() => resolveSecretsKey({ NODE_ENV: 'production' }), /SECRETS_KEY is missing/);
    assert.equal(resolveSecretsKey({ NODE_ENV: 'development' }).insecure, true);
  });

  it('given a comma-separated broker list, when loaded, then each broker is kept', () => {
    assert.deepEqual(loadIngestConfig({ KAFKA_BROKERS: 'a:9092, b:9093' }).KAFKA_BROKERS, [
      'a:9092',
      'b:9093',
    ]);
  });

  it('given SECRETS_KEY_PREVIOUS, when loaded, then it is validated like SECRETS_KEY and its value is not printed', () => {
    const key = Buffer.alloc(32, 7).toString('base64');
    const previous = Buffer.alloc(32, 9).toString('base64');
    const config = loadIngestConfig({ SECRETS_KEY: key, SECRETS_KEY_PREVIOUS: previous });
    assert.deepEqual(config.SECRETS_KEY_PREVIOUS, Buffer.alloc(32, 9));
    assert.deepEqual(resolveSecretsKey(config).previous, Buffer.alloc(32, 9));
    assert.throws(
      () => loadProcessorConfig({ SECRETS_KEY: key, SECRETS_KEY_PREVIOUS: 'c2hvcnQ=' }),
      (error: Error) =>
        /invalid configuration: SECRETS_KEY_PREVIOUS = "<8 characters>": must be 32 bytes/.test(
          error.message,
        ) && !error.message.includes('c2hvcnQ='),
    );
  });

  it('given SECRETS_KEY_PREVIOUS without SECRETS_KEY, when the key is resolved, then start-up is refused naming both', () => {
    assert.throws(
      () => resolveSecretsKey({ NODE_ENV: 'development', SECRETS_KEY_PREVIOUS: Buffer.alloc(32, 9) }),
      /SECRETS_KEY_PREVIOUS is set but SECRETS_KEY is missing/,
    );
    assert.equal(resolveSecretsKey({ NODE_ENV: 'development' }).previous, undefined);
  });
});
