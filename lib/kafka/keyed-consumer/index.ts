export { KeyedConsumer } from './consumer.ts';
export {
  DEFAULT_CRASH_BUDGET,
  DEFAULT_MAX_TENANT_WAIT_MS,
  TENANT_CONCURRENCY,
  type ConsumerObserver,
  type KeyedConsumerOptions,
  type KeyedHandler,
  type TenantParking,
} from './options.ts';
