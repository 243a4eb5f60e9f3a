/**
 * Every metric the Grafana dashboard or an alert names moves when the pipeline does its work.
 * A metric that is declared and plotted but never counted (as outbound_sessions_created_total
 * was) shows a flat line that reads as "nothing happened", and an alert on it never fires;
 * test/unit/infra-artefacts.unit.spec.ts only checks that the names are declared.
 *
 * The whole pipeline runs in this process (startTestPipeline: real broker, registry and Redis,
 * fake HubSpot and OpenCX) and is driven through what makes each metric move: messages, a
 * ticket change held for its link, a note, a handoff, skips, HubSpot and OpenCX answering 503,
 * a revoked HubSpot token, an OpenCX key refused, a portal over its HubSpot budget, an
 * organisation OpenCX keeps failing, a dedup claim held by "another replica", a record sealed
 * with another key, a bad signature and an unknown portal. Every service's /metrics is scraped
 * all along (gauges are read at scrape time, so one that is set only for a while is caught).
 */
import { createTestRedis } from '../support/redis.ts';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { startConsole } from '../../services/console/src/main.ts';
import { loadConsoleConfig } from '../../services/console/src/config.ts';
import { createLogger } from '../../lib/log.ts';
import type { Redis } from '../../lib/redis.ts';
import * as fixtures from '../fakes/hubspot-fixtures.ts';
import {
  registerTestOrg,
  startTestPipeline,
  waitFor,
  type TestOrg,
  type TestPipeline,
} from '../support/pipeline.ts';
import { seriesNamedByArtefacts } from '../support/promql-references.ts';

/** Named by the alerts, exported by kafka-exporter (the consumer-lag alert says so), not by the services. */
const NOT_OURS: Readonly<Record<string, string>> = {
  kafka_consumergroup_lag: 'kafka-exporter: the services do not export their own consumer lag',
};

/**
 * Named metrics this test lets stay still, each because only a fault it cannot cheaply cause
 * in-process moves it. Keep it short: every other named metric must move.
 */
const MAY_STAY_STILL: Readonly<Record<string, string>> = {
  processor_handler_failures_total:
    'counts handler throws the processor cannot classify, i.e. a bug: every answer the fakes can give ' +
    '(4xx, 5xx, 429, timeouts, bodies that are not JSON or not the schema) is classified. The consumer ' +
    'side (crash budget, then a handler_crashed dead letter) is tested with a throwing handler in ' +
    'keyed-consumer.int.spec.ts',
  outbound_handler_failures_total: 'the same for outbound',
};

type MetricType = 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped';

/**
 * Scrapes the services' /metrics every 100 ms until stopped. A metric has moved once a counter
 * was above 0, a histogram or summary counted an observation, or a gauge was not 0 in any scrape.
 */
const watchMetrics = (endpoints: () => readonly string[]) => {
  const types = new Map<string, MetricType>();
  const moved = new Set<string>();
  const scrapeOnce = async (): Promise<void> => {
    for (const url of endpoints()) {
      const text = await (await fetch(url)).text();
      for (const line of text.split('\n')) {
        const type = /^# TYPE (\S+) (\S+)$/.exec(line);
        if (type) {
          types.set(type[1]!, type[2] as MetricType);
          continue;
        }
        if (line === '' || line.startsWith('#')) continue;
        const sample = /^([a-zA-Z_:][\w:]*)(?:\{.*\})?\s+(\S+)$/.exec(line);
        if (!sample) continue;
        const [, series = '', value = ''] = sample;
        const base = series.replace(/_(bucket|sum|count)$/, '');
        const baseType = types.get(base);
        if ((baseType === 'histogram' || baseType === 'summary') && series === `${base}_count`) {
          if (Number(value) > 0) moved.add(base);
        } else if (types.get(series) === 'counter') {
          if (Number(value) > 0) moved.add(series);
        } else if (types.get(series) === 'gauge') {
          if (Number(value) !== 0) moved.add(series);
        }
      }
    }
  };
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      await scrapeOnce().catch(() => undefined);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  })();
  return {
    types,
    moved,
    scrapeOnce,
    /** The metric a series name stands for: `x` for `x_bucket`, `x_sum` and `x_count` of a histogram. */
    metricOf: (series: string): string => {
      const base = series.replace(/_(bucket|sum|count)$/, '');
      const type = types.get(base);
      return base !== series && (type === 'histogram' || type === 'summary') ? base : series;
    },
    waitUntilMoved: (name: string, timeoutMs = 30000) =>
      waitFor(`${name} to move`, () => moved.has(name), timeoutMs),
    stop: async (): Promise<void> => {
      stopped = true;
      await loop;
    },
  };
};

describe('every metric a dashboard panel or an alert names moves (real Kafka, fake HubSpot and OpenCX)', function () {
  this.timeout(180000);
  let pipeline: TestPipeline | undefined;
  let redis: Redis | undefined;
  let watch: ReturnType<typeof watchMetrics> | undefined;
  after(async () => {
    await watch?.stop();
    redis?.disconnect();
    await pipeline?.stop();
  });

  it('given the pipeline driven through messages, tickets, notes, a handoff, skips, dead letters and waits, then every named metric moved (the allow-list aside)', async () => {
    const named = seriesNamedByArtefacts(new URL('../../', import.meta.url));
    const p = await startTestPipeline({
      outbound: false,
      env: {
        // Low enough that one burst of 15 new conversations spends a portal's budget.
        HUBSPOT_RATE_LIMIT_MAX: '10',
        HUBSPOT_RATE_LIMIT_WINDOW_MS: '3000',
        PARK_AFTER_MS: '300',
        PARK_PROBE_INITIAL_MS: '500',
        PARK_PROBE_MAX_MS: '1000',
        OPENCX_RETRY_ATTEMPTS: '3',
      },
    });
    pipeline = p;
    const outbound = await p.startOutbound();
    const w = watchMetrics(() => [
      `${p.ingestUrl}/metrics`,
      `${p.consoleUrl}/metrics`,
      ...p.processors.map((running) => `http://127.0.0.1:${running.metricsPort}/metrics`),
      `http://127.0.0.1:${outbound.metricsPort}/metrics`,
    ]);
    watch = w;
    redis = createTestRedis();
    const dedupRedis = redis;

    const sentTexts = (): string[] =>
      p.opencx.effects
        .filter((effect) => effect.kind === 'message-sent')
        .map((effect) => (effect.body as { message: { text: string } }).message.text);
    /** A new thread of `org` in the fake HubSpot (with its ticket, when given). */
    const newThread = (org: TestOrg, ticketId?: string): string => {
      const threadId = fixtures.newThreadId();
      p.hubspot.setThread(
        fixtures.thread({
          id: threadId,
          ...(ticketId ? { threadAssociations: { associatedTicketId: ticketId } } : {}),
        }),
        { portalId: org.portalId },
      );
      return threadId;
    };
    /** A message on the thread in the fake HubSpot, and its webhook. */
    const say = (org: TestOrg, threadId: string, spec: fixtures.MessageSpec) => {
      const message = fixtures.message({ threadId, ...spec });
      p.hubspot.addMessage(message, { portalId: org.portalId });
      return { message, event: fixtures.webhookEventFor(message, { portalId: org.portalId }) };
    };
    const post = async (events: readonly object[]): Promise<void> => {
      const response = await p.postBatch(events);
      assert.equal(response.status, 200, await response.text());
    };

    // One organisation's conversation through every domain event type.
    const main = async (): Promise<void> => {
      const org = await p.createOrg();
      const ticketId = String(1_700_000_000 + Math.floor(Math.random() * 100_000_000));
      const threadId = newThread(org, ticketId);
      const change = (property: string, value: string) =>
        fixtures.ticketPropertyChangeEvent({
          portalId: org.portalId,
          objectId: Number(ticketId),
          propertyName: property,
          propertyValue: value,
        });
      // A ticket change before its conversation's first message: held until the link is known.
      await post([change('hs_ticket_priority', 'HIGH')]);
      await w.waitUntilMoved('outbound_held_tickets');

      // The first message: HubSpot and OpenCX each answer 503 once (retried), a session is
      // created, the ticket looked up and linked, the held change released, the AI answer posted.
      const first = say(org, threadId, { kind: 'customer-chat', text: 'Where is my parcel?' });
      p.hubspot.failNext({ pathPattern: new RegExp(`/messages/${first.message.id}$`), status: 503 });
      p.opencx.failNext({ pathPattern: /\/send$/, status: 503 });
      await post([first.event]);
      await waitFor('the AI answer in HubSpot', () =>
        p.hubspot.posted.some((entry) => entry.threadId === threadId),
      );
      const sessionId = await waitFor(
        'the held change on the session',
        () =>
          [...p.opencx.sessions.values()].find((session) => session.customData.hs_ticket_priority === 'HIGH')
            ?.id,
      );

      // A note, an empty value (skipped by the processor) and a change after it in the ticket's
      // order, an agent's reply, a handoff.
      const note = fixtures.note({ ticketId, properties: { hs_note_body: '<p>Refund approved</p>' } });
      p.hubspot.addNote(note, { portalId: org.portalId });
      await post([
        fixtures.noteCreationEvent({ portalId: org.portalId, objectId: Number(note.id) }),
        change('subject', ''),
        change('hs_pipeline_stage', 'after-the-empty-value'),
        say(org, threadId, { kind: 'agent-reply', text: 'Refund on its way.' }).event,
        fixtures.propertyChangeEvent({
          portalId: org.portalId,
          objectId: Number(threadId),
          propertyValue: 'A-2620022',
        }),
      ]);
      await waitFor('the note, the change after the empty value and the handoff at OpenCX', () => {
        const kinds = new Set(
          p.opencx.effects.filter((effect) => effect.sessionId === sessionId).map((effect) => effect.kind),
        );
        return (
          kinds.has('agent-comment') &&
          kinds.has('handoff') &&
          p.opencx.sessions.get(sessionId)?.customData.hs_pipeline_stage === 'after-the-empty-value'
        );
      });

      // An agent's reply on a thread with no session (outbound has nothing to apply it to), then
      // the customer's first message on it: once that is at OpenCX, the reply had its turn.
      const quiet = newThread(org);
      await post([
        say(org, quiet, { kind: 'agent-reply', text: 'Hello?' }).event,
        say(org, quiet, { kind: 'customer-chat', text: 'After the reply with no session' }).event,
      ]);
      await waitFor('the message after the reply with no session', () =>
        sentTexts().includes('After the reply with no session'),
      );

      // A message whose dedup key another replica holds: tried again later, once the claim is gone.
      const held = say(org, newThread(org), { kind: 'customer-chat', text: 'Claimed elsewhere' });
      const dedupKey = `${p.env.REDIS_KEY_PREFIX ?? ''}dedup:${org.orgId}:message:${held.message.id}`;
      await dedupRedis.set(dedupKey, 'claim:another-replica', 'PX', 60000);
      await post([held.event]);
      await w.waitUntilMoved('processor_transient_retries_total');
      await dedupRedis.del(dedupKey);
      await waitFor('the claimed message at OpenCX once free', () =>
        sentTexts().includes('Claimed elsewhere'),
      );
    };

    // A portal over its HubSpot budget: calls throttled, the portal waited for, then all flow.
    const busyPortal = async (): Promise<void> => {
      const org = await p.createOrg();
      await post(
        Array.from(
          { length: 15 },
          (_, index) => say(org, newThread(org), { kind: 'customer-chat', text: `busy ${index}` }).event,
        ),
      );
      await w.waitUntilMoved('processor_hubspot_throttled_total');
      await w.waitUntilMoved('processor_tenants_waiting');
    };

    // HubSpot refuses the organisation's token: reconnect required, the event dead-lettered.
    const revokedToken = async (): Promise<void> => {
      const org = await p.createOrg();
      p.hubspot.revokeToken(org.accessToken);
      await post([say(org, newThread(org), { kind: 'customer-chat', text: 'Revoked' }).event]);
      await w.waitUntilMoved('processor_hubspot_reconnect_required_total');
      await w.waitUntilMoved('processor_dead_letters_total');
    };

    // OpenCX down for one organisation past the retries: it is waited for, then flows again.
    const openCxDown = async (): Promise<void> => {
      const org = await p.createOrg();
      p.opencx.failApiKeyUntil(org.apiKey, Number.MAX_SAFE_INTEGER);
      await post([say(org, newThread(org), { kind: 'customer-chat', text: 'While OpenCX is down' }).event]);
      await w.waitUntilMoved('outbound_tenants_waiting');
      p.opencx.failApiKeyUntil(org.apiKey, Date.now());
      await waitFor('the message once OpenCX is back', () => sentTexts().includes('While OpenCX is down'));
    };

    // OpenCX refuses one organisation's key (401): its event is dead-lettered.
    const openCxRefuses = async (): Promise<void> => {
      const org = await p.createOrg();
      p.opencx.failApiKeyUntil(org.apiKey, Number.MAX_SAFE_INTEGER, 401);
      await post([say(org, newThread(org), { kind: 'customer-chat', text: 'Refused key' }).event]);
      await w.waitUntilMoved('outbound_dead_letters_total');
    };

    // An organisation written by a deployment with another SECRETS_KEY: unreadable here.
    const sealedElsewhere = async (): Promise<void> => {
      const elsewhere = await startConsole(
        loadConsoleConfig({ ...p.env, SECRETS_KEY: randomBytes(32).toString('base64') }),
        createLogger('console-elsewhere', 'silent'),
      );
      try {
        await registerTestOrg(`http://127.0.0.1:${elsewhere.port}`, p.hubspot, {
          orgId: `org-elsewhere-${randomBytes(3).toString('hex')}`,
          portalId: 29_000_000 + Math.floor(Math.random() * 900_000),
        });
        await w.waitUntilMoved('orgs_unreadable');
      } finally {
        await elsewhere.stop();
      }
    };

    // Ingest: a batch signed with the wrong secret (rejected), an event of an unknown portal (unrouted).
    const ingestEdges = async (): Promise<void> => {
      const unsigned = await p.postBatch([fixtures.webhookEvent()], { secret: 'not-the-client-secret' });
      assert.equal(unsigned.status, 401);
      await post([fixtures.webhookEvent({ portalId: 1 })]);
    };

    await Promise.all([
      main(),
      busyPortal(),
      revokedToken(),
      openCxDown(),
      openCxRefuses(),
      sealedElsewhere(),
      ingestEdges(),
    ]);

    // Last, so its HubSpot calls touch no scenario above: a replica with the reconciler on (the
    // others have it off) finds a message whose webhook never came, and writes it to the raw topic.
    const org = await p.createOrg();
    const lost = say(org, newThread(org), { kind: 'customer-chat', text: 'Hello? (its webhook was lost)' });
    await p.startProcessor({
      RECONCILE_INTERVAL_MS: '1000',
      RECONCILE_SETTLE_MS: '0',
      HUBSPOT_RATE_LIMIT_MAX: '1000',
    });
    for (const name of [
      'processor_reconcile_runs_total',
      'processor_reconcile_gaps_found_total',
      'processor_reconcile_runs_with_gaps_in_a_row',
      'processor_reconcile_watermark_age_seconds',
    ])
      await w.waitUntilMoved(name);
    await waitFor('the lost message at OpenCX', () => sentTexts().includes(lost.message.text ?? ''));

    await w.stop();
    await w.scrapeOnce();

    const problems: string[] = [];
    for (const [series, where] of named) {
      if (series in NOT_OURS) continue;
      const metric = w.metricOf(series);
      if (!w.types.has(metric)) problems.push(`${metric} (${where.join('; ')}): no service exposes it`);
      else if (!w.moved.has(metric) && !(metric in MAY_STAY_STILL))
        problems.push(`${metric} (${where.join('; ')}): never moved`);
    }
    for (const metric of [...Object.keys(NOT_OURS), ...Object.keys(MAY_STAY_STILL)]) {
      if (![...named.keys()].some((series) => series === metric || w.metricOf(series) === metric))
        problems.push(`${metric} is listed here but no panel or alert names it: drop it from the list`);
    }
    assert.deepEqual(problems, []);
  });
});
