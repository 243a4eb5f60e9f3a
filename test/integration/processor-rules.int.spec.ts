import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import * as fixtures from '../fakes/hubspot-fixtures.ts';
import {
  ADMIN_TOKEN,
  sleep,
  startTestPipeline,
  waitFor,
  type TestOrg,
  type TestPipeline,
} from '../support/pipeline.ts';
import { kill, spawnService } from '../support/processes.ts';
import { keysCoveringPartitions, waitForGroupAssigned } from '../support/consumer-group.ts';
import { Kafka, logLevel } from 'kafkajs';

const sentTexts = (pipeline: TestPipeline): string[] =>
  pipeline.opencx.effects
    .filter((effect) => effect.kind === 'message-sent')
    .map((effect) => (effect.body as { message: { text: string } }).message.text);

/** Adds a customer message to the fake HubSpot and returns its webhook event. */
const customerMessage = (pipeline: TestPipeline, org: TestOrg, spec: fixtures.MessageSpec = {}) => {
  const message = fixtures.message({ kind: 'customer-chat', ...spec });
  pipeline.hubspot.addMessage(message, { portalId: org.portalId });
  return { message, event: fixtures.webhookEventFor(message, { portalId: org.portalId }) };
};

describe('processor on real Kafka and Redis: dedup, email delay, rate limits, poison events', function () {
  this.timeout(120000);

  describe('duplicates across batches and replicas', () => {
    let pipeline: TestPipeline;
    before(async () => {
      pipeline = await startTestPipeline({ processor: false });
      await pipeline.startProcessor();
      await pipeline.startProcessor();
      // Regression (1 of 5 CI runs): sending while the second replica was still joining, or to
      // orgs that all hashed onto one replica's partitions, left the other replica idle.
      const kafka = new Kafka({
        brokers: pipeline.env.KAFKA_BROKERS?.split(',') ?? [],
        logLevel: logLevel.NOTHING,
      });
      await waitForGroupAssigned(kafka, `${pipeline.env.KAFKA_TOPIC_PREFIX}processor`, 2);
    });
    after(async () => pipeline?.stop());

    it('given each message delivered three times in separate batches (retries included) to two replicas, then OpenCX gets each once', async () => {
      // Raw records are keyed by org id: these ids cover all 3 partitions, so both replicas get work.
      const orgIds = keysCoveringPartitions(`org-${pipeline.runId}-`, 6, 3);
      const orgs = await Promise.all(
        orgIds.map((orgId, index) => pipeline.createOrg({ orgId, portalId: 7_000_000 + index })),
      );
      const messages = orgs.flatMap((org) =>
        Array.from({ length: 3 }, (_, index) =>
          customerMessage(pipeline, org, { text: `hello ${org.orgId} #${index}` }),
        ),
      );
      for (let attempt = 0; attempt < 3; attempt++) {
        const response = await pipeline.postBatch(
          messages.map(({ event }) => ({ ...event, attemptNumber: attempt })),
        );
        assert.equal(response.status, 200);
      }
      await waitFor('all 18 messages at OpenCX', () => sentTexts(pipeline).length >= 18, 60000);
      // All 54 deliveries accounted for (18 emitted + 36 duplicates): nothing more can reach OpenCX,
      // so the counts below are final without sleeping.
      await waitFor(
        'every delivery to be handled',
        async () =>
          (await pipeline.counter('processor', 'processor_ignored_total', { reason: 'duplicate' })) +
            (await pipeline.counter('processor', 'processor_events_total', { outcome: 'emitted' })) >=
          54,
        30000,
      );
      assert.equal(
        await pipeline.counter('processor', 'processor_events_total', { outcome: 'emitted' }),
        18,
        'each message emitted once',
      );
      const texts = sentTexts(pipeline);
      assert.equal(texts.length, 18, 'each message applied exactly once');
      assert.equal(new Set(texts).size, 18);
      const perReplica = await Promise.all(
        pipeline.processors.map(async (processor) =>
          fetch(`http://127.0.0.1:${processor.metricsPort}/metrics`).then((response) => response.text()),
        ),
      );
      assert.ok(
        perReplica.every((text) => /processor_events_total\{[^}]*\} [1-9]/.test(text)),
        'both replicas handled events',
      );
    });
  });

  describe('email delay', () => {
    let pipeline: TestPipeline;
    let org: TestOrg;
    const children: ChildProcess[] = [];
    before(async () => {
      pipeline = await startTestPipeline({ processor: false, env: { EMAIL_DELAY_MS: '4000' } });
      org = await pipeline.createOrg();
    });
    after(async () => {
      await Promise.all(children.map(kill));
      await pipeline?.stop();
    });

    it('given an email then a chat message on the same org, when processed, then the chat is not held behind the email delay', async () => {
      await pipeline.startProcessor();
      const email = customerMessage(pipeline, org, { kind: 'customer-email', text: 'An email that waits' });
      const chat = customerMessage(pipeline, org, { text: 'A chat that does not wait' });
      const posted = Date.now();
      assert.equal((await pipeline.postBatch([email.event])).status, 200);
      assert.equal((await pipeline.postBatch([chat.event])).status, 200);

      await waitFor(
        'the chat message at OpenCX',
        () => sentTexts(pipeline).includes('A chat that does not wait'),
        10000,
      );
      // Order, not a stopwatch: held behind the email, the chat could only arrive after it.
      assert.ok(!sentTexts(pipeline).includes('An email that waits'), 'the email is still held');
      await waitFor('the email at OpenCX', () => sentTexts(pipeline).includes('An email that waits'), 15000);
      assert.ok(Date.now() - posted >= 4000, 'the email waited EMAIL_DELAY_MS');
      await pipeline.stopProcessor();
    });

    it('given a processor killed during an email delay, when another starts, then the email arrives once, after the delay', async () => {
      const first = await spawnService('processor', pipeline.env);
      children.push(first);
      const email = customerMessage(pipeline, org, {
        kind: 'customer-email',
        text: 'Email across a restart',
      });
      const posted = Date.now();
      assert.equal((await pipeline.postBatch([email.event])).status, 200);
      await waitFor(
        'the re-fetch of the email',
        () => pipeline.hubspot.requests.some((request) => request.path.endsWith(email.message.id)),
        10000,
      );
      await sleep(1000);
      await kill(first);
      assert.ok(!sentTexts(pipeline).includes('Email across a restart'));

      children.push(await spawnService('processor', pipeline.env));
      await waitFor(
        'the email at OpenCX after the restart',
        () => sentTexts(pipeline).includes('Email across a restart'),
        60000,
      );
      assert.ok(Date.now() - posted >= 4000);
      // A marker on the same thread comes after any second copy of the email in both services'
      // per-conversation order: once it is at OpenCX, the count below is final.
      const marker = customerMessage(pipeline, org, {
        kind: 'customer-email',
        threadId: email.message.conversationsThreadId,
        text: 'Marker after the email',
      });
      assert.equal((await pipeline.postBatch([marker.event])).status, 200);
      await waitFor(
        'the marker at OpenCX',
        () => sentTexts(pipeline).includes('Marker after the email'),
        60000,
      );
      assert.equal(sentTexts(pipeline).filter((text) => text === 'Email across a restart').length, 1);
    });
  });

  describe('rate limits, poison events, reconnects and unroutable events', () => {
    let pipeline: TestPipeline;
    before(async () => {
      pipeline = await startTestPipeline({ env: { HUBSPOT_RETRY_INITIAL_MS: '200' } });
    });
    after(async () => pipeline?.stop());

    it('given portal A at its HubSpot rate limit, when portal B sends a message, then B is not delayed and A catches up', async () => {
      const orgA = await pipeline.createOrg({ portalId: 8_100_001 });
      const orgB = await pipeline.createOrg({ portalId: 8_100_002 });
      pipeline.hubspot.setRateLimit(orgA.portalId, { max: 2, intervalMs: 4000 });
      const burst = Array.from({ length: 6 }, (_, index) =>
        customerMessage(pipeline, orgA, { text: `A${index}` }),
      );
      assert.equal((await pipeline.postBatch(burst.map(({ event }) => event))).status, 200);
      // HubSpot's 429 parks portal A until HubSpot's interval ends (no retries in memory).
      await waitFor(
        'portal A parked on its 429',
        async () =>
          (await pipeline.counter('processor', 'processor_parked_messages_total', {
            reason: 'hubspot_budget',
          })) > 0,
        10000,
      );

      const b = customerMessage(pipeline, orgB, { text: 'B is not stuck' });
      assert.equal((await pipeline.postBatch([b.event])).status, 200);
      await waitFor('portal B at OpenCX', () => sentTexts(pipeline).includes('B is not stuck'), 10000);
      // Order, not a stopwatch: B arrived while A's burst is still throttled.
      assert.ok(
        sentTexts(pipeline).filter((text) => text.startsWith('A')).length < 6,
        'A is still throttled',
      );

      await waitFor(
        'all of portal A at OpenCX',
        () => sentTexts(pipeline).filter((text) => /^A\d$/.test(text)).length === 6,
        60000,
      );
    });

    it('given a message HubSpot no longer has (404), when processed, then it is dead-lettered and the next message still flows', async () => {
      const org = await pipeline.createOrg({ portalId: 8_200_001 });
      const gone = fixtures.webhookEvent({ portalId: org.portalId });
      const next = customerMessage(pipeline, org, { text: 'after the poison' });
      assert.equal((await pipeline.postBatch([gone, next.event])).status, 200);
      await waitFor(
        'the next message at OpenCX',
        () => sentTexts(pipeline).includes('after the poison'),
        15000,
      );
      await waitFor(
        'the dead letter to be counted',
        async () =>
          (await pipeline.counter('processor', 'processor_dead_letters_total', {
            reason: 'hubspot_rejected',
          })) === 1,
        10000,
      );
    });

    it('given a revoked HubSpot token (401), when processed, then the org is marked reconnect-required in the admin API', async () => {
      const org = await pipeline.createOrg({ portalId: 8_300_001 });
      pipeline.hubspot.revokeToken(org.accessToken);
      const { event } = customerMessage(pipeline, org);
      assert.equal((await pipeline.postBatch([event])).status, 200);
      await waitFor(
        'reconnectRequired in the admin API',
        async () => {
          const response = await fetch(`${pipeline.consoleUrl}/admin/orgs/${org.orgId}`, {
            headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
          });
          const body = (await response.json()) as { hubspot: { reconnectRequired: boolean } };
          return body.hubspot.reconnectRequired;
        },
        15000,
      );
      assert.equal(
        await pipeline.counter('processor', 'processor_dead_letters_total', {
          reason: 'hubspot_unauthorized',
        }),
        1,
      );
      assert.equal(
        await pipeline.counter('processor', 'processor_hubspot_reconnect_required_total', {
          org_id: org.orgId,
        }),
        1,
      );
    });

    it('given an unknown portal, a deleted org and an unsupported type, when posted, then 200 and each is dropped and counted', async () => {
      const deleted = await pipeline.createOrg({ portalId: 8_400_001 });
      const removal = await fetch(`${pipeline.consoleUrl}/admin/orgs/${deleted.orgId}`, {
        method: 'DELETE',
        headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
      });
      assert.equal(removal.status, 204);
      const live = await pipeline.createOrg({ portalId: 8_400_002 });
      const events = [
        fixtures.webhookEvent({ portalId: 9_999_999 }),
        { ...fixtures.webhookEvent({ portalId: live.portalId }), subscriptionType: 'contact.propertyChange' },
      ];
      assert.equal((await pipeline.postBatch(events)).status, 200);
      await waitFor(
        'unknown portal and unsupported type counted',
        async () =>
          (await pipeline.counter('processor', 'processor_ignored_total', { reason: 'unknown_portal' })) >=
            1 &&
          (await pipeline.counter('processor', 'processor_ignored_total', {
            reason: 'unsupported_subscription_type',
            subscription_type: 'contact.propertyChange',
          })) === 1,
      );
      // The deleted org's portal no longer routes to it: its events are unroutable too.
      assert.equal(
        (await pipeline.postBatch([fixtures.webhookEvent({ portalId: deleted.portalId })])).status,
        200,
      );
      await waitFor(
        'the deleted org event dropped',
        async () =>
          (await pipeline.counter('processor', 'processor_ignored_total', { reason: 'unknown_portal' })) >= 2,
      );
    });
  });
});
