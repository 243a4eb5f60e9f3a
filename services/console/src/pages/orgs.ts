/** The organisations page: each organisation, its connection, settings and recent activity. */
import type { WindowReadSummary } from '../../../../lib/kafka/index.ts';
import type { ReconcileWatermark } from '../../../../lib/reconcile-watermarks.ts';
import { html, isoTime, layout, type Html } from '../html.ts';
import { csrfField, notice, readNotes, type Notice } from './common.ts';

export type OrgRow = {
  readonly orgId: string;
  readonly portalId: number;
  readonly connection: 'OAuth app' | 'private app' | 'not connected';
  readonly reconnectRequired: boolean;
  readonly assistMode: boolean;
  readonly ticketingEnabled: boolean;
  readonly installUrl: string | undefined;
  readonly events: number;
  readonly lastEventAt: number | undefined;
  readonly deadLetters: number;
  /** The last completed reconcile with HubSpot; undefined: never reconciled. */
  readonly reconcile: ReconcileWatermark | undefined;
};

/** The reconcile cells of a row: when the last run started, the gaps it found, in all, the oldest. */
const reconcileCells = (reconcile: ReconcileWatermark | undefined): Html =>
  reconcile === undefined
    ? html`<td class="last-reconcile">never</td>
        <td class="gaps-found">–</td>
        <td class="gaps-total">–</td>
        <td class="oldest-gap">–</td>`
    : html`<td class="last-reconcile">${isoTime(reconcile.lastRunAt)}</td>
        <td class="gaps-found">
          ${reconcile.gapsFound > 0 ? html`<span class="badge bad">${reconcile.gapsFound}</span>` : '0'}
        </td>
        <td class="gaps-total">${reconcile.gapsTotal}</td>
        <td class="oldest-gap">${reconcile.oldestGapAt === null ? '–' : isoTime(reconcile.oldestGapAt)}</td>`;

export const orgsPage = (data: {
  csrf: string;
  rows: readonly OrgRow[];
  unreadable: readonly { orgId: string; portalId: number; fields: readonly string[] }[];
  unrouted: readonly { key: string; events: number }[];
  reads: readonly WindowReadSummary[];
  /** False when the watermarks topic was not read to its end in time: the reconcile cells may be behind. */
  reconcileCurrent: boolean;
  oauthConfigured: boolean;
  notice?: Notice | undefined;
}): Html =>
  layout({
    title: 'Organisations',
    section: 'orgs',
    csrf: data.csrf,
    body: html`${notice(data.notice)}
      <p class="note">
        Events and dead letters: the last hour of the raw topic (records keyed by organisation) and of the
        dead-letter topic, read now. "Last event seen" is within that hour only: an older one is not looked
        for.
      </p>
      <p class="note">
        Reconcile: the last run of the processor's reconciler, which compares HubSpot's own lists with what
        the pipeline handled: when it started, the messages it found never delivered (their webhooks lost;
        written to the raw topic then), those of every run, and the oldest of the last run's. From the
        reconcile-watermarks topic; <code>npm run reconcile</code> leaves it unchanged.
      </p>
      ${
        data.reconcileCurrent
          ? html``
          : html`<p class="warn">
              The reconcile-watermarks topic was not read to its end in time: the reconcile columns may be
              behind.
            </p>`
      }
      ${readNotes(data.reads)}
      <table data-testid="orgs">
        <thead>
          <tr>
            <th>Organisation</th>
            <th>Portal</th>
            <th>Connection</th>
            <th>Last event seen (1 h)</th>
            <th>Events (1 h)</th>
            <th>Dead letters (1 h)</th>
            <th>Last reconcile</th>
            <th>Gaps (last run)</th>
            <th>Gaps (all runs)</th>
            <th>Oldest gap (last run)</th>
            <th>Settings</th>
            <th></th>
          </tr>
        </thead>
        <tbody>
          ${data.rows.map(
            (row) =>
              html`<tr data-org="${row.orgId}">
                <td>${row.orgId}</td>
                <td>${row.portalId}</td>
                <td>
                  ${row.connection}
                  ${row.reconnectRequired ? html`<span class="badge bad">reconnect required</span>` : html``}
                </td>
                <td>${row.lastEventAt === undefined ? 'none in the last hour' : isoTime(row.lastEventAt)}</td>
                <td class="events">${row.events}</td>
                <td class="dead-letters">
                  ${
                    row.deadLetters > 0
                      ? html`<a href="/console/dead-letters?org=${encodeURIComponent(row.orgId)}&since=1h"
                          >${row.deadLetters}</a
                        >`
                      : '0'
                  }
                </td>
                ${reconcileCells(row.reconcile)}
                <td>
                  <form method="post" action="/console/orgs/${encodeURIComponent(row.orgId)}/settings">
                    ${csrfField(data.csrf)}
                    <label
                      ><input type="checkbox" name="assistMode" ${row.assistMode ? html`checked` : html``} />
                      Assist Mode</label
                    >
                    <label
                      ><input
                        type="checkbox"
                        name="ticketingEnabled"
                        ${row.ticketingEnabled ? html`checked` : html``}
                      />
                      Ticketing</label
                    >
                    <button type="submit">Save</button>
                  </form>
                </td>
                <td>
                  <a href="/console/events?org=${encodeURIComponent(row.orgId)}">events</a>
                  ${
                    row.installUrl
                      ? html` · <a class="connect" href="${row.installUrl}">Connect HubSpot</a>`
                      : html``
                  }
                </td>
              </tr>`,
          )}
        </tbody>
      </table>
      ${
        data.oauthConfigured
          ? html``
          : html`<p class="note">
              "Connect HubSpot" needs the OAuth app: set HUBSPOT_CLIENT_ID and HUBSPOT_CLIENT_SECRET on
              ingest, and HUBSPOT_CLIENT_ID on the console.
            </p>`
      }
      ${
        data.unreadable.length > 0
          ? html`<h2>Unreadable organisations</h2>
              <p class="error">
                No configured key opens these records; their events are dead-lettered as org_unreadable. Fix
                SECRETS_KEY / SECRETS_KEY_PREVIOUS, or PUT the organisation again with its secrets.
              </p>
              <table>
                <tr>
                  <th>Organisation</th>
                  <th>Portal</th>
                  <th>Sealed fields no key opens</th>
                </tr>
                ${data.unreadable.map(
                  (org) =>
                    html`<tr>
                      <td>${org.orgId}</td>
                      <td>${org.portalId}</td>
                      <td>${org.fields.join(', ')}</td>
                    </tr>`,
                )}
              </table>`
          : html``
      }
      ${
        data.unrouted.length > 0
          ? html`<h2>Events of portals no organisation had (1 h)</h2>
              <table>
                <tr>
                  <th>Key</th>
                  <th>Events</th>
                </tr>
                ${data.unrouted.map(
                  (entry) =>
                    html`<tr>
                      <td>${entry.key}</td>
                      <td>${entry.events}</td>
                    </tr>`,
                )}
              </table>`
          : html``
      }`,
  });
