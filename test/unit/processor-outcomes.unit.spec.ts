import assert from 'node:assert/strict';
import { ConfluentSchemaRegistryValidationError } from '@kafkajs/confluent-schema-registry/dist/errors.js';
import type { KafkaMessage } from 'kafkajs';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import type { RawWebhookEvent } from '../../lib/contracts/index.ts';
import type { DedupStore } from '../../lib/dedup-store.ts';
import { ErrorCode, PipelineError } from '../../lib/errors.ts';
import type { HubSpotApi } from '../../lib/hubspot/index.ts';
import { OrgId, PortalId } from '../../lib/ids.ts';
import type { OrgLookup } from '../../lib/orgs/index.ts';
import {
  createRawEventHandler,
  type RawEventHandlerDeps,
} from '../../services/processor/src/handle-raw-event.ts';
import { createProcessorMetrics } from '../../services/processor/src/metrics.ts';
import * as fixtures from '../fakes/hubspot-fixtures.ts';
import { testOrg } from '../support/fixtures.ts';

const org = testOrg();

const message = fixtures.message({ kind: 'customer-chat', text: 'Where is my order?' });
const raw: RawWebhookEvent = {
  receivedAt: 1_700_000_000_000,
  route: 'OAUTH_APP',
  orgId: 'org-1',
  portalId: 42,
  subscriptionType: 'conversation.newMessage',
  event: JSON.stringify(fixtures.webhookEventFor(message, { portalId: 42 })),
};
const record = {
  key: Buffer.from('org-1'),
  value: Buffer.from('raw'),
  offset: '3',
} as unknown as KafkaMessage;

/** The handler with stand-ins for its adapters; `publish` and `dedup` are what each test varies. */
const handlerWith = (options: {
  publish?: () => Promise<void>;
  dedup?: Partial<DedupStore>;
  lookup?: () => OrgLookup;
  getMessage?: () => Promise<unknown>;
  raw?: RawWebhookEvent;
  links?: RawEventHandlerDeps['links'];
}) => {
  const released: string[] = [];
  const dedup: DedupStore = {
    claim: async () => 'claimed',
    confirm: async () => undefined,
    release: async (key) => void released.push(key),
    renew: async () => true,
    ...options.dedup,
  };
  const handle = createRawEventHandler({
    decodeRaw: async () => options.raw ?? raw,
    orgs: {
      lookupById: options.lookup ?? (() => ({ kind: 'org', org })),
      lookupByPortal: options.lookup ?? (() => ({ kind: 'org', org })),
    },
    propertyClock: { lastApplied: async () => undefined, advance: async () => undefined },
    links: options.links ?? {
      forThread: () => undefined,
      forTicket: () => undefined,
      catchUp: async () => true,
    },
    dedup,
    hubspotFor: () => ({ getMessage: options.getMessage ?? (async () => message) }) as unknown as HubSpotApi,
    publish: options.publish ?? (async () => undefined),
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
  return { handle, released };
};

describe('processor: what becomes of a raw event (the keyed consumer acts on it)', () => {
  it('given a customer message that is emitted, then done', async () => {
    assert.deepEqual(await handlerWith({}).handle(record), { kind: 'done' });
  });

  it('given an organisation whose record no configured key opens, then an org_unreadable dead letter (never unknown_portal), and nothing claimed', async () => {
    let claimed = 0;
    const { handle } = handlerWith({
      lookup: () => ({
        kind: 'unreadable',
        orgId: OrgId('org-1'),
        portalId: PortalId(42),
        detail: 'opencx.apiKey does not open; set SECRETS_KEY_PREVIOUS',
      }),
      dedup: {
        claim: async () => {
          claimed++;
          return 'claimed';
        },
      },
    });
    const outcome = await handle(record);
    assert.deepEqual(outcome.kind === 'dead-letter' && [outcome.reason, outcome.orgId, outcome.error], [
      'org_unreadable',
      'org-1',
      'opencx.apiKey does not open; set SECRETS_KEY_PREVIOUS',
    ]);
    assert.equal(claimed, 0);
  });

  it('given a domain event Avro cannot encode (occurredAt 1.5), then a malformed_event dead letter, and the claim released', async () => {
    const { handle, released } = handlerWith({
      publish: async () => {
        throw new ConfluentSchemaRegistryValidationError(new Error('invalid "long": 1.5'), [['occurredAt']]);
      },
    });
    const outcome = await handle(record);
    assert.equal(outcome.kind, 'dead-letter');
    assert.equal(outcome.kind === 'dead-letter' && outcome.reason, 'malformed_event');
    assert.match(outcome.kind === 'dead-letter' ? outcome.error : '', /invalid "long": 1\.5/);
    assert.equal(released.length, 1);
  });

  it('given a domain event over the record limit, then a record_too_large dead letter', async () => {
    const { handle } = handlerWith({
      publish: async () => {
        throw new PipelineError(ErrorCode.recordTooLarge, 'too large', { retriable: false });
      },
    });
    const outcome = await handle(record);
    assert.deepEqual(outcome.kind === 'dead-letter' && [outcome.reason, outcome.orgId, outcome.eventType], [
      'record_too_large',
      'org-1',
      'conversation.newMessage',
    ]);
  });

  it('given the portal’s HubSpot budget spent past the grace, or HubSpot’s own 429, then the portal is waited for (never a dead letter), and the claim released', async () => {
    const cases: [PipelineError, { reason: string; untilMs?: number }][] = [
      [
        new PipelineError(ErrorCode.tenantWaiting, 'no slot within 2000 ms', {
          retriable: false,
          retryAfterMs: 4000,
          upstream: 'hubspot',
        }),
        { reason: 'hubspot_budget', untilMs: 1_700_000_000_000 + 4000 },
      ],
      [
        new PipelineError(ErrorCode.upstreamRateLimited, 'HubSpot rate limit', {
          retriable: true,
          retryAfterMs: 10_000,
          upstream: 'hubspot',
        }),
        // HubSpot's own 429 is not retried in memory: the portal's budget is spent until then.
        { reason: 'hubspot_budget', untilMs: 1_700_000_000_000 + 10_000 },
      ],
    ];
    for (const [error, expected] of cases) {
      const { handle, released } = handlerWith({
        getMessage: async () => {
          throw error;
        },
      });
      assert.deepEqual(await handle(record), { kind: 'wait-for-tenant', ...expected }, error.message);
      assert.deepEqual(released, ['org-1:message:' + JSON.parse(raw.event).messageId], 'claim released');
    }
  });

  /** A ticket.propertyChange of ticket 777 on portal 42 (the soak's links-lag regressions). */
  const ticketChangeRaw: RawWebhookEvent = {
    ...raw,
    subscriptionType: 'ticket.propertyChange',
    event: JSON.stringify(
      fixtures.ticketPropertyChangeEvent({ portalId: 42, objectId: 777, propertyName: 'hs_pipeline_stage' }),
    ),
  };

  it('given a ticket change whose session link is not known (not in the links, nor after a catch-up), then it is emitted all the same: outbound holds it until the link is', async () => {
    const published: unknown[] = [];
    let asked = 0;
    const { handle } = handlerWith({
      raw: ticketChangeRaw,
      links: {
        forThread: () => undefined,
        forTicket: () => (asked++, undefined),
        catchUp: async () => false,
      },
      publish: async (events?: unknown) => void published.push(events),
    });
    assert.deepEqual(await handle(record), { kind: 'done' });
    assert.equal(published.length, 1, 'the ticket change is emitted');
    assert.equal(asked, 0, 'the processor does not consult the links for a ticket change');
  });

  it('given Kafka unavailable, Redis failing the claim or the confirm, then the same event again later', async () => {
    const cases = [
      handlerWith({
        publish: async () => {
          throw new PipelineError(ErrorCode.kafkaUnavailable, 'down', { retriable: true });
        },
      }),
      handlerWith({
        dedup: {
          claim: async () => {
            throw new Error('Connection is closed.');
          },
        },
      }),
      handlerWith({
        dedup: {
          confirm: async () => {
            throw new Error('Connection is closed.');
          },
        },
      }),
    ];
    for (const { handle } of cases) {
      const outcome = await handle(record);
      assert.equal(outcome.kind, 'retry');
      assert.equal(outcome.kind === 'retry' && outcome.afterMs, 1000);
    }
  });

  it('given an unclassified error (a bug), then it is thrown for the consumer’s crash budget', async () => {
    const { handle } = handlerWith({
      publish: async () => {
        throw new TypeError('x is undefined');
      },
    });
    await assert.rejects(handle(record), TypeError);
  });
});
