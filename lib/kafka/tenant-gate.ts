/**
 * Which tenants (organisations, portals) this process is waiting for, and until when: shared by
 * a service's keyed consumers (they park a waiting tenant's events) and its outside-call clients
 * (a call for a waiting tenant fails at once instead of retrying in memory).
 *
 * One gate per process; not shared between replicas: each replica learns a tenant's trouble from
 * its own calls, which costs each replica one probe.
 */
export type TenantGate = {
  /** When the tenant may be tried again (epoch ms), or undefined when it is not waited for. */
  readonly waitingUntil: (tenant: string, now?: number) => number | undefined;
  /**
   * The tenant must wait: until `untilMs` when given (a rate limit's own answer), else for a
   * back-off that doubles with each consecutive close (PARK_PROBE_INITIAL_MS .. _MAX_MS).
   * Returns the time it opens again.
   */
  readonly close: (tenant: string, reason: string, untilMs?: number, now?: number) => number;
  /**
   * How many of the tenant's messages may be in their handlers at once: unlimited normally; once
   * a wait is over, 1 (a probe), and one more for each message handled since, until
   * `rampMessages` were (slow start). A tenant back from a 429 or an outage thus meets its
   * upstream with a few calls, not a burst of them that mostly fail again, each taking the
   * process's time from the other tenants on its partitions.
   */
  readonly allowance: (tenant: string, now?: number) => number;
  /** A message of the tenant was handled: the back-off starts over, and the allowance grows. */
  readonly recovered: (tenant: string) => void;
  /** Tenants waited for now, with their reasons (for the metrics gauge). */
  readonly waiting: (now?: number) => { tenant: string; reason: string; untilMs: number }[];
};

export type TenantGateOptions = {
  readonly initialBackoffMs?: number;
  readonly maxBackoffMs?: number;
  /** Messages handled after a wait before the allowance is lifted (default 64). */
  readonly rampMessages?: number;
};

/** `successes`: messages handled since the last wait ended (the slow start's progress). */
type Entry = { untilMs: number; reason: string; closes: number; successes: number };

export const createTenantGate = (options: TenantGateOptions = {}): TenantGate => {
  const initial = options.initialBackoffMs ?? 2000;
  const max = options.maxBackoffMs ?? 60_000;
  const ramp = options.rampMessages ?? 64;
  const entries = new Map<string, Entry>();
  return {
    waitingUntil: (tenant, now = Date.now()) => {
      const entry = entries.get(tenant);
      return entry && entry.untilMs > now ? entry.untilMs : undefined;
    },
    close: (tenant, reason, untilMs, now = Date.now()) => {
      const entry = entries.get(tenant) ?? { untilMs: 0, reason, closes: 0, successes: 0 };
      if (entry.untilMs <= now) {
        // A new window: the wait doubles with each one (a probe that failed again).
        entry.closes++;
        entry.successes = 0;
        const backoff = Math.min(max, initial * 2 ** (entry.closes - 1));
        entry.untilMs = untilMs ?? now + backoff;
      } else if (untilMs !== undefined) {
        // Already closed (other conversations of the same outage): only a later stated time extends it.
        entry.untilMs = Math.max(entry.untilMs, untilMs);
      }
      entry.reason = reason;
      entries.set(tenant, entry);
      return entry.untilMs;
    },
    allowance: (tenant, now = Date.now()) => {
      const entry = entries.get(tenant);
      if (entry === undefined) return Number.POSITIVE_INFINITY;
      return entry.untilMs <= now ? 1 + entry.successes : 0;
    },
    recovered: (tenant) => {
      const entry = entries.get(tenant);
      if (!entry) return;
      entry.closes = 0;
      if (++entry.successes >= ramp) entries.delete(tenant);
    },
    waiting: (now = Date.now()) =>
      [...entries]
        .filter(([, entry]) => entry.untilMs > now)
        .map(([tenant, entry]) => ({ tenant, reason: entry.reason, untilMs: entry.untilMs })),
  };
};
