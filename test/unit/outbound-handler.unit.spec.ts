import assert from 'node:assert/strict';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import type { PipelineEvent } from '../../lib/domain-events.ts';
import { customerMessage } from '../support/fixtures.ts';
import { ErrorCode, PipelineError } from '../../lib/errors.ts';
import type { KafkaMessage } from 'kafkajs';
import type { HandlerOutcome } from '../../lib/kafka/index.ts';
import type { ApplyOutcome } from '../../services/outbound/src/apply-domain-event.ts';
import { createPipelineEventHandler } from '../../services/outbound/src/handle-domain-event.ts';
import { createOutboundMetrics } from '../../services/outbound/src/metrics.ts';
import { OrgId, PortalId } from '../../lib/ids.ts';
import type { OrgLookup } from '../../lib/orgs/index.ts';

const event = customerMessage();
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

  it('given the registry unreachable for a moment while decoding, then the same event again later', async () => {
    const registryDown = await handlerWith(
      async () => ({ kind: 'applied' }),
      async () => {
        throw new Error('fetch failed', { cause: new Error('connect ECONNREFUSED 127.0.0.1:8081') });
      },
    )(record);
    assert.equal(registryDown.kind, 'retry');
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

  it('given a failing apply, then the outcome classifyFailure gives it, about the event (OpenCX when the error names no upstream)', async () => {
    const cases: [PipelineError, HandlerOutcome][] = [
      [
        new PipelineError(ErrorCode.upstreamUnavailable, '503', { retriable: true }),
        { kind: 'wait-for-tenant', reason: 'opencx_unavailable' },
      ],
      [
        new PipelineError(ErrorCode.upstreamUnauthorized, '401', { retriable: false }),
        {
          kind: 'dead-letter',
          reason: 'opencx_unauthorized',
          error: 'PipelineError: 401',
          attempts: 1,
          ...about,
        },
      ],
    ];
    for (const [error, expected] of cases) {
      const outcome = await handlerWith(async () => {
        throw error;
      })(record);
      assert.deepEqual(outcome, expected, error.message);
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
