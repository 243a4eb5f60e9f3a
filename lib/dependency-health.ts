import type { Admin } from 'kafkajs';
import { describeError } from './errors.ts';
import { createKafka } from './kafka/index.ts';
import type { Logger } from './log.ts';
import type { Redis } from './redis.ts';
import { withTimeout } from './timeout.ts';

/**
 * Whether this replica can reach what its data path needs (Redis, Kafka). A dependency that
 * stays unreachable longer than the grace period makes the replica not ready: it then leaves
 * its consumer groups so that Kafka gives its partitions to a replica that can work them,
 * instead of holding them and stalling every conversation on them. A blip shorter than the
 * grace period changes nothing (leaving costs a rebalance).
 */
export type DependencyName = 'redis' | 'kafka';

export type DependencyReport = {
  readonly reachable: boolean;
  /** Since when it has been unreachable (epoch ms), while it is. */
  readonly unreachableSince?: number;
  readonly error?: string;
};

export type Readiness = {
  readonly ready: boolean;
  readonly dependencies: Readonly<Record<string, DependencyReport>>;
};

type State = { reachable: boolean; since: number; error: string | undefined };

export class DependencyHealth {
  readonly #graceMs: number;
  readonly #now: () => number;
  readonly #logger: Logger;
  readonly #states = new Map<DependencyName, State>();
  readonly #listeners = new Set<(ready: boolean) => void>();
  #ready = true;

  constructor(options: { graceMs: number; logger: Logger; now?: () => number }) {
    this.#graceMs = options.graceMs;
    this.#logger = options.logger;
    this.#now = options.now ?? Date.now;
  }

  get ready(): boolean {
    return this.#ready;
  }

  onChange(listener: (ready: boolean) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** What a watcher saw. Only changes are logged. */
  report(name: DependencyName, reachable: boolean, error?: unknown): void {
    const previous = this.#states.get(name);
    if (previous?.reachable === reachable) return;
    const message = reachable ? undefined : describeError(error ?? 'unreachable');
    this.#states.set(name, { reachable, since: this.#now(), error: message });
    if (previous !== undefined) {
      if (reachable) this.#logger.info({ dependency: name }, `${name} reachable`);
      else this.#logger.warn({ dependency: name, error: message }, `${name} unreachable`);
    }
    this.evaluate();
  }

  /** Re-reads the clock: a dependency may just have outlasted the grace period. */
  evaluate(): void {
    const now = this.#now();
    const expired = [...this.#states].filter(
      ([, state]) => !state.reachable && now - state.since >= this.#graceMs,
    );
    const ready = expired.length === 0;
    if (ready === this.#ready) return;
    this.#ready = ready;
    if (ready) this.#logger.info('dependencies reachable again: ready, rejoining the consumer groups');
    else
      this.#logger.warn(
        { dependencies: expired.map(([name]) => name), graceMs: this.#graceMs },
        'dependency unreachable for longer than the grace period: not ready, leaving the consumer groups',
      );
    for (const listener of this.#listeners) listener(ready);
  }

  readiness(): Readiness {
    const dependencies: Record<string, DependencyReport> = {};
    for (const [name, state] of this.#states) {
      dependencies[name] = state.reachable
        ? { reachable: true }
        : {
            reachable: false,
            unreachableSince: state.since,
            ...(state.error === undefined ? {} : { error: state.error }),
          };
    }
    return { ready: this.#ready, dependencies };
  }
}

/** Resolves with `work`'s outcome, or rejects after `ms` (the work itself cannot be cancelled). */
const within = <T>(work: Promise<T>, ms: number, what: string): Promise<T> =>
  withTimeout(work, ms, `${what}: no answer within ${ms} ms`);

/**
 * Redis: ioredis's connection events say at once when the connection drops or comes back; a
 * periodic PING catches a connection that hangs without closing (a dead peer, a partition).
 */
export const watchRedis = (
  redis: Redis,
  health: DependencyHealth,
  options: { intervalMs: number },
): (() => void) => {
  const onReady = (): void => health.report('redis', true);
  const onError = (error: unknown): void => health.report('redis', false, error);
  const onClose = (): void => health.report('redis', false, 'connection closed');
  redis.on('ready', onReady);
  redis.on('error', onError);
  redis.on('close', onClose);
  let pinging = false;
  const timer = setInterval(() => {
    if (pinging) return;
    pinging = true;
    within(redis.ping(), probeTimeoutFor(options.intervalMs, 2000), 'Redis PING')
      .then(onReady, onError)
      .finally(() => {
        pinging = false;
        health.evaluate();
      });
  }, options.intervalMs);
  timer.unref();
  return () => {
    clearInterval(timer);
    redis.off('ready', onReady);
    redis.off('error', onError);
    redis.off('close', onClose);
  };
};

/**
 * Kafka: a periodic describeCluster on an admin client of its own (no retries: each tick is
 * one probe), which reconnects after a failure. Its kafkajs log lines would repeat every tick
 * while the broker is away; the health's own line says it once.
 */
export const watchKafka = (
  admin: Admin,
  health: DependencyHealth,
  options: { intervalMs: number },
): (() => Promise<void>) => {
  let connected = false;
  let probing = false;
  const probe = async (): Promise<void> => {
    try {
      if (!connected) {
        await within(admin.connect(), probeTimeoutFor(options.intervalMs, 5000), 'Kafka connect');
        connected = true;
      }
      await within(
        admin.describeCluster(),
        probeTimeoutFor(options.intervalMs, 5000),
        'Kafka describeCluster',
      );
      health.report('kafka', true);
    } catch (error) {
      health.report('kafka', false, error);
      connected = false;
      await admin.disconnect().catch(() => undefined);
    }
  };
  const timer = setInterval(() => {
    if (probing) return;
    probing = true;
    void probe().finally(() => {
      probing = false;
      health.evaluate();
    });
  }, options.intervalMs);
  timer.unref();
  return async () => {
    clearInterval(timer);
    await admin.disconnect().catch(() => undefined);
  };
};

/**
 * How long one probe may take before it counts as a failure: never less than `floorMs`, however
 * often probes run. A busy process or broker answers a PING or describeCluster late, not never;
 * with a timeout as short as the probe interval (0.4 s at a 2 s grace), a loaded machine would
 * make a healthy replica leave its group again and again.
 */
export const probeTimeoutFor = (intervalMs: number, floorMs: number): number =>
  Math.max(floorMs, intervalMs * 2);

/** How often dependencies are probed: a few times per grace period, between 0.2 and 2 s. */
export const probeIntervalFor = (graceMs: number): number =>
  Math.max(200, Math.min(2000, Math.floor(graceMs / 5)));

/** Watches the Redis client and the brokers a service uses; `stop` ends the probes. */
export const watchDependencies = (options: {
  readonly redis: Redis;
  readonly brokers: readonly string[];
  readonly clientId: string;
  readonly graceMs: number;
  readonly logger: Logger;
}): { readonly health: DependencyHealth; readonly stop: () => Promise<void> } => {
  const health = new DependencyHealth({ graceMs: options.graceMs, logger: options.logger });
  const intervalMs = probeIntervalFor(options.graceMs);
  const admin = createKafka({
    clientId: `${options.clientId}-health`,
    brokers: options.brokers,
    logger: options.logger.child({}, { level: 'silent' }),
  }).admin({ retry: { retries: 0 } });
  const stopRedis = watchRedis(options.redis, health, { intervalMs });
  const stopKafka = watchKafka(admin, health, { intervalMs });
  return {
    health,
    stop: async () => {
      stopRedis();
      await stopKafka();
    },
  };
};

/** What stepping aside acts on: a service's consumer(s), as one unit. */
export type GroupMember = { readonly start: () => Promise<void>; readonly stop: () => Promise<void> };

export type GroupMembership = {
  /** The first join: a failure here is a start-up failure, and stays loud. */
  readonly start: () => Promise<void>;
  readonly stop: () => Promise<void>;
  readonly joined: boolean;
};

/**
 * Keeps a service in its consumer groups while its dependencies are reachable: leaves (stops
 * the member, so Kafka moves its partitions) when the health turns not ready, and joins again
 * with a freshly built member when it is ready (a kafkajs consumer that has disconnected is not
 * reused). Transitions run one at a time; a failed rejoin is tried again every `retryMs`.
 */
export const createGroupMembership = (options: {
  readonly join: () => GroupMember;
  readonly health: DependencyHealth;
  readonly logger: Logger;
  readonly retryMs?: number;
  /** A leave that hangs (Kafka gone) is abandoned after this; the broker drops us on its own. */
  readonly leaveTimeoutMs?: number;
}): GroupMembership => {
  const { logger, health } = options;
  const leaveTimeoutMs = options.leaveTimeoutMs ?? 15000;
  let member: GroupMember | undefined;
  let stopped = false;
  let transitions: Promise<void> = Promise.resolve();
  let timer: NodeJS.Timeout | undefined;

  const leave = async (leaving: GroupMember): Promise<void> => {
    await within(leaving.stop(), leaveTimeoutMs, 'leaving the consumer group').catch((error: unknown) =>
      logger.warn({ error: describeError(error) }, 'consumer did not stop cleanly'),
    );
  };

  const step = async (): Promise<void> => {
    const wanted = !stopped && health.ready;
    if (wanted && member === undefined) {
      const candidate = options.join();
      try {
        await candidate.start();
        member = candidate;
        logger.info('joined the consumer groups');
      } catch (error) {
        logger.warn({ error: describeError(error) }, 'could not join the consumer groups; will retry');
        await leave(candidate);
      }
    } else if (!wanted && member !== undefined) {
      const leaving = member;
      member = undefined;
      await leave(leaving);
      if (!stopped) logger.warn('left the consumer groups: their partitions move to other replicas');
    }
  };
  const reconcile = (): Promise<void> =>
    (transitions = transitions.then(step).catch((error: unknown) => {
      logger.error({ error: describeError(error) }, 'consumer group transition failed; will retry');
    }));

  return {
    start: async () => {
      const first = options.join();
      await first.start();
      member = first;
      health.onChange(() => void reconcile());
      timer = setInterval(() => void reconcile(), options.retryMs ?? 1000);
      timer.unref();
    },
    stop: async () => {
      stopped = true;
      clearInterval(timer);
      await reconcile();
    },
    get joined() {
      return member !== undefined;
    },
  };
};

/** GET /readyz: ready while every dependency is within its grace period and the groups are joined. */
export const readinessProbe =
  (health: DependencyHealth, membership: GroupMembership) => (): Readiness & { readonly detail?: string } => {
    const { ready, dependencies } = health.readiness();
    if (!ready)
      return {
        ready: false,
        dependencies,
        detail: 'a dependency has been unreachable past DEPENDENCY_GRACE_MS: out of the consumer groups',
      };
    if (!membership.joined)
      return { ready: false, dependencies, detail: 'not in the consumer groups (joining or stopping)' };
    return { ready: true, dependencies };
  };
