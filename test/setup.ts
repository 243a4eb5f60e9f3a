/**
 * Mocha global setup: a real Kafka broker, schema registry and Redis for the integration tests,
 * from KAFKA_BROKERS/SCHEMA_REGISTRY_URL/REDIS_URL when set, else testcontainers when a container
 * runtime answers, else infra/local started here (and stopped at the end if this run started it).
 */
import { acquireInfra } from './support/infra.ts';

let release: (() => Promise<void>) | undefined;

export const mochaGlobalSetup = async (): Promise<void> => {
  const infra = await acquireInfra();
  process.env.KAFKA_BROKERS = infra.kafkaBrokers.join(',');
  process.env.SCHEMA_REGISTRY_URL = infra.schemaRegistryUrl;
  process.env.REDIS_URL = infra.redisUrl;
  release = () => infra.release();
};

export const mochaGlobalTeardown = async (): Promise<void> => {
  await release?.();
};
