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
  /** A call for the tenant succeeded: back-off reset, no longer probing. */
  readonly recovered: (tenant: string) => void;
  /**
   * True while the tenant's last outcome was a close with no success since: the next call is a
   * probe, and gets one attempt rather than the full in-memory retry budget.
   */
  readonly probing: (tenant: string) => boolean;
  /** Tenants waited for now, with their reasons (for the metrics gauge). */
  readonly waiting: (now?: number) => { tenant: string; reason: string; untilMs: number }[];
};

export type TenantGateOptions = {
  readonly initialBackoffMs?: number;
  readonly maxBackoffMs?: number;
};

type Entry = { untilMs: number; reason: string; closes: number };

export const createTenantGate = (options: TenantGateOptions = {}): TenantGate => {
  const initial = options.initialBackoffMs ?? 2000;
  const max = options.maxBackoffMs ?? 60_000;
  const entries = new Map<string, Entry>();
  return {
    waitingUntil: (tenant, now = Date.now()) => {
      const entry = entries.get(tenant);
      return entry && entry.untilMs > now ? entry.untilMs : undefined;
    },
    close: (tenant, reason, untilMs, now = Date.now()) => {
      const entry = entries.get(tenant) ?? { untilMs: 0, reason, closes: 0 };
      // Closes by many conversations of one outage count once per window, not once each.
      if (entry.untilMs <= now) entry.closes++;
      const backoff = Math.min(max, initial * 2 ** Math.max(0, entry.closes - 1));
      entry.untilMs = Math.max(entry.untilMs, untilMs ?? now + backoff);
      entry.reason = reason;
      entries.set(tenant, entry);
      return entry.untilMs;
    },
    recovered: (tenant) => {
      entries.delete(tenant);
    },
    probing: (tenant) => entries.has(tenant),
    waiting: (now = Date.now()) =>
      [...entries]
        .filter(([, entry]) => entry.untilMs > now)
        .map(([tenant, entry]) => ({ tenant, reason: entry.reason, untilMs: entry.untilMs })),
  };
};
