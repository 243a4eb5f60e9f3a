import { Counter, Gauge, type Registry } from 'prom-client';
import type { ConsumerObserver } from './keyed-consumer.ts';
import type { TenantGate } from './tenant-gate.ts';

/**
 * The parking of waiting tenants, for a service's metrics: messages parked (by reason),
 * messages read again, and the tenants waited for now.
 */
export const registerTenantParkingMetrics = (
  registry: Registry,
  service: string,
  gate: TenantGate,
): Pick<ConsumerObserver, 'parked' | 'replayed'> => {
  const parked = new Counter({
    name: `${service}_parked_messages_total`,
    help: 'Messages parked because their tenant must wait, by reason (hubspot_budget, opencx_unavailable, ..., tenant_waiting: parked behind an earlier one)',
    labelNames: ['reason'] as const,
    registers: [registry],
  });
  const replayed = new Counter({
    name: `${service}_parked_messages_replayed_total`,
    help: 'Parked messages read again and handed to the handler once their tenant could take them',
    registers: [registry],
  });
  new Gauge({
    name: `${service}_tenants_waiting`,
    help: 'Tenants (organisations, portals) this replica is waiting for now, by reason',
    labelNames: ['reason'] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const { reason } of gate.waiting()) this.inc({ reason });
    },
  });
  return {
    parked: (reason) => parked.inc({ reason }),
    replayed: (messages) => replayed.inc(messages),
  };
};
