/**
 * bench/capacity-model.ts, the arithmetic behind the README's capacity table: replicas from CPU
 * per event (and the tables every replica reads whole), what one replica sustained, the
 * connections to slow upstreams; partitions, Redis, Kafka and upstream budgets. Round figures,
 * so each expectation can be checked by hand.
 */
import assert from 'node:assert/strict';
import {
  CHART_DEFAULT_PLAN,
  ONE_CORE_PLAN,
  connectionBoundEventsPerS,
  partitionsFor,
  replicasFor,
  sizeFor,
  type DeploymentPlan,
  type MeasuredCosts,
  type ServiceCost,
} from '../../bench/capacity-model.ts';

const service = (overrides: Partial<ServiceCost> = {}): ServiceCost => ({
  cpuMsPerEvent: 0.2,
  tableRecordsPerEvent: 0,
  hubspotCallsPerEvent: 0,
  opencxCallsPerEvent: 0,
  ...overrides,
});

/** 0.7 core a replica, upstreams on loopback: CPU decides. */
const fastUpstreams: DeploymentPlan = { ...ONE_CORE_PLAN, hubspotLatencyS: 0.001, opencxLatencyS: 0.001 };

const costs: MeasuredCosts = {
  ingest: service({ cpuMsPerEvent: 0.1 }),
  processor: service({
    cpuMsPerEvent: 0.3,
    tableRecordsPerEvent: 0.05,
    hubspotCallsPerEvent: 1,
  }),
  outbound: service({
    cpuMsPerEvent: 0.4,
    tableRecordsPerEvent: 0.5,
    hubspotCallsPerEvent: 0.5,
    opencxCallsPerEvent: 0.5,
  }),
  tableCpuMsPerRecord: 0.02,
  redisCommandsPerEvent: 8,
  redisCpuMsPerEvent: 0.02,
  kafkaRecordsPerEvent: 2.5,
  kafkaBytesPerEvent: 800,
};

describe('capacity model', () => {
  describe('replicasFor', () => {
    it('given no table, when sized at 0.7 core a replica, then replicas carry the CPU the rate needs', () => {
      // 10,000 events/s × 0.2 ms = 2,000 ms/s = 2.86 replicas of 700 ms/s.
      assert.deepEqual(replicasFor(10_000, service(), 0.02, fastUpstreams), { replicas: 3, boundBy: 'cpu' });
    });

    it('given a slow upstream, when sized, then the connections in flight decide', () => {
      // 256 connections ÷ (1 call × 0.2 s) = 1,280 events/s a replica: 5,000/s needs 4 (CPU: 2).
      assert.deepEqual(replicasFor(5000, service({ hubspotCallsPerEvent: 1 }), 0.02, ONE_CORE_PLAN), {
        replicas: 4,
        boundBy: 'connections',
      });
    });

    it('given tables every replica reads, when sized, then each replica pays the whole rate of table records', () => {
      // k = 0.5 × 0.02 = 0.01 ms/event; 10,000/s: tables 100 ms/s a replica; work 10,000 × (0.4 − 0.01)
      // = 3,900 ms/s over 700 − 100 = 600 ms/s a replica: 6.5 → 7.
      assert.deepEqual(
        replicasFor(10_000, service({ cpuMsPerEvent: 0.4, tableRecordsPerEvent: 0.5 }), 0.02, fastUpstreams),
        {
          replicas: 7,
          boundBy: 'cpu',
        },
      );
    });

    it("given tables alone beyond a replica's budget, when sized, then no replica count is enough", () => {
      // 100,000/s × 0.5 × 0.02 = 1,000 ms/s of table records: more than 700.
      assert.deepEqual(replicasFor(100_000, service({ tableRecordsPerEvent: 0.5 }), 0.02, fastUpstreams), {
        replicas: null,
        boundBy: 'tables',
      });
    });

    it('given no events, when sized, then no replicas', () => {
      assert.equal(replicasFor(0, service(), 0.02, fastUpstreams).replicas, 0);
    });
  });

  describe('connectionBoundEventsPerS', () => {
    it('given calls to both upstreams, when bounded, then the slower pool decides', () => {
      // HubSpot: 256 ÷ (1 × 0.2 s) = 1,280/s; OpenCX: 256 ÷ (0.5 × 2 s) = 256/s.
      const cost = service({ hubspotCallsPerEvent: 1, opencxCallsPerEvent: 0.5 });
      assert.equal(connectionBoundEventsPerS(cost, ONE_CORE_PLAN), 256);
    });

    it('given no upstream calls, when bounded, then nothing bounds', () => {
      assert.equal(connectionBoundEventsPerS(service(), ONE_CORE_PLAN), Number.POSITIVE_INFINITY);
    });
  });

  describe('partitionsFor', () => {
    it('given consumer replicas, when sized, then twice the most of them, in multiples of 6', () => {
      assert.equal(partitionsFor([5, 7], ONE_CORE_PLAN), 18);
      assert.equal(partitionsFor([1, 1], ONE_CORE_PLAN), 6);
      assert.equal(partitionsFor([12, 3], ONE_CORE_PLAN), 24);
    });
  });

  describe('sizeFor', () => {
    it('given measured costs and fast upstreams, when sized for 10,000 events/s, then every figure follows', () => {
      const size = sizeFor(10_000, costs, fastUpstreams);
      assert.deepEqual(
        Object.values(size.services).map((each) => each.replicas),
        [2, 5, 7],
      );
      assert.equal(size.partitions, 18);
      assert.equal(size.redisCommandsPerS, 80_000);
      assert.equal(size.redisCores, 0.2);
      assert.equal(size.redisServers, 1);
      assert.equal(size.kafkaRecordsPerS, 25_000);
      assert.equal(size.kafkaLeaderMBPerS, 8);
      assert.equal(size.kafkaReplicatedMBPerS, 24);
      assert.equal(size.hubspotCallsPerS, 15_000);
      assert.equal(size.portalsAtLeast, 1500);
      assert.equal(size.opencxCallsPerS, 5000);
      assert.equal(size.orgsAtLeast, 100);
    });

    it('given an AI that answers in 2 s, when sized, then outbound replicas follow its connections', () => {
      // Outbound: 256 ÷ (0.5 × 2 s) = 256 events/s a replica → 40; processor: 256 ÷ (1 × 0.2 s) → 8.
      const size = sizeFor(10_000, costs, ONE_CORE_PLAN);
      assert.deepEqual(size.services.outbound, { replicas: 40, boundBy: 'connections' });
      assert.deepEqual(size.services.processor, { replicas: 8, boundBy: 'connections' });
      assert.equal(size.partitions, 84);
    });

    it("given the chart's 100m request, when a consumer cannot be sized, then neither can the partitions", () => {
      const size = sizeFor(10_000, costs, CHART_DEFAULT_PLAN);
      // Outbound's tables: 10,000 × 0.5 × 0.02 = 100 ms/s, more than 0.07 core (70 ms/s).
      assert.deepEqual(size.services.outbound, { replicas: null, boundBy: 'tables' });
      assert.equal(size.partitions, null);
    });

    it('given Redis work beyond one server, when sized, then Redis servers at 0.7 core each', () => {
      // 100,000 × 0.02 ms = 2 cores: 3 servers.
      assert.equal(sizeFor(100_000, costs, ONE_CORE_PLAN).redisServers, 3);
    });
  });
});
