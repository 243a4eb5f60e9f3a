import assert from 'node:assert/strict';
import { TenantSlots } from '../../../lib/kafka/keyed-consumer/tenant-slots.ts';

/** Resolves once the promise settled, or reports that it is still pending after the current turn. */
const settledNow = async (promise: Promise<void>): Promise<boolean> => {
  let settled = false;
  void promise.then(() => (settled = true));
  await new Promise((resolve) => setImmediate(resolve));
  return settled;
};

describe('keyed consumer: handler slots per tenant (lib/kafka/keyed-consumer/tenant-slots.ts)', () => {
  it('given a limit of 2, when a third message of the tenant asks, then it waits until one is released', async () => {
    const slots = new TenantSlots(() => 2);
    assert.equal(await settledNow(slots.acquire('A')), true);
    assert.equal(await settledNow(slots.acquire('A')), true);
    const third = slots.acquire('A');
    assert.equal(await settledNow(third), false);
    slots.release('A');
    assert.equal(await settledNow(third), true);
  });

  it('given one tenant at its limit, when another tenant asks, then it gets a slot at once', async () => {
    const slots = new TenantSlots(() => 1);
    await slots.acquire('A');
    assert.equal(await settledNow(slots.acquire('A')), false);
    assert.equal(await settledNow(slots.acquire('B')), true);
  });

  it('given a slow start (a probe, then a higher limit once it succeeded), when the probe is released, then that many waiters go at once', async () => {
    let limit = 1;
    const slots = new TenantSlots(() => limit);
    await slots.acquire('A');
    const waiters = [slots.acquire('A'), slots.acquire('A'), slots.acquire('A'), slots.acquire('A')];
    limit = 3;
    slots.release('A');
    const settled = await Promise.all(waiters.map(settledNow));
    assert.deepEqual(settled, [true, true, true, false]);
  });

  it('given every slot released and nobody waiting, then nothing is kept for the tenant', async () => {
    const slots = new TenantSlots(() => 2);
    await slots.acquire('A');
    await slots.acquire('B');
    slots.release('A');
    slots.release('B');
    assert.equal(slots.tenants, 0);
    slots.release('C');
    assert.equal(slots.tenants, 0, 'releasing a tenant with nothing in flight is a no-op');
  });
});
