import assert from 'node:assert/strict';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import type { CustomerMessage, PipelineEvent } from '../../lib/domain-events.ts';
import { ErrorCode, PipelineError } from '../../lib/errors.ts';
import type { KafkaMessage } from 'kafkajs';
import type { ApplyOutcome } from '../../services/outbound/src/apply-domain-event.ts';
import { createPipelineEventHandler } from '../../services/outbound/src/handle-domain-event.ts';
import { createOutboundMetrics } from '../../services/outbound/src/metrics.ts';
import { OrgId, PortalId } from '../../lib/ids.ts';
import type { OrgLookup } from '../../lib/orgs/index.ts';

const event: CustomerMessage = {
  type: 'customer-message',
  eventId: 'e-1',
  orgId: 'org-1',
  portalId: 42,
  occurredAt: 1_700_000_000_000,
  threadId: 'T1',
  messageId: 'm1',
  text: 'Hi',
  subject: null,
  channelId: '1000',
  channelAccountId: 'ca',
  channelType: 'web',
  senderActorId: 'V-1',
  senderName: null,
  senderDeliveryType: null,
  senderDeliveryValue: null,
};
const record = { key: Buffer.from('k'), value: Buffer.from('v'), offset: '7' } as unknown as KafkaMessage;

const handlerWith = (
  apply: () => Promise<ApplyOutcome>,
  decode = async (): Promise<PipelineEvent> => event,
  lookupById: () => OrgLookup = () => ({ kind: 'unknown' }),
) =>
  createPipelineEventHandler({
    decode,
    apply,
    orgs: { lookupById },
    metrics: createOutboundMetrics(new Registry()),
    logger: pino({ level: 'silent' }),
    retryAttempts: 8,
    transientRetryMs: 1000,
    now: () => 1_000_000,
  });

const about = { orgId: 'org-1', eventType: 'customer-message', eventId: 'e-1' };

describe('outbound: what becomes of a record (the keyed consumer acts on it)', () => {
  it('given an applied event, then done; given a skipped one, then skipped with its reason', async () => {
    assert.deepEqual(await handlerWith(async () => ({ kind: 'applied' }))(record), { kind: 'done' });
    assert.deepEqual(await handlerWith(async () => ({ kind: 'skipped', reason: 'handed_off' }))(record), {
      kind: 'skipped',
      reason: 'handed_off',
    });
  });

  it('regression (soak): given Redis or Kafka unreachable for a moment (ioredis MaxRetriesPerRequestError, a kafkajs connection error, the registry refused), then the same event again later, never a crash that ends in a dead letter', async () => {
    const redisDown = Object.assign(new Error('Reached the max retries per request limit (which is 3).'), {
      name: 'MaxRetriesPerRequestError',
    });
    const brokerDown = Object.assign(new Error('Connection error: connect ECONNREFUSED 127.0.0.1:9092'), {
      name: 'KafkaJSNonRetriableError',
    });
    for (const error of [redisDown, brokerDown]) {
      const outcome = await handlerWith(async () => {
        throw error;
      })(record);
      assert.deepEqual(outcome, { kind: 'retry', error: `${error.name}: ${error.message}`, afterMs: 1000 });
    }
    const registryDown = await handlerWith(
      async () => ({ kind: 'applied' }),
      async () => {
        throw new Error('fetch failed', { cause: new Error('connect ECONNREFUSED 127.0.0.1:8081') });
      },
    )(record);
    assert.equal(registryDown.kind, 'retry');
  });

  it('given a bug (an unclassified error), then it is thrown for the consumer’s crash budget', async () => {
    await assert.rejects(
      handlerWith(async () => {
        throw new TypeError("Cannot read properties of undefined (reading 'id')");
      })(record),
      TypeError,
    );
  });

  it('given an organisation whose record no configured key opens, then a dead letter org_unreadable, and nothing applied', async () => {
    let applied = 0;
    const outcome = await handlerWith(
      async () => {
        applied++;
        return { kind: 'skipped', reason: 'unknown_org' };
      },
      async () => event,
      () => ({
        kind: 'unreadable',
        orgId: OrgId('org-1'),
        portalId: PortalId(42),
        detail: 'opencx.apiKey does not open; set SECRETS_KEY_PREVIOUS',
      }),
    )(record);
    assert.deepEqual(outcome, {
      kind: 'dead-letter',
      reason: 'org_unreadable',
      error: 'opencx.apiKey does not open; set SECRETS_KEY_PREVIOUS',
      attempts: 1,
      ...about,
    });
    assert.equal(applied, 0);
  });

  it('given a record that does not decode, then a dead letter undecodable', async () => {
    const outcome = await handlerWith(
      async () => ({ kind: 'applied' }),
      async () => {
        throw new PipelineError(ErrorCode.undecodable, 'no magic byte', { retriable: false });
      },
    )(record);
    assert.equal(outcome.kind === 'dead-letter' && outcome.reason, 'undecodable');
  });

  it('given a malformed event (a date OpenCX cannot take), then a dead letter malformed_event naming the event', async () => {
    const outcome = await handlerWith(async () => ({
      kind: 'malformed',
      detail: 'occurredAt 9e15 is not a date',
    }))(record);
    assert.deepEqual(outcome, {
      kind: 'dead-letter',
      reason: 'malformed_event',
      error: 'occurredAt 9e15 is not a date',
      attempts: 1,
      ...about,
    });
  });

  it('given Kafka unavailable or a claim held elsewhere, then the same record again later (not a dead letter)', async () => {
    for (const code of [ErrorCode.kafkaUnavailable, ErrorCode.dedupInFlight]) {
      const outcome = await handlerWith(async () => {
        throw new PipelineError(code, 'transient', { retriable: true });
      })(record);
      assert.deepEqual(outcome, { kind: 'retry', error: 'PipelineError: transient', afterMs: 1000 });
    }
  });

  it('given OpenCX or HubSpot failing through the in-memory retries (5xx, 429) or the organisation waited for, then the organisation is waited for: never a dead letter', async () => {
    const cases: [PipelineError, { reason: string; untilMs?: number }][] = [
      [
        new PipelineError(ErrorCode.upstreamUnavailable, '503', { retriable: true }),
        { reason: 'opencx_unavailable' },
      ],
      [
        new PipelineError(ErrorCode.upstreamRateLimited, '429', { retriable: true, retryAfterMs: 3000 }),
        { reason: 'opencx_rate_limited', untilMs: 1_000_000 + 3000 },
      ],
      [
        new PipelineError(ErrorCode.upstreamUnavailable, '502', { retriable: true, upstream: 'hubspot' }),
        { reason: 'hubspot_unavailable' },
      ],
      [
        new PipelineError(ErrorCode.tenantWaiting, 'waited for', {
          retriable: false,
          retryAfterMs: 500,
          upstream: 'opencx',
        }),
        { reason: 'tenant_waiting', untilMs: 1_000_000 + 500 },
      ],
      [
        new PipelineError(ErrorCode.tenantWaiting, 'budget spent', {
          retriable: false,
          retryAfterMs: 700,
          upstream: 'hubspot',
        }),
        { reason: 'hubspot_budget', untilMs: 1_000_000 + 700 },
      ],
    ];
    for (const [error, expected] of cases) {
      const outcome = await handlerWith(async () => {
        throw error;
      })(record);
      assert.deepEqual(outcome, { kind: 'wait-for-tenant', ...expected }, error.message);
    }
  });

  it('given OpenCX refusing (422), 401 or a record too large, then the matching dead letter', async () => {
    const cases: [PipelineError, string, number][] = [
      [
        new PipelineError(ErrorCode.upstreamRejected, '422', { retriable: false, upstream: 'opencx' }),
        'opencx_rejected',
        1,
      ],
      [
        new PipelineError(ErrorCode.upstreamUnauthorized, '401', { retriable: false, upstream: 'opencx' }),
        'opencx_unauthorized',
        1,
      ],
      [new PipelineError(ErrorCode.recordTooLarge, 'too large', { retriable: false }), 'record_too_large', 1],
    ];
    for (const [error, reason, attempts] of cases) {
      const outcome = await handlerWith(async () => {
        throw error;
      })(record);
      assert.deepEqual(outcome, { kind: 'dead-letter', reason, error: error.message, attempts, ...about });
    }
  });

  it('given an unclassified error (a bug), then it is thrown for the consumer’s crash budget', async () => {
    await assert.rejects(
      handlerWith(async () => {
        throw new TypeError('x is undefined');
      })(record),
      TypeError,
    );
  });
});
