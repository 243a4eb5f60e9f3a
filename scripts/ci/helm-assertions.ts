/**
 * Checks what the Helm chart renders for scaling, beyond "it renders": `helm template` is happy
 * with a ScaledObject that watches a consumer group no service uses, or an HPA that runs more
 * consumers than there are partitions. For each rendering (one per ci/*.yaml values file):
 * - no Deployment has two autoscalers (an HPA and a ScaledObject, which would fight over its
 *   replica count), and an autoscaled Deployment sets no replica count of its own;
 * - a consumer's (processor, outbound) most replicas are at most KAFKA_PARTITIONS, when the
 *   ConfigMap sets it;
 * - a ScaledObject scales a consumer on exactly its consumer groups and topics, as the services
 *   name them (consumerGroupsFor in lib/kafka/topics.ts, with the ConfigMap's KAFKA_TOPIC_PREFIX),
 *   on the ConfigMap's brokers, from the earliest offset, never beyond the partition count.
 * Across the renderings, processor and outbound must each get a ScaledObject at least once, so
 * the KEDA template cannot drop out of CI unnoticed.
 *
 * Usage: node scripts/ci/helm-assertions.ts DIR   (the renderings check-deploy.sh leaves in DIR)
 * Exit code 0 when every check passes, 1 otherwise, 2 on bad arguments.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { consumerGroupsFor } from '../../lib/kafka/topics.ts';

type Manifest = {
  readonly kind?: string;
  readonly metadata?: { readonly name?: string; readonly labels?: Record<string, string> };
  readonly data?: Record<string, string>;
  readonly spec?: Record<string, unknown>;
};

type Trigger = { readonly type?: string; readonly metadata?: Record<string, string> };

/** The services that read Kafka through consumer groups, with the groups each one runs. */
const CONSUMER_GROUPS = {
  processor: ['processor'],
  outbound: ['outboundDomainEvents', 'outboundAiReplies'],
} as const satisfies Record<string, ReadonlyArray<keyof ReturnType<typeof consumerGroupsFor>>>;
type Consumer = keyof typeof CONSUMER_GROUPS;
const isConsumer = (component: string | undefined): component is Consumer =>
  component !== undefined && Object.hasOwn(CONSUMER_GROUPS, component);

export type RenderingCheck = {
  /** What is wrong, one line each; empty when the rendering passes. */
  readonly problems: readonly string[];
  /** The components a ScaledObject scales in this rendering. */
  readonly scaledByKeda: readonly string[];
};

const pairsOf = (pairs: ReadonlyArray<{ readonly groupId?: string; readonly topic?: string }>): string =>
  pairs
    .map(({ groupId, topic }) => `${groupId ?? '?'} on ${topic ?? '?'}`)
    .sort()
    .join(', ');

/** Checks one rendering (every document of one `helm template` output). */
export const checkRendering = (manifests: readonly Manifest[]): RenderingCheck => {
  const problems: string[] = [];
  const scaledByKeda: string[] = [];
  const config = manifests.find(
    (m) => m.kind === 'ConfigMap' && m.data?.['KAFKA_BROKERS'] !== undefined,
  )?.data;
  if (!config) return { problems: ['no ConfigMap with KAFKA_BROKERS'], scaledByKeda };
  const prefix = config['KAFKA_TOPIC_PREFIX'] ?? '';
  const partitionsText = config['KAFKA_PARTITIONS'] ?? '';
  const partitions = partitionsText === '' ? undefined : Number(partitionsText);
  const groups = consumerGroupsFor(prefix);

  const deployments = new Map(
    manifests.filter((m) => m.kind === 'Deployment').map((m) => [m.metadata?.name ?? '', m] as const),
  );
  const scalers = manifests.filter((m) => m.kind === 'HorizontalPodAutoscaler' || m.kind === 'ScaledObject');
  const scalersOf = new Map<string, string[]>();

  for (const scaler of scalers) {
    const name = `${scaler.kind ?? '?'} ${scaler.metadata?.name ?? '?'}`;
    const target = scaler.spec?.['scaleTargetRef'] as { kind?: string; name?: string } | undefined;
    const deployment = target?.name === undefined ? undefined : deployments.get(target.name);
    if (target?.kind !== 'Deployment' || !deployment) {
      problems.push(
        `${name}: scales ${target?.kind ?? '?'} ${target?.name ?? '?'}, not a Deployment of this release`,
      );
      continue;
    }
    scalersOf.set(target.name ?? '', [...(scalersOf.get(target.name ?? '') ?? []), name]);
    const component = deployment.metadata?.labels?.['app.kubernetes.io/component'];
    const [min, max] =
      scaler.kind === 'ScaledObject'
        ? [scaler.spec?.['minReplicaCount'], scaler.spec?.['maxReplicaCount']]
        : [scaler.spec?.['minReplicas'], scaler.spec?.['maxReplicas']];
    if (typeof min !== 'number' || typeof max !== 'number' || min < 1 || min > max) {
      problems.push(
        `${name}: replicas ${String(min)} to ${String(max)}: want whole numbers, 1 <= min <= max`,
      );
    }
    if (isConsumer(component) && partitions !== undefined && typeof max === 'number' && max > partitions) {
      problems.push(
        `${name}: up to ${max} ${component} replicas on topics of ${partitions} partitions (KAFKA_PARTITIONS): ${max - partitions} would sit idle`,
      );
    }
    if (scaler.kind !== 'ScaledObject') continue;

    if (!isConsumer(component)) {
      problems.push(`${name}: scales ${component ?? '?'} on Kafka lag, but it is not a consumer`);
      continue;
    }
    scaledByKeda.push(component);
    const triggers = (scaler.spec?.['triggers'] ?? []) as readonly Trigger[];
    for (const [index, trigger] of triggers.entries()) {
      const where = `${name}: trigger ${index}`;
      const metadata = trigger.metadata ?? {};
      if (trigger.type !== 'kafka') problems.push(`${where}: type ${trigger.type ?? '?'}, want kafka`);
      if (metadata['bootstrapServers'] !== config['KAFKA_BROKERS'])
        problems.push(
          `${where}: bootstrapServers ${metadata['bootstrapServers']}, the services use ${config['KAFKA_BROKERS']}`,
        );
      if (metadata['offsetResetPolicy'] !== 'earliest')
        problems.push(
          `${where}: offsetResetPolicy ${metadata['offsetResetPolicy']}, the services read from the earliest offset`,
        );
      if (metadata['allowIdleConsumers'] !== 'false')
        problems.push(
          `${where}: allowIdleConsumers ${metadata['allowIdleConsumers']}, want "false" (never past the partitions)`,
        );
      if (!/^[1-9][0-9]*$/.test(metadata['lagThreshold'] ?? ''))
        problems.push(
          `${where}: lagThreshold ${metadata['lagThreshold']}, want a whole number of at least 1`,
        );
    }
    const rendered = pairsOf(
      triggers.map((t) => ({ groupId: t.metadata?.['consumerGroup'], topic: t.metadata?.['topic'] })),
    );
    const expected = pairsOf(CONSUMER_GROUPS[component].map((group) => groups[group]));
    if (rendered !== expected)
      problems.push(`${name}: triggers watch [${rendered}], the ${component} service runs [${expected}]`);
  }

  for (const [deployment, names] of scalersOf) {
    if (names.length > 1)
      problems.push(`Deployment ${deployment}: ${names.length} autoscalers (${names.join(', ')})`);
    if (deployments.get(deployment)?.spec?.['replicas'] !== undefined)
      problems.push(`Deployment ${deployment}: sets replicas, but ${names.join(', ')} owns the count`);
  }
  return { problems, scaledByKeda };
};

if (import.meta.filename === process.argv[1]) {
  const dir = process.argv[2];
  if (!dir) {
    console.error('usage: node scripts/ci/helm-assertions.ts DIR');
    process.exit(2);
  }
  const files = readdirSync(dir).filter((file) => file.endsWith('.yaml'));
  if (files.length === 0) {
    console.error(`${dir}: no rendered manifests`);
    process.exit(1);
  }
  let failed = false;
  const scaledByKeda = new Set<string>();
  for (const file of files.sort()) {
    const manifests = parseAllDocuments(readFileSync(join(dir, file), 'utf8'))
      .map((document) => document.toJS() as Manifest | null)
      .filter((manifest): manifest is Manifest => manifest !== null);
    const check = checkRendering(manifests);
    check.scaledByKeda.forEach((component) => scaledByKeda.add(component));
    for (const problem of check.problems) console.log(`  ${file}: ${problem}`);
    console.log(`scaling in ${file}: ${check.problems.length === 0 ? 'ok' : 'FAILED'}`);
    failed ||= check.problems.length > 0;
  }
  for (const consumer of Object.keys(CONSUMER_GROUPS).filter((c) => !scaledByKeda.has(c))) {
    console.log(`no ci values file renders a ScaledObject for ${consumer}: its KEDA triggers go unchecked`);
    failed = true;
  }
  process.exit(failed ? 1 : 0);
}
