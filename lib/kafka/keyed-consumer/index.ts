export {
  DEFAULT_CRASH_BUDGET,
  DEFAULT_MAX_TENANT_WAIT_MS,
  KeyedConsumer,
  TENANT_CONCURRENCY,
  type ConsumerObserver,
  type KeyedConsumerOptions,
  type KeyedHandler,
  type TenantParking,
} from './consumer.ts';
