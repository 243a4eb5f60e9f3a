/**
 * One reconcile of one organisation: ask HubSpot what happened in the window, and hand every gap
 * (a message the rules would act on that the processor never handled) to `emit`. I/O comes in
 * as functions, so this is tested without HubSpot, Redis or Kafka.
 */
import type { HubSpotApi, HubSpotMessage } from '../../../../lib/hubspot/index.ts';
import { candidatesOf, createdAtOf, gapsOf } from './gaps.ts';
import {
  isEmptyWindow,
  pageReachesPast,
  reconcileWindow,
  type ReconcileWindow,
  type ReconcileWindowSettings,
} from './window.ts';

export type ReconcileTarget = {
  readonly orgId: string;
  readonly portalId: number;
  readonly aiActorId: string;
  /** The organisation's own interval (settings.reconcileIntervalMs); undefined: the global one. */
  readonly intervalMs?: number | undefined;
};

export type ReconcileRunDeps = {
  readonly hubspot: Pick<HubSpotApi, 'listThreadsSince' | 'listThreadMessages'>;
  /** Of these message ids, those the processor handled or is handling (dedup key set). */
  readonly handled: (orgId: string, messageIds: readonly string[]) => Promise<ReadonlySet<string>>;
  /** Writes the gaps' raw records; resolves once Kafka acknowledged them. */
  readonly emit: (gaps: readonly HubSpotMessage[]) => Promise<void>;
};

/** What one pass over a window found: the threads read, the HubSpot calls made, the gaps emitted. */
export type WindowCheck = {
  readonly threads: number;
  /** HubSpot calls made (each one slot of the portal's budget, bookkeeping class). */
  readonly hubspotCalls: number;
  readonly gaps: readonly HubSpotMessage[];
};

const byCreatedAt = (a: HubSpotMessage, b: HubSpotMessage): number =>
  (createdAtOf(a) ?? 0) - (createdAtOf(b) ?? 0);

export type ReconcileRunResult = WindowCheck & {
  readonly window: ReconcileWindow;
  /** The watermark this run earned: the window's end (never behind the previous one). */
  readonly checkedThrough: number;
};

/**
 * The scheduled run: the window from the organisation's watermark (reconcileWindow), and the
 * watermark it earns once every gap of it is emitted. Throws on the first call that fails (no
 * budget, HubSpot down): the caller keeps the old watermark and the next run repeats this one;
 * what was emitted already is `done` by then, or deduplicated if not.
 */
export const reconcileOrganisation = async (
  org: ReconcileTarget,
  checkedThrough: number | undefined,
  now: number,
  settings: ReconcileWindowSettings,
  deps: ReconcileRunDeps,
): Promise<ReconcileRunResult> => {
  const window = reconcileWindow(checkedThrough, now, settings);
  const earned = Math.max(window.to, checkedThrough ?? Number.NEGATIVE_INFINITY);
  if (isEmptyWindow(window)) return { window, checkedThrough: earned, threads: 0, hubspotCalls: 0, gaps: [] };
  return { window, checkedThrough: earned, ...(await checkWindow(org, window, deps)) };
};

/**
 * Pages through the threads active since the window's start (oldest activity first), and for
 * each, its messages newest first until a page reaches back past the window. Gaps are emitted
 * per page of threads, so a large window is not held in memory. Any window: the scheduled run's,
 * or one an operator names (`npm run reconcile`). Throws on the first call that fails.
 *
 * The next page of threads is asked from the last thread's activity on, not by HubSpot's cursor:
 * the list is sorted by latest activity and its cursor is an offset, so a thread of a page read
 * already that gets a message meanwhile moves to the end, the rest move one place up, and the
 * next offset would skip one (threads read already come again, and are skipped). By the cursor
 * only when that would not move on: a page of threads all last active in one millisecond.
 */
export const checkWindow = async (
  org: ReconcileTarget,
  window: ReconcileWindow,
  deps: ReconcileRunDeps,
): Promise<WindowCheck> => {
  let hubspotCalls = 0;
  const seenThreads = new Set<string>();
  const seenMessages = new Set<string>();
  const gaps: HubSpotMessage[] = [];
  let since = window.from;
  let threadsAfter: string | undefined;
  for (;;) {
    const threads = await deps.hubspot.listThreadsSince(since, threadsAfter);
    hubspotCalls++;
    const candidates: HubSpotMessage[] = [];
    for (const thread of threads.results) {
      // A thread that moved on while the list was paged comes again: read once.
      if (seenThreads.has(thread.id)) continue;
      seenThreads.add(thread.id);
      let messagesAfter: string | undefined;
      const threadCandidates: HubSpotMessage[] = [];
      for (;;) {
        const page = await deps.hubspot.listThreadMessages(thread.id, messagesAfter);
        hubspotCalls++;
        const messages = page.results
          .filter((message) => !seenMessages.has(message.id))
          .map((message) => ({
            ...message,
            conversationsThreadId: message.conversationsThreadId ?? thread.id,
          }));
        for (const message of messages) seenMessages.add(message.id);
        threadCandidates.push(...candidatesOf(messages, window, org));
        const oldest = page.results.at(-1);
        if (page.after === undefined || pageReachesPast(window, oldest && createdAtOf(oldest))) break;
        messagesAfter = page.after;
      }
      // Pages come newest first; a thread's gaps go to the raw topic oldest first, the order its
      // webhooks would have come in, so OpenCX gets the customer's messages in the order written.
      candidates.push(...threadCandidates.sort(byCreatedAt));
    }
    if (candidates.length > 0) {
      const handled = await deps.handled(
        org.orgId,
        candidates.map((message) => message.id),
      );
      const found = gapsOf(candidates, handled);
      if (found.length > 0) await deps.emit(found);
      gaps.push(...found);
    }
    if (threads.after === undefined) break;
    const lastActive = Date.parse(threads.results.at(-1)?.latestMessageTimestamp ?? '');
    if (Number.isFinite(lastActive) && lastActive > since) {
      since = lastActive;
      threadsAfter = undefined;
    } else threadsAfter = threads.after;
  }
  return { threads: seenThreads.size, hubspotCalls, gaps };
};
