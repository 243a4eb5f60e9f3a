/**
 * An outside system's failure as the one line an operator acts on: which system, where the
 * command looked for it, and the variable to check. Shared by the commands that need the
 * processor's environment (reprocess, reconcile). The clients' errors carry no common code, so
 * Kafka, the registry and Redis are told apart by their wording.
 */
import { describeRedisTopology, redisTopologyOf, type RedisSettings } from '../lib/redis-topology.ts';
import { UpstreamUnavailable, explainUnavailable } from './upstreams.ts';

export type OutageSettings = RedisSettings & {
  readonly KAFKA_BROKERS: readonly string[];
  readonly SCHEMA_REGISTRY_URL: string;
  readonly HUBSPOT_API_BASE_URL: string;
};

export const explainOutage = (error: unknown, config: OutageSettings): string => {
  if (error instanceof UpstreamUnavailable)
    return explainUnavailable(
      error,
      error.upstream === 'hubspot' ? config.HUBSPOT_API_BASE_URL : config.SCHEMA_REGISTRY_URL,
    );
  const message = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
  if (/KafkaJS|broker/i.test(message))
    return `cannot reach Kafka at ${config.KAFKA_BROKERS.join(',')} (${message.slice(0, 160)}); check KAFKA_BROKERS`;
  if (/registry|schema|ccompat|fetch failed/i.test(message))
    return `cannot use the schema registry at ${config.SCHEMA_REGISTRY_URL} (${message.slice(0, 160)}); check SCHEMA_REGISTRY_URL`;
  if (/redis|MaxRetriesPerRequest|ECONNREFUSED/i.test(message))
    return `cannot reach Redis at ${describeRedisTopology(redisTopologyOf(config))} (${message.slice(0, 160)}); check REDIS_URL (or REDIS_SENTINELS, REDIS_CLUSTER_NODES)`;
  return message.slice(0, 300);
};
