/**
 * Sizing from measured costs: what a rate of HubSpot webhook events needs in replicas, partitions,
 * Redis, Kafka and upstream budget. Pure arithmetic, so the README's capacity table can be
 * recomputed from new figures (bench/capacity.bench.ts prints it) and is unit-tested on its own.
 *
 * Every cost is per webhook event of the measured mix (README "Capacity"). A replica is bounded
 * two ways, and the tighter decides how many are needed:
 * - CPU: the chart's CPU HPA keeps a replica near its target utilisation times its request
 *   (`cpuPerReplica`; at most one core: a replica's work runs on one event loop). A replica also
 *   reads the compacted tables (posted replies, session links) whole: that part of its CPU grows
 *   with the total rate, not with its share, and no number of replicas makes it smaller;
 * - connections: a process keeps at most `connectionsPerOrigin` connections to HubSpot and as
 *   many to OpenCX (lib/http.ts), one call in flight on each, so it makes at most
 *   connections ÷ latency calls per second to each.
 * The rate one replica sustained in the benchmark is not an input: on a shared machine it
 * measures the machine as much as the replica; CPU per event is the steadier figure.
 */

export type ServiceCost = {
  /** CPU ms one replica spends per webhook event of the mix (at saturation). */
  readonly cpuMsPerEvent: number;
  /** Table records per webhook event that every replica of this service reads (0 for ingest). */
  readonly tableRecordsPerEvent: number;
  /** This service's calls per webhook event. */
  readonly hubspotCallsPerEvent: number;
  readonly opencxCallsPerEvent: number;
};

export type MeasuredCosts = {
  readonly ingest: ServiceCost;
  readonly processor: ServiceCost;
  readonly outbound: ServiceCost;
  /** CPU ms a replica spends to apply one table record it did not write itself. */
  readonly tableCpuMsPerRecord: number;
  readonly redisCommandsPerEvent: number;
  /** CPU ms of the Redis server per event (its main thread: one Redis uses one core at most). */
  readonly redisCpuMsPerEvent: number;
  /** Records and bytes the leaders write per event (before replication). */
  readonly kafkaRecordsPerEvent: number;
  readonly kafkaBytesPerEvent: number;
};

export type DeploymentPlan = {
  /** Cores each replica is planned to use: the HPA's target utilisation × the CPU request (≤ 1). */
  readonly cpuPerReplica: number;
  /** Partitions per consumer replica needed now: room for the peak to grow without adding partitions. */
  readonly partitionHeadroom: number;
  readonly minPartitions: number;
  readonly replicationFactor: number;
  /** Cores a Redis main thread is planned to use (of the one it can use). */
  readonly redisCoresPerServer: number;
  /** HubSpot calls per second one portal may make (HUBSPOT_RATE_LIMIT_MAX / window). */
  readonly hubspotCallsPerPortalPerS: number;
  /** OpenCX calls per second one organisation may make (OPENCX_RATE_LIMIT_MAX / window). */
  readonly opencxCallsPerOrgPerS: number;
  /** Connections a process keeps per upstream (lib/http.ts), and the upstreams' answer times. */
  readonly connectionsPerOrigin: number;
  readonly hubspotLatencyS: number;
  readonly opencxLatencyS: number;
};

export type ServiceName = 'ingest' | 'processor' | 'outbound';

/** What sets a service's replica count. */
export type ReplicaBound = 'cpu' | 'connections' | 'tables';

export type ServiceSizing = {
  /** null when the table records alone take more than a replica's planned CPU: no count is enough. */
  readonly replicas: number | null;
  readonly boundBy: ReplicaBound;
};

export type Sizing = {
  readonly eventsPerS: number;
  readonly services: Readonly<Record<ServiceName, ServiceSizing>>;
  /** Partitions of the raw, domain-event and AI-reply topics; null when a consumer cannot be sized. */
  readonly partitions: number | null;
  readonly redisCommandsPerS: number;
  /** Redis cores, and Redis servers (Cluster masters) at the planned cores each. */
  readonly redisCores: number;
  readonly redisServers: number;
  readonly kafkaRecordsPerS: number;
  /** MB/s the leaders write, and MB/s written to disk across all replicas. */
  readonly kafkaLeaderMBPerS: number;
  readonly kafkaReplicatedMBPerS: number;
  readonly hubspotCallsPerS: number;
  /** Portals the traffic must be spread over at least, each at its whole budget. */
  readonly portalsAtLeast: number;
  readonly opencxCallsPerS: number;
  readonly orgsAtLeast: number;
};

/** Events/s one replica can have in flight to its upstreams: connections ÷ (calls per event × latency). */
export const connectionBoundEventsPerS = (cost: ServiceCost, plan: DeploymentPlan): number =>
  Math.min(
    cost.hubspotCallsPerEvent > 0
      ? plan.connectionsPerOrigin / (cost.hubspotCallsPerEvent * plan.hubspotLatencyS)
      : Number.POSITIVE_INFINITY,
    cost.opencxCallsPerEvent > 0
      ? plan.connectionsPerOrigin / (cost.opencxCallsPerEvent * plan.opencxLatencyS)
      : Number.POSITIVE_INFINITY,
  );

const atLeast = (value: number): number => Math.ceil(value - 1e-9);

/**
 * Replicas for a rate. With R replicas each does 1/R of the work and reads every table record;
 * the work measured at one replica already includes reading its own writes. So
 * R × budget ≥ rate × cpu + (R − 1) × rate × table; and R ≥ rate ÷ its connection bound.
 * The bound named is the one that decides; "tables" when CPU decides and the table records
 * take more than half of each replica's budget.
 */
export const replicasFor = (
  eventsPerS: number,
  cost: ServiceCost,
  tableCpuMsPerRecord: number,
  plan: DeploymentPlan,
): ServiceSizing => {
  if (eventsPerS <= 0) return { replicas: 0, boundBy: 'cpu' };
  const budgetMsPerS = plan.cpuPerReplica * 1000;
  const tableMsPerS = eventsPerS * cost.tableRecordsPerEvent * tableCpuMsPerRecord;
  if (tableMsPerS >= budgetMsPerS) return { replicas: null, boundBy: 'tables' };
  const workMsPerS = eventsPerS * cost.cpuMsPerEvent - tableMsPerS;
  const byCpu = atLeast(workMsPerS / (budgetMsPerS - tableMsPerS));
  const byConnections = atLeast(eventsPerS / connectionBoundEventsPerS(cost, plan));
  const replicas = Math.max(1, byCpu, byConnections);
  const boundBy: ReplicaBound =
    byConnections > byCpu ? 'connections' : tableMsPerS > budgetMsPerS / 2 ? 'tables' : 'cpu';
  return { replicas, boundBy };
};

/** Partitions for the consumers' topics: the most consumer replicas × headroom, a multiple of 6. */
export const partitionsFor = (consumerReplicas: readonly number[], plan: DeploymentPlan): number => {
  const wanted = Math.max(
    plan.minPartitions,
    Math.ceil(Math.max(0, ...consumerReplicas) * plan.partitionHeadroom),
  );
  return Math.ceil(wanted / 6) * 6;
};

export const sizeFor = (eventsPerS: number, costs: MeasuredCosts, plan: DeploymentPlan): Sizing => {
  const services = {
    ingest: replicasFor(eventsPerS, costs.ingest, costs.tableCpuMsPerRecord, plan),
    processor: replicasFor(eventsPerS, costs.processor, costs.tableCpuMsPerRecord, plan),
    outbound: replicasFor(eventsPerS, costs.outbound, costs.tableCpuMsPerRecord, plan),
  };
  const consumers = [services.processor.replicas, services.outbound.replicas];
  const redisCores = (eventsPerS * costs.redisCpuMsPerEvent) / 1000;
  const callsPerEvent = (pick: (cost: ServiceCost) => number): number =>
    pick(costs.ingest) + pick(costs.processor) + pick(costs.outbound);
  const hubspotCallsPerS = eventsPerS * callsPerEvent((cost) => cost.hubspotCallsPerEvent);
  const opencxCallsPerS = eventsPerS * callsPerEvent((cost) => cost.opencxCallsPerEvent);
  const leaderMBPerS = (eventsPerS * costs.kafkaBytesPerEvent) / 1e6;
  return {
    eventsPerS,
    services,
    partitions: consumers.some((count) => count === null) ? null : partitionsFor(consumers as number[], plan),
    redisCommandsPerS: eventsPerS * costs.redisCommandsPerEvent,
    redisCores,
    redisServers: Math.max(1, atLeast(redisCores / plan.redisCoresPerServer)),
    kafkaRecordsPerS: eventsPerS * costs.kafkaRecordsPerEvent,
    kafkaLeaderMBPerS: leaderMBPerS,
    kafkaReplicatedMBPerS: leaderMBPerS * plan.replicationFactor,
    hubspotCallsPerS,
    portalsAtLeast: atLeast(hubspotCallsPerS / plan.hubspotCallsPerPortalPerS),
    opencxCallsPerS,
    orgsAtLeast: atLeast(opencxCallsPerS / plan.opencxCallsPerOrgPerS),
  };
};

/**
 * The chart's defaults (infra/helm values.yaml): CPU request 100m, HPA target 70 %, so a replica
 * is kept near 0.07 of a core; replication factor 3; the services' default rate limits. The
 * answer times are assumptions, not measurements: HubSpot's API about 200 ms, OpenCX's send
 * (which returns the AI's answer) about 2 s.
 */
export const CHART_DEFAULT_PLAN = {
  cpuPerReplica: 0.1 * 0.7,
  partitionHeadroom: 2,
  minPartitions: 6,
  replicationFactor: 3,
  redisCoresPerServer: 0.7,
  hubspotCallsPerPortalPerS: 100 / 10,
  opencxCallsPerOrgPerS: 50 / 1,
  connectionsPerOrigin: 256,
  hubspotLatencyS: 0.2,
  opencxLatencyS: 2,
} as const satisfies DeploymentPlan;

/** The same with a CPU request of one core per replica (what a Node event loop can use). */
export const ONE_CORE_PLAN = {
  ...CHART_DEFAULT_PLAN,
  cpuPerReplica: 1 * 0.7,
} as const satisfies DeploymentPlan;
