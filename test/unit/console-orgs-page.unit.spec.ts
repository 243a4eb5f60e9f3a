/**
 * The console's organisations page as rendered (no infrastructure): each organisation's last
 * reconcile with HubSpot, from the watermark the processor's reconciler recorded. The page as
 * served, read from the topic, is in test/integration/console.int.spec.ts.
 */
import assert from 'node:assert/strict';
import { orgsPage, type OrgRow } from '../../services/console/src/pages/index.ts';
import { reconcileCells } from '../support/console-rows.ts';

const row = (orgId: string, reconcile: OrgRow['reconcile']): OrgRow => ({
  orgId,
  portalId: 4242,
  connection: 'private app',
  reconnectRequired: false,
  assistMode: false,
  ticketingEnabled: true,
  installUrl: undefined,
  events: 0,
  lastEventAt: undefined,
  deadLetters: 0,
  reconcile,
});

describe('console: the organisations page shows each organisation’s last reconcile', () => {
  const render = (rows: readonly OrgRow[], reconcileCurrent = true) =>
    orgsPage({
      csrf: 'csrf',
      rows,
      unreadable: [],
      unrouted: [],
      reads: [],
      reconcileCurrent,
      oauthConfigured: true,
    }).text;

  it('given one organisation reconciled with gaps, one without, and one never, then each row says when, how many gaps, in all, and the oldest', () => {
    const page = render([
      row('lossy', {
        checkedThrough: Date.parse('2026-12-07T11:59:00Z'),
        lastRunAt: Date.parse('2026-12-07T12:00:00Z'),
        gapsFound: 3,
        gapsTotal: 5,
        oldestGapAt: Date.parse('2026-12-07T11:40:12.345Z'),
        runsWithGapsInARow: 1,
      }),
      row('healthy', {
        checkedThrough: Date.parse('2026-12-07T11:59:00Z'),
        lastRunAt: Date.parse('2026-12-07T12:01:00Z'),
        gapsFound: 0,
        gapsTotal: 2,
        oldestGapAt: null,
        runsWithGapsInARow: 0,
      }),
      row('new', undefined),
    ]);

    assert.match(
      page,
      /<th>Last reconcile<\/th>\s*<th>Gaps \(last run\)<\/th>\s*<th>Gaps \(all runs\)<\/th>\s*<th>Oldest gap \(last run\)<\/th>/,
    );
    const pick = (orgId: string) => reconcileCells(page, orgId);
    assert.deepEqual(pick('lossy'), ['2026-12-07T12:00:00.000Z', '3', '5', '2026-12-07T11:40:12.345Z']);
    assert.deepEqual(pick('healthy'), ['2026-12-07T12:01:00.000Z', '0', '2', '–']);
    assert.deepEqual(pick('new'), ['never', '–', '–', '–']);
    assert.match(page, /<span class="badge bad">3<\/span>/, 'a run that found gaps stands out');
    assert.doesNotMatch(page, /reconcile columns may be behind/);
  });

  it('given the watermarks topic not read to its end in time, then the page says the reconcile columns may be behind', () => {
    assert.match(render([row('new', undefined)], false), /the reconcile columns may be\s+behind/);
  });
});
