import assert from 'node:assert/strict';
import { dispositionOf, type DispositionInput } from '../../../lib/kafka/keyed-consumer/disposition.ts';

const live = (offset: number, overrides: Partial<DispositionInput> = {}): DispositionInput => ({
  offset: BigInt(offset),
  tenantWaits: false,
  replayed: undefined,
  replaying: undefined,
  ...overrides,
});

describe('keyed consumer: what a tenant’s message at the head of its queue gets (lib/kafka/keyed-consumer/disposition.ts)', () => {
  it('given a live message of a tenant that neither waits nor is read again, then it is handled', () => {
    assert.equal(dispositionOf(live(10)), 'handle');
  });

  it('given a live message of a tenant that waits or is parked, then it is parked with the others', () => {
    assert.equal(dispositionOf(live(10, { tenantWaits: true })), 'park');
  });

  it('given a live message a running replay will read again, then it is passed over (the replay’s copy is handled)', () => {
    assert.equal(dispositionOf(live(10, { replaying: { from: 5n, handoverAt: undefined } })), 'covered');
    assert.equal(dispositionOf(live(10, { replaying: { from: 5n, handoverAt: 11n } })), 'covered');
  });

  it('given a live message before the replay’s cursor or from its handover on, then it is handled (the replay does not read it)', () => {
    assert.equal(dispositionOf(live(4, { replaying: { from: 5n, handoverAt: undefined } })), 'handle');
    assert.equal(dispositionOf(live(11, { replaying: { from: 5n, handoverAt: 11n } })), 'handle');
  });

  it('given a message read again by the partition’s running replay, then it is handled, or parked when its tenant waits again', () => {
    assert.equal(dispositionOf(live(10, { replayed: 'current' })), 'handle');
    assert.equal(dispositionOf(live(10, { replayed: 'current', tenantWaits: true })), 'park');
  });

  it('given a message read by a replay that has ended, then it is passed over, even when its tenant waits', () => {
    assert.equal(dispositionOf(live(10, { replayed: 'ended' })), 'covered');
    assert.equal(dispositionOf(live(10, { replayed: 'ended', tenantWaits: true })), 'covered');
  });
});
