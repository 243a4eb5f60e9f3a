import assert from 'node:assert/strict';
import { createTenantGate } from '../../lib/kafka/tenant-gate.ts';

describe('tenant gate: which tenants a process waits for, and until when', () => {
  it('given nothing closed, then no tenant is waited for', () => {
    const gate = createTenantGate();
    assert.equal(gate.waitingUntil('org-1', 0), undefined);
    assert.deepEqual(gate.waiting(0), []);
  });

  it('given repeated failures, then the wait doubles per window up to the max, and many closes in one window count once', () => {
    const gate = createTenantGate({ initialBackoffMs: 1000, maxBackoffMs: 3000 });
    assert.equal(gate.close('org-1', 'opencx_unavailable', undefined, 0), 1000);
    // Other conversations of the same outage, within the same window: no longer wait.
    assert.equal(gate.close('org-1', 'opencx_unavailable', undefined, 500), 1000);
    assert.equal(gate.waitingUntil('org-1', 999), 1000);
    assert.equal(gate.waitingUntil('org-1', 1000), undefined, 'open at its time: the next call probes');
    assert.equal(gate.close('org-1', 'opencx_unavailable', undefined, 1000), 3000, 'second window: 2 s');
    assert.equal(gate.close('org-1', 'opencx_unavailable', undefined, 3000), 6000, 'third: capped at 3 s');
    assert.deepEqual(gate.waiting(4000), [{ tenant: 'org-1', reason: 'opencx_unavailable', untilMs: 6000 }]);
  });

  it("given a rate limit's own time, then the gate opens then, never earlier than an earlier close said", () => {
    const gate = createTenantGate({ initialBackoffMs: 1000 });
    assert.equal(gate.close('portal', 'hubspot_budget', 7000, 0), 7000);
    assert.equal(gate.close('portal', 'hubspot_budget', 5000, 100), 7000);
    assert.equal(gate.waitingUntil('other', 100), undefined, 'other tenants are not affected');
  });

  it('given a success, then the back-off starts over', () => {
    const gate = createTenantGate({ initialBackoffMs: 1000, maxBackoffMs: 60_000 });
    gate.close('org-1', 'opencx_unavailable', undefined, 0);
    gate.close('org-1', 'opencx_unavailable', undefined, 1000);
    gate.recovered('org-1');
    assert.equal(gate.close('org-1', 'opencx_unavailable', undefined, 10_000), 11_000);
  });

  it('given a wait that is over, then one message probes, one more per success, until the ramp is done (slow start)', () => {
    const gate = createTenantGate({ initialBackoffMs: 1000, rampMessages: 3 });
    assert.equal(gate.allowance('org-1', 0), Infinity, 'never closed: no limit');
    gate.close('org-1', 'opencx_unavailable', undefined, 0);
    assert.equal(gate.allowance('org-1', 500), 0, 'still waiting');
    assert.equal(gate.allowance('org-1', 1000), 1, 'wait over: a probe');
    gate.recovered('org-1');
    assert.equal(gate.allowance('org-1', 1000), 2);
    gate.recovered('org-1');
    assert.equal(gate.allowance('org-1', 1000), 3);
    gate.recovered('org-1');
    assert.equal(gate.allowance('org-1', 1000), Infinity, 'ramp done');
  });

  it('given a close during the slow start, then it starts over from a probe, with the back-off from its start', () => {
    const gate = createTenantGate({ initialBackoffMs: 1000, maxBackoffMs: 60_000, rampMessages: 10 });
    gate.close('org-1', 'hubspot_budget', undefined, 0);
    gate.close('org-1', 'hubspot_budget', undefined, 1000);
    gate.recovered('org-1');
    gate.recovered('org-1');
    assert.equal(
      gate.close('org-1', 'hubspot_budget', undefined, 4000),
      5000,
      'a success reset the back-off',
    );
    assert.equal(gate.allowance('org-1', 5000), 1);
  });
});
