/**
 * Which stretch of time one reconcile run checks. Pure: the watermark and the clock come in.
 *
 * - From: the watermark (every message created at or before it was checked) minus an overlap;
 *   on an organisation's first run, `now - lookback`.
 * - To: `now - settle`. A message younger than that is left to its webhook, which is normally
 *   in flight (HubSpot sends it within seconds); the next run checks it.
 */

/**
 * Checked again on every run, behind the watermark: HubSpot's thread list is a search index that
 * may show a message a little after its `createdAt`, and HubSpot's clock is not ours. A message
 * checked twice costs nothing (it is `done` the second time); one never checked is lost.
 */
export const RECONCILE_OVERLAP_MS = 120_000;

export type ReconcileWindowSettings = {
  readonly settleMs: number;
  readonly lookbackMs: number;
  readonly overlapMs?: number;
};

/** Messages created in (from, to] are checked. Empty when `to <= from`. */
export type ReconcileWindow = { readonly from: number; readonly to: number };

export const reconcileWindow = (
  checkedThrough: number | undefined,
  now: number,
  settings: ReconcileWindowSettings,
): ReconcileWindow => {
  const to = now - settings.settleMs;
  const from =
    checkedThrough === undefined
      ? now - settings.lookbackMs
      : checkedThrough - (settings.overlapMs ?? RECONCILE_OVERLAP_MS);
  return { from, to };
};

export const isEmptyWindow = (window: ReconcileWindow): boolean => window.to <= window.from;

/** Whether a message created at `createdAt` (epoch ms) is one this run checks. */
export const inWindow = (window: ReconcileWindow, createdAt: number): boolean =>
  createdAt > window.from && createdAt <= window.to;

/**
 * Whether a page of a thread's messages (newest first) reached back past the window: the pages
 * after it hold only older messages, which this run does not check.
 */
export const pageReachesPast = (window: ReconcileWindow, oldestOnPage: number | undefined): boolean =>
  oldestOnPage === undefined || oldestOnPage <= window.from;
