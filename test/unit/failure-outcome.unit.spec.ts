import assert from 'node:assert/strict';
import { ConfluentSchemaRegistryValidationError } from '@kafkajs/confluent-schema-registry/dist/errors.js';
import { ErrorCode, PipelineError } from '../../lib/errors.ts';
import {
  classifyDecodeFailure,
  classifyFailure,
  type FailureContext,
  type Upstream,
} from '../../lib/failure-outcome.ts';

const now = 1_000_000;
const event = { orgId: 'org-1', eventType: 'customer-message', eventId: 'e-1' };
const contextFor = (upstream: Upstream): FailureContext => ({
  upstream,
  now,
  transientRetryMs: 1000,
  retryAttempts: 8,
  event,
});
const opencx = contextFor('opencx');
const hubspot = contextFor('hubspot');

describe('classifyFailure: what the consumer does with a handler’s failure', () => {
  it('given Redis or Kafka unreachable for a moment (ioredis MaxRetriesPerRequestError, a kafkajs connection error), then the same event again later, never a crash that ends in a dead letter', () => {
    const redisDown = Object.assign(new Error('Reached the max retries per request limit (which is 3).'), {
      name: 'MaxRetriesPerRequestError',
    });
    const brokerDown = Object.assign(new Error('Connection error: connect ECONNREFUSED 127.0.0.1:9092'), {
      name: 'KafkaJSNonRetriableError',
    });
    for (const error of [redisDown, brokerDown])
      assert.deepEqual(classifyFailure(error, opencx), {
        kind: 'retry',
        error: `${error.name}: ${error.message}`,
        afterMs: 1000,
      });
  });

  it('given Kafka unavailable or a claim held elsewhere, then the same event again later (not a dead letter)', () => {
    for (const code of [ErrorCode.kafkaUnavailable, ErrorCode.dedupInFlight])
      for (const context of [opencx, hubspot])
        assert.deepEqual(
          classifyFailure(new PipelineError(code, 'transient', { retriable: true }), context),
          {
            kind: 'retry',
            error: 'PipelineError: transient',
            afterMs: 1000,
          },
        );
  });

  it('given a record Avro refuses (occurredAt 1.5), then a malformed_event dead letter after one attempt', () => {
    const error = new ConfluentSchemaRegistryValidationError(new Error('invalid "long": 1.5'), [
      ['occurredAt'],
    ]);
    const outcome = classifyFailure(error, hubspot);
    assert.equal(outcome.kind === 'dead-letter' && outcome.reason, 'malformed_event');
    assert.equal(outcome.kind === 'dead-letter' && outcome.attempts, 1);
    assert.match(outcome.kind === 'dead-letter' ? outcome.error : '', /invalid "long": 1\.5/);
  });

  it('given a bug (not a PipelineError), then unclassified, for the consumer’s crash budget', () => {
    assert.deepEqual(classifyFailure(new TypeError('x is undefined'), opencx), { kind: 'unclassified' });
    assert.deepEqual(classifyFailure('a string', hubspot), { kind: 'unclassified' });
  });

  it('given an outside system failing through the in-memory retries (5xx, 429) or the tenant waited for, then the tenant is waited for: never a dead letter', () => {
    const cases: [PipelineError, FailureContext, { reason: string; untilMs?: number }][] = [
      [
        new PipelineError(ErrorCode.upstreamUnavailable, '503', { retriable: true }),
        opencx,
        { reason: 'opencx_unavailable' },
      ],
      [
        new PipelineError(ErrorCode.upstreamRateLimited, '429', { retriable: true, retryAfterMs: 3000 }),
        opencx,
        { reason: 'opencx_rate_limited', untilMs: now + 3000 },
      ],
      [
        new PipelineError(ErrorCode.upstreamUnavailable, '502', { retriable: true, upstream: 'hubspot' }),
        opencx,
        { reason: 'hubspot_unavailable' },
      ],
      [
        new PipelineError(ErrorCode.upstreamRateLimited, '429', {
          retriable: true,
          retryAfterMs: 10_000,
          upstream: 'hubspot',
        }),
        hubspot,
        { reason: 'hubspot_rate_limited', untilMs: now + 10_000 },
      ],
      [
        new PipelineError(ErrorCode.upstreamUnavailable, 'timed out', { retriable: true }),
        hubspot,
        { reason: 'hubspot_unavailable' },
      ],
      [
        new PipelineError(ErrorCode.tenantWaiting, 'waited for', {
          retriable: false,
          retryAfterMs: 500,
          upstream: 'opencx',
        }),
        opencx,
        { reason: 'tenant_waiting', untilMs: now + 500 },
      ],
      [
        new PipelineError(ErrorCode.tenantWaiting, 'budget spent', {
          retriable: false,
          retryAfterMs: 700,
          upstream: 'hubspot',
        }),
        opencx,
        { reason: 'hubspot_budget', untilMs: now + 700 },
      ],
      [
        new PipelineError(ErrorCode.tenantWaiting, 'no slot within 2000 ms', { retriable: false }),
        hubspot,
        { reason: 'hubspot_budget', untilMs: now + 1000 },
      ],
    ];
    for (const [error, context, expected] of cases)
      assert.deepEqual(
        classifyFailure(error, context),
        { kind: 'wait-for-tenant', ...expected },
        error.message,
      );
  });

  it('given a refusal (422), a 401 or a record too large, then the matching dead letter', () => {
    const cases: [PipelineError, FailureContext, string, number][] = [
      [
        new PipelineError(ErrorCode.upstreamRejected, '422', { retriable: false, upstream: 'opencx' }),
        hubspot,
        'opencx_rejected',
        1,
      ],
      [
        new PipelineError(ErrorCode.upstreamRejected, '422', { retriable: false }),
        opencx,
        'opencx_rejected',
        1,
      ],
      [
        new PipelineError(ErrorCode.upstreamUnauthorized, '401', { retriable: false }),
        opencx,
        'opencx_unauthorized',
        1,
      ],
      [
        new PipelineError(ErrorCode.upstreamUnauthorized, '401', { retriable: false, upstream: 'hubspot' }),
        opencx,
        'hubspot_unauthorized',
        1,
      ],
      [
        new PipelineError(ErrorCode.upstreamRejected, '400', { retriable: false, upstream: 'hubspot' }),
        hubspot,
        'hubspot_rejected',
        1,
      ],
      [new PipelineError(ErrorCode.undecodable, 'bad', { retriable: false }), hubspot, 'hubspot_rejected', 1],
      [
        new PipelineError(ErrorCode.recordTooLarge, 'too large', { retriable: false }),
        opencx,
        'record_too_large',
        1,
      ],
      [
        new PipelineError(ErrorCode.recordTooLarge, 'too large', { retriable: true }),
        hubspot,
        'record_too_large',
        8,
      ],
    ];
    for (const [error, context, reason, attempts] of cases)
      assert.deepEqual(
        classifyFailure(error, context),
        { kind: 'dead-letter', reason, error: `PipelineError: ${error.message}`, attempts, ...event },
        `${error.code} ${error.upstream ?? '(unnamed)'}`,
      );
  });
});

describe('classifyDecodeFailure: a record whose bytes did not decode', () => {
  it('given the registry unreachable for a moment, then the same record again later', () => {
    const registryDown = new Error('fetch failed', {
      cause: new Error('connect ECONNREFUSED 127.0.0.1:8081'),
    });
    assert.deepEqual(classifyDecodeFailure(registryDown, 200), {
      kind: 'retry',
      error: 'Error: fetch failed',
      afterMs: 200,
    });
  });

  it('given bytes that are no record of ours, then an undecodable dead letter about no event', () => {
    const error = new PipelineError(ErrorCode.undecodable, 'no magic byte', { retriable: false });
    assert.deepEqual(classifyDecodeFailure(error, 200), {
      kind: 'dead-letter',
      reason: 'undecodable',
      error: 'PipelineError: no magic byte',
      attempts: 1,
      orgId: null,
      eventType: null,
      eventId: null,
    });
  });
});
