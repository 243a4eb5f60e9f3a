/** What `npm run reconcile` prints on stdout: one line per gap, then what was done. Pure. */
import type { HubSpotMessage } from '../../lib/hubspot/index.ts';
import type { LeaseHolder, ReconcileNowResult, ReconcileProgress } from './run.ts';

const TEXT_CHARS = 60;

const iso = (ms: number): string => new Date(ms).toISOString();

/** The start of a message's text on one line, quoted (JSON string escapes). */
export const textPreview = (text: string | null | undefined): string => {
  const flat = (text ?? '').replace(/\s+/g, ' ').trim();
  return JSON.stringify(flat.length > TEXT_CHARS ? `${flat.slice(0, TEXT_CHARS - 1)}…` : flat);
};

export const gapLine = (message: HubSpotMessage, dryRun: boolean): string =>
  [
    dryRun ? 'would write' : 'wrote',
    `message ${message.id}`,
    `thread ${message.conversationsThreadId ?? '?'}`,
    `created ${message.createdAt ?? '?'}`,
    textPreview(message.text),
  ].join('  ');

export const counts = (progress: ReconcileProgress): string =>
  `${progress.threads} thread${progress.threads === 1 ? '' : 's'}, ${progress.messages} message${progress.messages === 1 ? '' : 's'} read, ${progress.gaps} gap${progress.gaps === 1 ? '' : 's'} (HubSpot calls: ${progress.hubspotCalls})`;

export const formatReport = (
  result: Extract<ReconcileNowResult, { kind: 'checked' }>,
  org: { readonly orgId: string; readonly portalId: number },
  rawTopic: string,
): string => {
  const lines = [
    `organisation ${org.orgId} (portal ${org.portalId}): messages created after ${iso(result.window.from)} up to ${iso(result.window.to)}`,
    ...result.gapMessages.map((message) => gapLine(message, result.dryRun)),
    counts(result),
  ];
  if (result.gaps === 0) lines.push('no message was missed: nothing to write');
  else if (result.dryRun)
    lines.push(`dry run: would write ${result.gaps} record(s) to ${rawTopic}; nothing written`);
  else
    lines.push(
      `wrote ${result.written} record(s) to ${rawTopic} (header reconciled: 1): the processor handles them like webhooks`,
    );
  return `${lines.join('\n')}\n`;
};

/** The lease is another run's: who holds it and what to do. */
export const leasedLine = (orgId: string, holder: LeaseHolder | undefined): string =>
  holder === undefined
    ? `organisation ${orgId} was being reconciled a moment ago (its lease was taken); run this again`
    : `organisation ${orgId} is being reconciled now by ${holder.owner} (its lease runs out in ${Math.ceil(holder.remainingMs / 1000)} s unless that run renews it): wait for that run to end, then run this again`;
