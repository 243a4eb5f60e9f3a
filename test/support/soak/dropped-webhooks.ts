// The soak's fault kind `drop`: HubSpot never delivers the webhook of some customer messages (it
// gave up after its retries, or never sent it), while the messages stay in HubSpot, where the
// processor's reconciler (issue 23) finds them in the thread list. The parts without I/O: which
// messages, the reconciler's settings in a soak, how long the drain may wait for its last run,
// and which organisations it still waits for. Unit-tested (test/unit/soak-dropped-webhooks.unit.spec.ts);
// run-soak.ts drops the webhooks, verify.ts counts the messages as expected at OpenCX.
import { seededRandom } from './load.ts';

/** The share of droppable messages whose webhook never comes. */
export const DROP_SHARE = 0.05;

/**
 * What may be dropped: a customer's message on a conversation that already has its session
 * (`email` is the label of one on an email conversation). Not a conversation's first message:
 * without its session the thread's rep replies, ticket changes and notes are skipped by the rules
 * until the reconciler brings it (`no_linked_session`), which the verdict cannot expect one by
 * one; nor a rep's reply or comment (the reconciler would find those too: left for later).
 */
export const DROPPABLE_LABELS: ReadonlySet<string> = new Set(['customer-chat', 'email']);

/**
 * Whether the webhook of the load's `seq`-th event is dropped: a function of the seed and the
 * event alone (not of how many events came before it, which the machine's speed moves), so a
 * seed drops the same messages whenever the load offers them.
 */
export const dropsWebhook = (
  seed: number,
  event: { readonly seq: number; readonly label: string },
  share: number = DROP_SHARE,
): boolean =>
  DROPPABLE_LABELS.has(event.label) &&
  seededRandom(seed ^ 0xd209 ^ Math.imul(event.seq, 0x9e3779b1))() < share;

/**
 * The reconciler's settings in a soak (RECONCILE_INTERVAL_MS, RECONCILE_SETTLE_MS of the
 * processors). The defaults (5 minutes, 1 minute) would reconcile a 10-minute run twice and
 * leave the last minutes' drops to a drain of over 6 minutes. 30 s gives about 20 runs per
 * organisation in 10 minutes, so most drops are recovered while the load and the other faults
 * go on (what is tested), and one after the last drop comes within a bounded drain. 10 s of
 * settle is about twice the slowest path a delivered webhook normally takes to its dedup claim
 * in a soak (a killed processor's partitions move after the 6 s session timeout); a webhook
 * slower than that (a processor killed and restarting, a parked organisation) makes its message
 * a gap too, which the processor's dedup absorbs: it costs a raw record, not an effect.
 */
export const SOAK_RECONCILE = { intervalMs: 30_000, settleMs: 10_000 } as const;

/** How often a reconciler looks for due organisations (reconciler.ts: the interval, at most 10 s). */
const reconcileTickMs = (intervalMs: number): number => Math.max(100, Math.min(intervalMs, 10_000));

/**
 * How long the drain may wait, from the load's end, for a completed reconcile of every
 * organisation past its last dropped message: the message settles, the organisation falls due
 * (an interval) and a tick finds it; twice more a run may be deferred for lack of budget (made
 * again 30 s or an interval later), and the last run and the pipeline behind it take their time.
 */
export const reconcileDrainAllowanceMs = (settings: {
  readonly intervalMs: number;
  readonly settleMs: number;
}): number =>
  settings.settleMs +
  settings.intervalMs +
  reconcileTickMs(settings.intervalMs) +
  2 * Math.min(settings.intervalMs, 30_000) +
  30_000;

/**
 * The organisations whose reconcile watermark (every message created at or before it was checked)
 * is not yet at their last dropped message: the drain waits for them. `watermarks`: the furthest
 * any processor replica reports per organisation (absent: never completed a run).
 */
export const uncoveredDrops = (
  lastDropAt: ReadonlyMap<string, number>,
  watermarks: ReadonlyMap<string, number>,
): string[] =>
  [...lastDropAt]
    .filter(([orgId, droppedAt]) => (watermarks.get(orgId) ?? Number.NEGATIVE_INFINITY) < droppedAt)
    .map(([orgId]) => orgId)
    .sort();

/**
 * Each organisation's reconcile watermark from a processor's /metrics text
 * (`processor_reconcile_watermark_age_seconds{org_id="…"} age`, read at `scrapedAt`).
 */
export const watermarksFromMetrics = (metrics: string, scrapedAt: number): Map<string, number> => {
  const watermarks = new Map<string, number>();
  for (const match of metrics.matchAll(
    /^processor_reconcile_watermark_age_seconds\{[^}]*org_id="([^"]+)"[^}]*\} ([0-9.e+-]+)$/gm,
  )) {
    const [, orgId, age] = match;
    if (orgId !== undefined && age !== undefined && Number.isFinite(Number(age)))
      watermarks.set(orgId, scrapedAt - Math.round(Number(age) * 1000));
  }
  return watermarks;
};

/** The furthest watermark per organisation over several replicas' views. */
export const furthestWatermarks = (views: readonly ReadonlyMap<string, number>[]): Map<string, number> => {
  const furthest = new Map<string, number>();
  for (const view of views)
    for (const [orgId, at] of view) furthest.set(orgId, Math.max(furthest.get(orgId) ?? at, at));
  return furthest;
};

/**
 * A processor's reconcile runs by outcome, from its /metrics text
 * (`processor_reconcile_runs_total{outcome="…",…} n`; the registry adds labels of its own).
 */
export const reconcileRunsFromMetrics = (
  metrics: string,
): { completed: number; deferred: number; failed: number } => {
  const runs = { completed: 0, deferred: 0, failed: 0 };
  for (const match of metrics.matchAll(
    /^processor_reconcile_runs_total\{[^}]*outcome="(completed|deferred|failed)"[^}]*\} ([0-9.e+]+)$/gm,
  )) {
    const [, outcome, count] = match;
    if (outcome === 'completed' || outcome === 'deferred' || outcome === 'failed')
      runs[outcome] += Number(count);
  }
  return runs;
};
