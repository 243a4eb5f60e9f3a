import type { KafkaMessage } from 'kafkajs';
import { DeadLetterReason } from '../../dead-letters/index.ts';
import { CommittedCursors } from './committed-cursors.ts';
import { dispositionOf, type Disposition } from './disposition.ts';
import { finishedRun, type Tracked } from './offset-tracking.ts';
import { DEFAULT_MAX_TENANT_WAIT_MS, TENANT_CONCURRENCY, type TenantParking } from './options.ts';
import type { DeadLetterOutcome, WaitForTenant } from './outcome-runner.ts';
import { cursorCommitPoint, cursorsOf } from './parking-cursors.ts';
import type { Parking, ParkingHost } from './parking.ts';
import { ReplayReader } from './replay-reader.ts';
import type { PartitionState, Work } from './state.ts';
import { TenantSlots } from './tenant-slots.ts';

/**
 * Parking for a consumer given a TenantParking (see there): a tenant that must wait has its
 * messages committed past and read again later, in order, by the replay reader; the parked
 * tenants' cursors travel in the commit's metadata.
 */
export const createTenantParking = (parking: TenantParking, host: ParkingHost): Parking => {
  const { gate, tenantOf } = parking;
  const { logger, observer, now } = host.settings;
  const maxWaitMs = parking.maxWaitMs ?? DEFAULT_MAX_TENANT_WAIT_MS;
  const committed = new CommittedCursors(parking.kafka, parking.groupId, logger, host.settings.sleep);

  /** The tenant's messages from `offset` on (or from its earlier cursor) are to be read again. */
  const park = (state: PartitionState, tenant: string, offset: bigint): void => {
    const entry = state.parked.get(tenant);
    if (entry) {
      if (offset < entry.from) entry.from = offset;
      return;
    }
    state.parked.set(tenant, { from: offset });
    if (!state.waitingSince.has(tenant)) state.waitingSince.set(tenant, now());
    logger.warn(
      {
        topic: state.topic,
        partition: state.partition,
        tenant,
        from: offset.toString(),
        until: new Date(gate.waitingUntil(tenant, now()) ?? now()).toISOString(),
      },
      'tenant parked: its messages leave memory and are read again, in order, when it can take them',
    );
  };
  const replays = new ReplayReader(parking, host, park);

  /**
   * How many of the tenant's messages may be in its handler at once: TENANT_CONCURRENCY, or
   * fewer while its gate's slow start runs (one probe after a wait, one more per success).
   */
  const slots = new TenantSlots((tenant) =>
    Math.min(TENANT_CONCURRENCY, Math.max(1, gate.allowance(tenant, now()))),
  );

  const disposition = (work: Work, tenant: string): Disposition => {
    const { state } = work;
    const replay = state.replay;
    const from = work.replay ? undefined : replay?.tenants.get(tenant);
    return dispositionOf({
      offset: work.tracked.offset,
      tenantWaits: gate.waitingUntil(tenant, now()) !== undefined || state.parked.has(tenant),
      replayed: work.replay ? (work.replay === replay ? 'current' : 'ended') : undefined,
      replaying: replay && from !== undefined ? { from, handoverAt: replay.handoverAt } : undefined,
    });
  };

  /** Parked or passed over (a replay has it), without a handler call. */
  const settleWithout = (work: Work, tenant: string): boolean => {
    if (disposition(work, tenant) === 'park') {
      park(work.state, tenant, work.tracked.offset);
      observer.parked?.('tenant_waiting');
    }
    return true;
  };

  return {
    start: async () => {
      await committed.connect();
      replays.start();
    },
    stop: async () => {
      await Promise.allSettled([replays.stop(), committed.disconnect()]);
    },
    assigned: (assignment) => {
      committed.forget();
      void replays.pause();
      // Parked tenants of a partition with no new traffic are read again all the same.
      for (const [topic, partitions] of Object.entries(assignment))
        for (const partition of partitions) void host.stateFor(topic, partition);
    },
    restore: (topic, partition) => committed.of(topic, partition),
    adopt: (state) => committed.adopt(state),
    /**
     * A parked tenant's message whose conversation has nothing in memory is parked as it arrives,
     * with no queue and no handler slot: what its queue head would decide, without the cost (a
     * 50,000-event backlog of a throttled portal is passed in milliseconds, not one queue each).
     */
    parkOnArrival: (state: PartitionState, message: KafkaMessage, tracked: Tracked) => {
      const tenant = tenantOf(message);
      if (tenant === undefined || state.replay?.tenants.has(tenant)) return false;
      if (!state.parked.has(tenant) && gate.waitingUntil(tenant, now()) === undefined) return false;
      park(state, tenant, tracked.offset);
      tracked.done = true;
      observer.parked?.('tenant_waiting');
      return true;
    },
    settle: async (work, run) => {
      const tenant = tenantOf(work.message);
      if (tenant === undefined) return run(undefined);
      // A tenant's conversations take at most TENANT_CONCURRENCY handler slots at a time: a burst
      // of one tenant's new conversations (each its own queue) must not all call its failing
      // upstream at once before the first answer parks the tenant; behind the slots they are
      // parked without a call. Decided again after the wait: the tenant may be parked by then.
      if (disposition(work, tenant) === 'handle') await slots.acquire(tenant);
      else return settleWithout(work, tenant);
      try {
        if (!host.current(work)) return false;
        if (disposition(work, tenant) !== 'handle') return settleWithout(work, tenant);
        return await run(tenant);
      } finally {
        slots.release(tenant);
      }
    },
    /**
     * Parks the tenant, or waits in memory when the record has no tenant, or says to dead-letter
     * the message when its tenant has waited longer than maxWaitMs with nothing handled since.
     */
    waitForTenant: (
      work: Work,
      tenant: string | undefined,
      outcome: WaitForTenant,
    ): 'parked' | 'in-memory' | DeadLetterOutcome => {
      if (tenant === undefined) return 'in-memory';
      const since = work.state.waitingSince.get(tenant) ?? now();
      if (now() - since > maxWaitMs) {
        return {
          kind: 'dead-letter',
          reason: DeadLetterReason.retriesExhausted,
          error: `tenant ${tenant} has waited since ${new Date(since).toISOString()} (more than ${maxWaitMs} ms) with this message first in line: ${outcome.reason}`,
          attempts: 1,
          orgId: null,
          eventType: null,
          eventId: null,
        };
      }
      const wasWaiting = gate.waitingUntil(tenant, now()) !== undefined;
      const until = gate.close(tenant, outcome.reason, outcome.untilMs, now());
      if (!wasWaiting)
        logger.warn(
          { tenant, reason: outcome.reason, until: new Date(until).toISOString() },
          'tenant must wait: its messages are parked until then',
        );
      work.state.waitingSince.set(tenant, since);
      park(work.state, tenant, work.tracked.offset);
      observer.parked?.(outcome.reason);
      return 'parked';
    },
    ended: (work, tenant, kind) => {
      work.state.waitingSince.delete(tenant);
      if (kind === 'done') gate.recovered(tenant);
    },
    commitPoint: (state, next) => {
      const replay = state.replay;
      // Finished replayed messages are done with: the cursors only need the first unfinished one.
      if (replay) replay.entries.splice(0, finishedRun(replay.entries).count);
      return cursorCommitPoint(next, cursorsOf(state.parked, replay), state.waitingSince, now());
    },
    replayReleased: (work, replay) => replays.released(work.state, replay),
  };
};
