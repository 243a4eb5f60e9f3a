/**
 * scripts/ci/helm-assertions.ts, the CI check of the chart's autoscalers, on hand-made renderings:
 * it must pass the chart's shape and fail each way the chart could go wrong.
 */
import assert from 'node:assert/strict';
import { checkRendering } from '../../scripts/ci/helm-assertions.ts';

type Manifest = Parameters<typeof checkRendering>[0][number];

const configMap = (data: Record<string, string>): Manifest => ({
  kind: 'ConfigMap',
  metadata: { name: 'ci-config' },
  data: { KAFKA_BROKERS: 'kafka:9092', KAFKA_TOPIC_PREFIX: 'prod.', KAFKA_PARTITIONS: '8', ...data },
});

const deployment = (component: string, spec: Record<string, unknown> = {}): Manifest => ({
  kind: 'Deployment',
  metadata: { name: `ci-${component}`, labels: { 'app.kubernetes.io/component': component } },
  spec,
});

const trigger = (consumerGroup: string, topic: string, metadata: Record<string, string> = {}) => ({
  type: 'kafka',
  metadata: {
    bootstrapServers: 'kafka:9092',
    consumerGroup,
    topic,
    lagThreshold: '100',
    offsetResetPolicy: 'earliest',
    allowIdleConsumers: 'false',
    ...metadata,
  },
});

const scaledObject = (component: string, spec: Record<string, unknown>): Manifest => ({
  kind: 'ScaledObject',
  metadata: { name: `ci-${component}` },
  spec: {
    scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: `ci-${component}` },
    minReplicaCount: 2,
    maxReplicaCount: 8,
    ...spec,
  },
});

const hpa = (component: string, maxReplicas: number): Manifest => ({
  kind: 'HorizontalPodAutoscaler',
  metadata: { name: `ci-${component}` },
  spec: { scaleTargetRef: { kind: 'Deployment', name: `ci-${component}` }, minReplicas: 2, maxReplicas },
});

const outboundTriggers = [
  trigger('prod.outbound', 'prod.pipeline.domain-events'),
  trigger('prod.outbound.ai-replies', 'prod.pipeline.ai-replies'),
];

const chartShape = (): Manifest[] => [
  configMap({}),
  deployment('ingest'),
  deployment('processor'),
  deployment('outbound'),
  hpa('ingest', 20),
  scaledObject('processor', { triggers: [trigger('prod.processor', 'prod.hubspot.webhook-events')] }),
  scaledObject('outbound', { triggers: outboundTriggers }),
];

describe('the chart scaling check (scripts/ci/helm-assertions.ts)', () => {
  it("given the chart's shape, when checked, then it passes and names both consumers as scaled by KEDA", () => {
    const check = checkRendering(chartShape());
    assert.deepEqual(check.problems, []);
    assert.deepEqual(check.scaledByKeda, ['processor', 'outbound']);
  });

  it('given a ScaledObject above the partition count, when checked, then the idle replicas are reported', () => {
    const rendering = chartShape().map((m) =>
      m.kind === 'ScaledObject' && m.metadata?.name === 'ci-processor'
        ? scaledObject('processor', {
            maxReplicaCount: 12,
            triggers: [trigger('prod.processor', 'prod.hubspot.webhook-events')],
          })
        : m,
    );
    assert.match(
      checkRendering(rendering).problems.join('\n'),
      /up to 12 processor replicas .* 8 partitions/,
    );
  });

  it('given an HPA on a consumer above the partition count, when checked, then it is reported too', () => {
    const rendering = [configMap({}), deployment('processor'), hpa('processor', 9)];
    assert.match(
      checkRendering(rendering).problems.join('\n'),
      /ci-processor: up to 9 processor replicas on topics of 8 partitions .*: 1 would sit idle/,
    );
  });

  it('given a trigger on a group the service does not run, when checked, then the mismatch is reported', () => {
    const rendering = chartShape().map((m) =>
      m.kind === 'ScaledObject' && m.metadata?.name === 'ci-outbound'
        ? scaledObject('outbound', { triggers: [trigger('prod.outbound', 'prod.pipeline.domain-events')] })
        : m,
    );
    assert.match(
      checkRendering(rendering).problems.join('\n'),
      /triggers watch \[prod\.outbound on prod\.pipeline\.domain-events\], the outbound service runs/,
    );
  });

  it('given the topic prefix left out of a trigger, when checked, then the mismatch is reported', () => {
    const rendering = chartShape().map((m) =>
      m.kind === 'ScaledObject' && m.metadata?.name === 'ci-processor'
        ? scaledObject('processor', { triggers: [trigger('processor', 'hubspot.webhook-events')] })
        : m,
    );
    assert.match(
      checkRendering(rendering).problems.join('\n'),
      /the processor service runs \[prod\.processor/,
    );
  });

  it('given an HPA and a ScaledObject on one Deployment, when checked, then both are named', () => {
    const rendering = [...chartShape(), hpa('outbound', 6)];
    assert.match(
      checkRendering(rendering).problems.join('\n'),
      /Deployment ci-outbound: 2 autoscalers \(ScaledObject ci-outbound, HorizontalPodAutoscaler ci-outbound\)/,
    );
  });

  it('given an autoscaled Deployment that sets replicas, when checked, then it is reported', () => {
    const rendering = chartShape().map((m) =>
      m.kind === 'Deployment' && m.metadata?.name === 'ci-processor'
        ? deployment('processor', { replicas: 2 })
        : m,
    );
    assert.match(checkRendering(rendering).problems.join('\n'), /Deployment ci-processor: sets replicas/);
  });

  it('given a trigger that would read from the latest offset or allow idle consumers, when checked, then each is reported', () => {
    const rendering = chartShape().map((m) =>
      m.kind === 'ScaledObject' && m.metadata?.name === 'ci-processor'
        ? scaledObject('processor', {
            triggers: [
              trigger('prod.processor', 'prod.hubspot.webhook-events', {
                offsetResetPolicy: 'latest',
                allowIdleConsumers: 'true',
              }),
            ],
          })
        : m,
    );
    const problems = checkRendering(rendering).problems.join('\n');
    assert.match(problems, /offsetResetPolicy latest/);
    assert.match(problems, /allowIdleConsumers true/);
  });

  it('given KEDA on ingest, when checked, then it is refused: ingest is not a consumer', () => {
    const rendering = [configMap({}), deployment('ingest'), scaledObject('ingest', { triggers: [] })];
    assert.match(
      checkRendering(rendering).problems.join('\n'),
      /scales ingest on Kafka lag, but it is not a consumer/,
    );
  });
});
