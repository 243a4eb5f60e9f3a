import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { KafkaMessage } from 'kafkajs';
import kafkajs from 'kafkajs';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { decodeRawWebhookEvent } from '../../lib/contracts/index.ts';
import { ErrorCode, PipelineError, isDependencyUnavailable } from '../../lib/errors.ts';
import type { HubSpotApi } from '../../lib/hubspot/index.ts';
import { AvroCodec } from '../../lib/registry.ts';
import { createRawEventHandler } from '../../services/processor/src/handle-raw-event.ts';
import { createProcessorMetrics } from '../../services/processor/src/metrics.ts';

// kafkajs is CommonJS and spreads its errors into its exports: Node's ESM import sees only the default.
const { KafkaJSConnectionError, KafkaJSNonRetriableError, KafkaJSNumberOfRetriesExceeded } = kafkajs;

const withCode = (message: string, code: string): Error => Object.assign(new Error(message), { code });
const named = (name: string, message: string, extra: object = {}): Error =>
  Object.assign(new Error(message), { name, ...extra });

describe('isDependencyUnavailable: Kafka, Redis or the registry did not answer', () => {
  const unavailable: [string, () => unknown][] = [
    [
      'a socket refused (ECONNREFUSED)',
      () => withCode('connect ECONNREFUSED 127.0.0.1:9092', 'ECONNREFUSED'),
    ],
    ['a socket timed out (ETIMEDOUT, code only)', () => withCode('', 'ETIMEDOUT')],
    [
      'Node connecting to several addresses (an AggregateError of refusals)',
      () => new AggregateError([withCode('connect ECONNREFUSED ::1:6379', 'ECONNREFUSED')], ''),
    ],
    ['kafkajs: KafkaJSConnectionError', () => new KafkaJSConnectionError('Connection timeout')],
    [
      'kafkajs: KafkaJSNumberOfRetriesExceeded',
      () =>
        new KafkaJSNumberOfRetriesExceeded(new Error('Request timed out'), {
          retryCount: 5,
          retryTime: 3000,
        }),
    ],
    [
      'kafkajs: a KafkaJSNonRetriableError wrapping a connection error',
      () =>
        // kafkajs's types omit the constructor's `{ cause }` that its code takes.
        Object.assign(new KafkaJSNonRetriableError('the producer failed'), {
          cause: new KafkaJSConnectionError('Connection error: connect ECONNREFUSED 127.0.0.1:9092'),
        }),
    ],
    ['ioredis: Connection is closed', () => new Error('Connection is closed.')],
    [
      'ioredis: MaxRetriesPerRequestError',
      () => named('MaxRetriesPerRequestError', 'Reached the max retries per request limit (which is 1).'),
    ],
    [
      'fetch (undici): "fetch failed" caused by ECONNREFUSED',
      () =>
        new TypeError('fetch failed', {
          cause: withCode('connect ECONNREFUSED 127.0.0.1:8081', 'ECONNREFUSED'),
        }),
    ],
    [
      'a cause two levels deep',
      () =>
        new Error('reading the organisations', {
          cause: new Error('the read failed', { cause: withCode('read ECONNRESET', 'ECONNRESET') }),
        }),
    ],
    [
      'the registry codec wrapping an unreachable registry as undecodable',
      () =>
        new PipelineError(ErrorCode.undecodable, 'cannot decode an Avro record', {
          retriable: false,
          cause: named('ResponseError', ' - Error, status 400: connect ECONNREFUSED 127.0.0.1:8081', {
            status: 400,
          }),
        }),
    ],
    ['the registry answering 503', () => named('ResponseError', ' - Error, status 503', { status: 503 })],
    [
      'our own Kafka-unavailable error',
      () => new PipelineError(ErrorCode.kafkaUnavailable, 'not written to Kafka', { retriable: true }),
    ],
  ];
  for (const [what, error] of unavailable)
    it(`given ${what}, then it is unavailable`, () => assert.equal(isDependencyUnavailable(error()), true));

  const notUnavailable: [string, () => unknown][] = [
    ['a plain TypeError', () => new TypeError("Cannot read properties of undefined (reading 'orgId')")],
    [
      'a 4xx HTTP error of the registry (schema not found)',
      () => named('ResponseError', ' - Schema not found', { status: 404 }),
    ],
    [
      'a record the codec cannot decode (no magic byte)',
      () =>
        new PipelineError(ErrorCode.undecodable, 'cannot decode an Avro record', {
          retriable: false,
          cause: new Error('no Confluent magic byte'),
        }),
    ],
    [
      'an upstream (HubSpot) failing with a socket error: its own classification, not ours',
      () =>
        new PipelineError(ErrorCode.upstreamUnavailable, 'HubSpot did not answer', {
          retriable: true,
          upstream: 'hubspot',
          cause: withCode('connect ECONNREFUSED', 'ECONNREFUSED'),
        }),
    ],
    [
      'a record too large',
      () => new PipelineError(ErrorCode.recordTooLarge, 'too large', { retriable: false }),
    ],
    ['not an Error', () => 'ECONNREFUSED'],
    [
      'a cause chain that loops',
      () => {
        const looping = new Error('a');
        Object.assign(looping, { cause: looping });
        return looping;
      },
    ],
  ];
  for (const [what, error] of notUnavailable)
    it(`given ${what}, then it is not unavailable`, () =>
      assert.equal(isDependencyUnavailable(error()), false));
});

describe('processor: a raw record whose schema cannot be fetched', () => {
  let registry: Server | undefined;
  afterEach(() => registry?.close());

  /** A record in Confluent's wire format naming schema id 999, which no codec has cached. */
  const uncachedSchemaRecord = (): Buffer => {
    const buffer = Buffer.alloc(8);
    buffer.writeInt32BE(999, 1);
    return buffer;
  };

  const handlerDecodingWith = (codec: AvroCodec) =>
    createRawEventHandler({
      decodeRaw: async (value) => decodeRawWebhookEvent(await codec.decodeRecord(value)),
      orgs: { lookupById: () => ({ kind: 'unknown' }), lookupByPortal: () => ({ kind: 'unknown' }) },
      propertyClock: { lastApplied: async () => undefined, advance: async () => undefined },
      links: { forThread: () => undefined, forTicket: () => undefined, catchUp: async () => true },
      dedup: {
        claim: async () => 'claimed',
        confirm: async () => undefined,
        release: async () => undefined,
        renew: async () => true,
      },
      hubspotFor: () => ({}) as HubSpotApi,
      publish: async () => undefined,
      markReconnectRequired: async () => undefined,
      metrics: createProcessorMetrics(new Registry()),
      logger: pino({ level: 'silent' }),
      settings: {
        emailDelayMs: 0,
        claimLeaseMs: 1000,
        retry: { attempts: 3, initialDelayMs: 1, maxDelayMs: 1 },
        transientRetryMs: 1000,
      },
      now: () => 1_700_000_000_000,
      sleep: async () => undefined,
    });

  const message = (value: Buffer) =>
    ({ key: Buffer.from('org-1'), value, offset: '3' }) as unknown as KafkaMessage;

  it('regression: given the registry unreachable while decoding an uncached schema id, when handled, then the same record again later, not an undecodable dead letter', async () => {
    // A port nothing listens on: the registry client reports the refusal as a 400 ResponseError.
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const { port } = closed.address() as AddressInfo;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const handle = handlerDecodingWith(new AvroCodec({ url: `http://127.0.0.1:${port}`, subjectPrefix: '' }));

    const outcome = await handle(message(uncachedSchemaRecord()));

    assert.equal(outcome.kind, 'retry');
  });

  it('given the registry answering that the schema id does not exist, when handled, then an undecodable dead letter', async () => {
    registry = createServer((_request, response) => {
      response.writeHead(404, { 'content-type': 'application/json' });
      response.end(JSON.stringify({ error_code: 40403, message: 'Schema not found' }));
    });
    await new Promise<void>((resolve) => registry?.listen(0, '127.0.0.1', resolve));
    const { port } = registry.address() as AddressInfo;
    const handle = handlerDecodingWith(new AvroCodec({ url: `http://127.0.0.1:${port}`, subjectPrefix: '' }));

    const outcome = await handle(message(uncachedSchemaRecord()));

    assert.equal(outcome.kind, 'dead-letter');
    assert.equal(outcome.kind === 'dead-letter' && outcome.reason, 'undecodable');
  });
});
