import assert from 'node:assert/strict';
import {
  DependencyHealth,
  createGroupMembership,
  probeIntervalFor,
  probeTimeoutFor,
  readinessProbe,
  type GroupMember,
} from '../../lib/dependency-health.ts';
import { createLogger } from '../../lib/log.ts';

const logger = createLogger('test', 'silent');

const until = async (what: string, check: () => boolean, timeoutMs = 2000): Promise<void> => {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
};

describe('dependency health: stepping aside when Redis or Kafka is gone', () => {
  let clock = 0;
  const health = () => new DependencyHealth({ graceMs: 15000, logger, now: () => clock });
  beforeEach(() => {
    clock = 1_000_000;
  });

  it('given Redis unreachable for less than the grace period, when evaluated, then the replica stays ready', () => {
    const watched = health();
    watched.report('redis', true);
    watched.report('redis', false, new Error('connect ECONNREFUSED'));
    clock += 14999;
    watched.evaluate();
    assert.equal(watched.ready, true);
  });

  it('given Redis unreachable past the grace period, when evaluated, then not ready, listeners told once, and the error is reported', () => {
    const watched = health();
    const told: boolean[] = [];
    watched.onChange((ready) => told.push(ready));
    watched.report('kafka', true);
    watched.report('redis', false, new Error('connect ECONNREFUSED'));
    clock += 15000;
    watched.evaluate();
    watched.evaluate();
    assert.equal(watched.ready, false);
    assert.deepEqual(told, [false]);
    const { dependencies } = watched.readiness();
    assert.deepEqual(dependencies.kafka, { reachable: true });
    assert.equal(dependencies.redis?.reachable, false);
    assert.match(dependencies.redis?.error ?? '', /ECONNREFUSED/);
  });

  it('given repeated failures, when reported, then the outage counts from the first one', () => {
    const watched = health();
    watched.report('redis', false, 'down');
    clock += 10000;
    watched.report('redis', false, 'still down');
    clock += 5000;
    watched.evaluate();
    assert.equal(watched.ready, false);
  });

  it('given a dependency back after the replica stepped aside, when reported, then ready again', () => {
    const watched = health();
    const told: boolean[] = [];
    watched.onChange((ready) => told.push(ready));
    watched.report('redis', false, 'down');
    clock += 20000;
    watched.evaluate();
    watched.report('redis', true);
    assert.equal(watched.ready, true);
    assert.deepEqual(told, [false, true]);
  });

  it('given grace periods, when the probe interval is derived, then it is a fifth of the grace within 0.2 to 2 s', () => {
    assert.deepEqual([500, 2000, 15000, 60000].map(probeIntervalFor), [200, 400, 2000, 2000]);
  });

  it('regression (CI): given a short grace, when a probe timeout is derived, then it is never shorter than its floor (a loaded machine answers late, not never)', () => {
    assert.equal(probeTimeoutFor(probeIntervalFor(2000), 2000), 2000);
    assert.equal(probeTimeoutFor(probeIntervalFor(2000), 5000), 5000);
    assert.equal(probeTimeoutFor(probeIntervalFor(60000), 2000), 4000);
  });
});

describe('group membership: leave when not ready, rejoin with a new consumer when ready', () => {
  let clock = 0;
  const events: string[] = [];
  const member = (name: string, options: { failStart?: boolean } = {}): GroupMember => ({
    start: async () => {
      events.push(`start ${name}`);
      if (options.failStart) throw new Error('broker not ready');
    },
    stop: async () => {
      events.push(`stop ${name}`);
    },
  });
  beforeEach(() => {
    clock = 0;
    events.length = 0;
  });

  it('given a joined replica, when Redis stays unreachable and then returns, then it leaves and rejoins with a new member', async () => {
    const health = new DependencyHealth({ graceMs: 1000, logger, now: () => clock });
    let built = 0;
    const membership = createGroupMembership({
      join: () => member(`#${++built}`),
      health,
      logger,
      retryMs: 10,
    });
    await membership.start();
    const probe = readinessProbe(health, membership);
    assert.equal(probe().ready, true);

    health.report('redis', false, 'down');
    clock += 1000;
    health.evaluate();
    await until('the member to leave', () => !membership.joined);
    assert.equal(probe().ready, false);
    assert.deepEqual(events, ['start #1', 'stop #1']);

    health.report('redis', true);
    await until('a new member to join', () => membership.joined);
    assert.deepEqual(events, ['start #1', 'stop #1', 'start #2']);
    assert.equal(probe().ready, true);
    await membership.stop();
    assert.deepEqual(events, ['start #1', 'stop #1', 'start #2', 'stop #2']);
  });

  it('given a rejoin that fails, when retried, then the failed member is stopped and a new one joins', async () => {
    const health = new DependencyHealth({ graceMs: 1000, logger, now: () => clock });
    let built = 0;
    const membership = createGroupMembership({
      join: () => {
        built++;
        return member(`#${built}`, { failStart: built === 2 });
      },
      health,
      logger,
      retryMs: 10,
    });
    await membership.start();
    health.report('kafka', false, 'down');
    clock += 1000;
    health.evaluate();
    await until('the member to leave', () => !membership.joined);
    health.report('kafka', true);
    await until('the third member to join', () => membership.joined);
    assert.deepEqual(events, ['start #1', 'stop #1', 'start #2', 'stop #2', 'start #3']);
    await membership.stop();
  });
});
