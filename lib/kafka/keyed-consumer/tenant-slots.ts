/**
 * Handler slots per tenant. A burst of one tenant's new conversations (each its own queue) must
 * not all call its failing upstream at once before the first answer parks the tenant: past its
 * limit, a tenant's conversations wait for a slot, and are then parked without a call if the
 * tenant was parked meanwhile. The limit is read at each acquire and release, so it may change
 * (a tenant gate's slow start: one probe after a wait, one more slot per success).
 */
export class TenantSlots {
  readonly #limit: (tenant: string) => number;
  readonly #slots = new Map<string, { inFlight: number; waiters: (() => void)[] }>();

  constructor(limit: (tenant: string) => number) {
    this.#limit = limit;
  }

  /** Resolves once the tenant has a slot (at once when one is free); `release` it after the call. */
  acquire(tenant: string): Promise<void> {
    const slots = this.#slots.get(tenant) ?? { inFlight: 0, waiters: [] };
    this.#slots.set(tenant, slots);
    if (slots.inFlight < this.#limit(tenant)) {
      slots.inFlight++;
      return Promise.resolve();
    }
    return new Promise((resolve) => slots.waiters.push(resolve));
  }

  release(tenant: string): void {
    const slots = this.#slots.get(tenant);
    if (!slots) return;
    slots.inFlight--;
    // Waiters take the freed slot, and more once a probe succeeded (the limit is back up).
    const limit = this.#limit(tenant);
    while (slots.inFlight < limit && slots.waiters.length > 0) {
      slots.inFlight++;
      slots.waiters.shift()?.();
    }
    if (slots.inFlight === 0 && slots.waiters.length === 0) this.#slots.delete(tenant);
  }

  /** Tenants with a call in flight or waiting for a slot. */
  get tenants(): number {
    return this.#slots.size;
  }
}
