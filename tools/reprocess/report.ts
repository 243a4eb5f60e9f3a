/** The summary a person reads after `npm run reprocess`. */
import { Change } from './compare.ts';
import type { ReprocessReport } from './run.ts';

const MAX_DETAIL_LINES = 50;

const plural = (n: number, noun: string): string => `${n} ${noun}${n === 1 ? '' : 's'}`;

const when = (ms: number | undefined): string => (ms === undefined ? 'now' : new Date(ms).toISOString());

const byDetail = (report: ReprocessReport, change: Change): string => {
  const counts = new Map<string, number>();
  for (const { compared } of report.events) {
    if (compared.change !== change) continue;
    const label =
      change === Change.newEffect || change === Change.unchanged
        ? compared.newEvents.map((event) => event.type).join('+') || 'already on the topic'
        : ((compared.detail ?? '-').split(':')[0] ?? '-');
    counts.set(label, (counts.get(label) ?? 0) + 1);
  }
  return [...counts]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([label, count]) => `${label} ${count}`)
    .join(', ');
};

export const formatReport = (report: ReprocessReport, domainTopic: string): string => {
  const lines: string[] = [];
  lines.push(
    `reprocessed organisation ${report.orgId}, raw events from ${when(report.window.since)} to ${when(report.window.until)}${report.dryRun ? ' (dry run)' : ''}`,
  );
  lines.push(
    `read ${plural(report.rawScanned, 'raw record')} (${report.events.length} of ${report.orgId}) and ${plural(report.domainScanned, 'domain record')} since the window's start (${plural(report.domainEventsOfOrg, 'event')} of ${report.orgId})`,
  );
  if (report.events.length === 0) {
    lines.push(
      `no raw events of ${report.orgId} in this window: nothing to reprocess (check --since/--until)`,
    );
    return `${lines.join('\n')}\n`;
  }
  const rows = Object.values(Change).map((change) => [
    change,
    String(report.counts[change]),
    byDetail(report, change),
  ]);
  const width = Math.max(...rows.map(([change]) => (change ?? '').length), 'outcome'.length);
  const countWidth = Math.max(...rows.map(([, count]) => (count ?? '').length), 'raw events'.length);
  lines.push('');
  lines.push(`${'outcome'.padEnd(width)}  ${'raw events'.padStart(countWidth)}  detail`);
  for (const [change = '', count = '', detail = ''] of rows)
    lines.push(`${change.padEnd(width)}  ${count.padStart(countWidth)}  ${detail}`.trimEnd());
  lines.push('');

  const notable = report.events.filter(
    ({ compared }) =>
      compared.change === Change.newEffect ||
      compared.change === Change.newlySkipped ||
      compared.change === Change.wouldDeadLetter ||
      compared.change === Change.failed,
  );
  for (const event of notable.slice(0, MAX_DETAIL_LINES)) {
    const what =
      event.compared.change === Change.newEffect
        ? event.compared.newEvents
            .map((domainEvent) => `${domainEvent.type} ${domainEvent.eventId}`)
            .join(', ')
        : (event.compared.detail ?? '');
    lines.push(
      `  ${event.compared.change}: raw ${event.position} ${event.subscriptionType} ${event.sourceKey ?? ''}  ${what}`.replace(
        /\s+$/,
        '',
      ),
    );
  }
  if (notable.length > MAX_DETAIL_LINES) lines.push(`  ... and ${notable.length - MAX_DETAIL_LINES} more`);
  if (notable.length > 0) lines.push('');

  const count = report.newEvents.length;
  if (report.dryRun)
    lines.push(
      count === 0
        ? 'dry run: no new domain events; nothing written'
        : `dry run: would write ${count} new domain event${count === 1 ? '' : 's'} to ${domainTopic}; nothing written`,
    );
  else
    lines.push(
      count === 0
        ? 'no new domain events: nothing written'
        : `wrote ${report.written} new domain event${report.written === 1 ? '' : 's'} to ${domainTopic}; outbound applies them (Idempotency-Key = event id)`,
    );
  if (report.counts[Change.newlySkipped] > 0)
    lines.push(
      'newly skipped events are not undone: what was applied stays applied (a reprocess only adds what is missing)',
    );
  if (report.counts[Change.wouldDeadLetter] > 0)
    lines.push(
      `${plural(report.counts[Change.wouldDeadLetter], 'raw event')} would be dead-lettered by the processor (see above); a reprocess writes no dead letters: fix the cause, then run it again`,
    );
  if (report.reconnectRequired)
    lines.push(
      `HubSpot refused ${report.orgId}'s token (401): reconnect the organisation, then run this again`,
    );
  if (report.counts[Change.failed] > 0)
    lines.push(
      `${report.counts[Change.failed]} raw event(s) could not be decided (see above): run this again`,
    );
  return `${lines.join('\n')}\n`;
};
