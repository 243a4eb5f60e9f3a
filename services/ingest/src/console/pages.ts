/**
 * The console's pages as pure functions of what the routes read: data in, escaped HTML out.
 */
import type { ArchivedDeadLetter } from '../../../../lib/dead-letters/index.ts';
import type { EventQuery, EventSearchResult, RawMatch } from './event-search.ts';
import { html, isoTime, layout, type Html } from './html.ts';
import type { DomainRecord } from './records.ts';
import type { WindowReadSummary } from './topic-window.ts';

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
};

export type Notice = { readonly kind: 'ok' | 'error' | 'warn'; readonly text: string };

const notice = (shown: Notice | undefined): Html =>
  shown ? html`<p class="${shown.kind}" role="status">${shown.text}</p>` : html``;

const csrfField = (csrf: string): Html => html`<input type="hidden" name="csrf" value="${csrf}" />`;

/** One line per topic read: how much of the window was read, and whether a bound stopped it. */
const readNotes = (reads: readonly (WindowReadSummary | undefined)[]): Html =>
  html`${reads.map((read) =>
    read === undefined
      ? html``
      : read.capped
        ? html`<p class="warn" data-testid="capped">
            ${read.topic}: stopped after ${read.read} of ${read.inWindow} records (the cap): the results are
            partial; narrow the time window.
          </p>`
        : read.timedOut
          ? html`<p class="warn">
              ${read.topic}: the time budget ran out after ${read.read} of ${read.inWindow} records: the
              results are partial; narrow the time window.
            </p>`
          : html`<p class="note">
              ${read.topic}: read ${read.read} of ${read.inWindow} records in the window.
            </p>`,
  )}`;

export const signInPage = (options: { error?: string; next?: string }): Html =>
  layout({
    title: 'Sign in',
    section: 'sign-in',
    body: html`${options.error ? html`<p class="error" role="alert">${options.error}</p>` : html``}
      <form method="post" action="/console/sign-in">
        <p>
          <label
            >Admin token
            <input type="password" name="token" autocomplete="current-password" autofocus required
          /></label>
        </p>
        <input type="hidden" name="next" value="${options.next ?? '/console/orgs'}" />
        <button type="submit">Sign in</button>
      </form>
      <p class="note">
        The ADMIN_TOKEN of ingest. It is sent once, in this form's body; the browser then keeps a signed
        session cookie (8 hours), never the token.
      </p>`,
  });

export const orgsPage = (data: {
  csrf: string;
  rows: readonly OrgRow[];
  unreadable: readonly { orgId: string; portalId: number; fields: readonly string[] }[];
  unrouted: readonly { key: string; events: number }[];
  reads: readonly WindowReadSummary[];
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
              ingest.
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

const json = (value: unknown): string =>
  JSON.stringify(value, (_key, item: unknown) => (typeof item === 'bigint' ? item.toString() : item), 2);

const position = (record: { topic: string; partition: number; offset: string }): string =>
  `${record.topic}/${record.partition}@${record.offset}`;

const letterLink = (archived: ArchivedDeadLetter): Html =>
  html`<a href="/console/dead-letters/${archived.partition}/${archived.offset}"
    >${archived.letter.reason}</a
  >`;

const domainTable = (records: readonly DomainRecord[]): Html =>
  html`<table>
    <tr>
      <th>Written</th>
      <th>Type</th>
      <th>Event id</th>
      <th>Where</th>
      <th>Payload</th>
    </tr>
    ${records.map(
      (record) =>
        html`<tr class="domain-event">
          <td>${isoTime(record.position.timestamp)}</td>
          <td>${record.type}</td>
          <td>${String(record.record.eventId)}</td>
          <td>${position(record.position)}</td>
          <td><pre>${json(record.record)}</pre></td>
        </tr>`,
    )}
  </table>`;

const outcomeCell = (match: RawMatch): Html => {
  const { outcome } = match;
  const downstream =
    match.downstreamLetters.length > 0
      ? html`<p>
          then dead-lettered by outbound:
          ${match.downstreamLetters.map((letter) => html`${letterLink(letter)} `)}
        </p>`
      : html``;
  switch (outcome.kind) {
    case 'emitted':
      return html`<span class="badge good">emitted</span>
        ${outcome.events.map((event) => html`<div>${event.type} <code>${String(event.record.eventId)}</code></div>`)}
        ${downstream}`;
    case 'dead-lettered':
      return html`<span class="badge bad">dead-lettered</span>
        ${outcome.letters.map((letter) => html`<div>${letterLink(letter)}: ${letter.letter.error}</div>`)}`;
    case 'skipped':
      return html`<span class="badge">skipped</span> ${outcome.reason}`;
    case 'unknown':
      return html`<span class="badge">no trace</span>
        <span class="note"
          >no domain event and no dead letter in the window: skipped by a rule that needs HubSpot's data or
          Redis (the reason is in the processor's log and processor_ignored_total), a duplicate, or not
          processed yet</span
        >`;
    default: {
      const unreachable: never = outcome;
      return unreachable;
    }
  }
};

export const eventSearchPage = (data: {
  csrf: string;
  query: EventQuery;
  /** The window as typed (empty: the last hour up to now, read when the search runs). */
  window: { from: string | undefined; to: string | undefined };
  orgIds: readonly string[];
  result: EventSearchResult | undefined;
  error?: string | undefined;
  maxRecords: number;
}): Html => {
  const { query, result } = data;
  const form = html`<form method="get" action="/console/events">
    <fieldset>
      <label
        >Organisation
        <select name="org">
          <option value="">any</option>
          ${data.orgIds.map(
            (orgId) =>
              html`<option value="${orgId}" ${orgId === query.orgId ? html`selected` : html``}>
                ${orgId}
              </option>`,
          )}
        </select></label
      >
      <label
        >From (UTC)
        <input
          type="datetime-local"
          name="from"
          value="${data.window.from ?? ''}"
          placeholder="an hour before To"
      /></label>
      <label
        >To (UTC) <input type="datetime-local" name="to" value="${data.window.to ?? ''}" placeholder="now"
      /></label>
      <br />
      <label>Thread id <input name="thread" value="${query.threadId ?? ''}" size="12" /></label>
      <label>Ticket id <input name="ticket" value="${query.ticketId ?? ''}" size="12" /></label>
      <label>Event id <input name="event" value="${query.eventId ?? ''}" size="24" /></label>
      <label>Message id <input name="message" value="${query.messageId ?? ''}" size="14" /></label>
      <input type="hidden" name="search" value="1" />
      <button type="submit">Search</button>
    </fieldset>
  </form>`;
  const explanation = html`<p class="note">
    Reads the raw topic and the domain-event topic from the window's start (seek by timestamp), the domain
    events up to 15 minutes past its end, and the dead letters written since its start; at most
    ${data.maxRecords} records per topic. Event id: HubSpot's eventId, or a domain event's id.
  </p>`;
  if (!result)
    return layout({
      title: 'Event search',
      section: 'events',
      csrf: data.csrf,
      body: html`${form}${explanation}${data.error ? html`<p class="error">${data.error}</p>` : html``}`,
    });
  return layout({
    title: 'Event search',
    section: 'events',
    csrf: data.csrf,
    body: html`${form}${explanation}
      <p>Searched from ${isoTime(query.from)} to ${isoTime(query.to)}.</p>
      ${readNotes(result.reads)}
      ${
        result.undecodable > 0
          ? html`<p class="warn">
              ${result.undecodable} record(s) did not decode; is SCHEMA_REGISTRY_URL right?
            </p>`
          : html``
      }
      <h2>
        Raw webhook events
        (${result.raw.length}${result.rawMatchesNotShown > 0 ? ` shown, ${result.rawMatchesNotShown} more` : ''})
      </h2>
      <table data-testid="raw-events">
        <tr>
          <th>Received</th>
          <th>Organisation / portal</th>
          <th>Type</th>
          <th>HubSpot event</th>
          <th>What became of it</th>
        </tr>
        ${result.raw.map(
          (match) =>
            html`<tr class="raw-event">
              <td>
                ${isoTime(match.raw.receivedAt)}<br /><span class="note"
                  >${position(match.raw.position)}</span
                >
              </td>
              <td>
                ${match.orgId ?? 'none'} / ${match.raw.portalId}<br /><span class="note"
                  >${match.raw.route}</span
                >
              </td>
              <td>${match.raw.subscriptionType}</td>
              <td><pre>${json(match.raw.event)}</pre></td>
              <td class="outcome">${outcomeCell(match)}</td>
            </tr>`,
        )}
      </table>
      <h2>Domain events (${result.domain.length})</h2>
      ${domainTable(result.domain)}`,
  });
};

export type LetterGroup = { readonly reason: string; readonly orgId: string; readonly count: number };

export const deadLettersPage = (data: {
  csrf: string;
  since: string;
  sinceMs: number;
  filter: { orgId?: string | undefined; reason?: string | undefined };
  groups: readonly LetterGroup[];
  letters: readonly ArchivedDeadLetter[];
  read: WindowReadSummary | undefined;
  undecodable: number;
  notice?: Notice | undefined;
}): Html => {
  const sinceOptions = ['1h', '24h', '7d', '30d'];
  const query = (extra: Record<string, string | undefined>): string =>
    new URLSearchParams(
      Object.entries({ since: data.since, ...extra }).filter(
        (entry): entry is [string, string] => entry[1] !== undefined,
      ),
    ).toString();
  return layout({
    title: 'Dead letters',
    section: 'dead-letters',
    csrf: data.csrf,
    body: html`${notice(data.notice)}
      <form method="get" action="/console/dead-letters">
        <label
          >Written in the last
          <select name="since">
            ${sinceOptions.map(
              (option) =>
                html`<option value="${option}" ${option === data.since ? html`selected` : html``}>
                  ${option}
                </option>`,
            )}
          </select></label
        >
        ${data.filter.orgId ? html`<input type="hidden" name="org" value="${data.filter.orgId}" />` : html``}
        ${data.filter.reason ? html`<input type="hidden" name="reason" value="${data.filter.reason}" />` : html``}
        <button type="submit">Show</button>
        ${
          data.filter.orgId || data.filter.reason
            ? html` <a href="/console/dead-letters?${query({})}">clear the filter</a>`
            : html``
        }
      </form>
      ${readNotes([data.read])}
      ${
        data.undecodable > 0
          ? html`<p class="warn">
              ${data.undecodable} record(s) are not readable dead letters; is SCHEMA_REGISTRY_URL right?
            </p>`
          : html``
      }
      <h2>By reason and organisation</h2>
      <table data-testid="letter-groups">
        <tr>
          <th>Reason</th>
          <th>Organisation</th>
          <th>Letters</th>
          <th></th>
        </tr>
        ${data.groups.map(
          (group) =>
            html`<tr class="letter-group">
              <td>${group.reason}</td>
              <td>${group.orgId}</td>
              <td>
                <a href="/console/dead-letters?${query({ org: group.orgId, reason: group.reason })}"
                  >${group.count}</a
                >
              </td>
              <td>
                <form method="post" action="/console/dead-letters/replay" class="inline">
                  ${csrfField(data.csrf)}
                  <input type="hidden" name="since" value="${data.sinceMs}" />
                  <input type="hidden" name="org" value="${group.orgId}" />
                  <input type="hidden" name="reason" value="${group.reason}" />
                  <button type="submit">Replay these… (dry run first)</button>
                </form>
              </td>
            </tr>`,
        )}
      </table>
      <h2>
        Letters${data.filter.orgId ? ` of ${data.filter.orgId}` : ''}${data.filter.reason ? `, ${data.filter.reason}` : ''}
        (${data.letters.length})
      </h2>
      <table data-testid="letters">
        <tr>
          <th>Failed</th>
          <th>Service</th>
          <th>Reason</th>
          <th>Organisation</th>
          <th>Event</th>
          <th>Error</th>
        </tr>
        ${data.letters.map(
          (archived) =>
            html`<tr class="letter">
              <td>
                <a href="/console/dead-letters/${archived.partition}/${archived.offset}"
                  >${isoTime(archived.letter.failedAt)}</a
                >
              </td>
              <td>${archived.letter.service}</td>
              <td>${archived.letter.reason}</td>
              <td>${archived.letter.orgId ?? '–'}</td>
              <td>${archived.letter.eventType ?? '–'} ${archived.letter.eventId ?? ''}</td>
              <td>${archived.letter.error.slice(0, 200)}</td>
            </tr>`,
        )}
      </table>`,
  });
};

export const letterPage = (data: {
  csrf: string;
  archived: ArchivedDeadLetter;
  decoded: { recordName: string; record: unknown } | { error: string } | undefined;
  replayed: boolean;
}): Html => {
  const { archived, decoded } = data;
  const { letter } = archived;
  return layout({
    title: `Dead letter ${archived.partition}@${archived.offset}`,
    section: 'dead-letters',
    csrf: data.csrf,
    body: html`<table data-testid="letter">
        <tr>
          <th>Reason</th>
          <td>${letter.reason}</td>
        </tr>
        <tr>
          <th>Error</th>
          <td><pre>${letter.error}</pre></td>
        </tr>
        <tr>
          <th>Service</th>
          <td>${letter.service} (${letter.attempts} attempt${letter.attempts === 1 ? '' : 's'})</td>
        </tr>
        <tr>
          <th>Organisation</th>
          <td>${letter.orgId ?? '–'}</td>
        </tr>
        <tr>
          <th>Event</th>
          <td>${letter.eventType ?? '–'} ${letter.eventId ?? ''}</td>
        </tr>
        <tr>
          <th>Failed at</th>
          <td>${isoTime(letter.failedAt)}</td>
        </tr>
        <tr>
          <th>Original record</th>
          <td>${letter.sourceTopic}/${letter.partition}@${letter.offset}</td>
        </tr>
        <tr>
          <th>Headers</th>
          <td><pre>${json(letter.headers ?? {})}</pre></td>
        </tr>
        <tr>
          <th>Replayed</th>
          <td>${data.replayed ? 'yes (a replay would put nothing back)' : 'no'}</td>
        </tr>
      </table>
      <h2>Original record, decoded</h2>
      ${
        decoded === undefined
          ? html`<p class="warn">
              The letter does not carry the original value (it was over the record limit); read it at
              ${letter.sourceTopic}/${letter.partition}@${letter.offset}.
            </p>`
          : 'error' in decoded
            ? html`<p class="error">${decoded.error}</p>`
            : html`<p class="note">${decoded.recordName}</p>
                <pre data-testid="decoded">${json(decoded.record)}</pre>`
      }
      <form method="post" action="/console/dead-letters/replay">
        ${csrfField(data.csrf)}
        <input type="hidden" name="since" value="${Math.max(0, letter.failedAt - 60_000)}" />
        <input type="hidden" name="letter" value="${archived.partition}:${archived.offset}" />
        <button type="submit">Replay this letter… (dry run first)</button>
      </form>`,
  });
};

export type ReplayCandidate = { readonly archived: ArchivedDeadLetter; readonly replayed: boolean };

export const replayDryRunPage = (data: {
  csrf: string;
  sinceMs: number;
  candidates: readonly ReplayCandidate[];
  read: WindowReadSummary | undefined;
}): Html => {
  const toReplay = data.candidates.filter((candidate) => !candidate.replayed);
  return layout({
    title: 'Replay: dry run',
    section: 'dead-letters',
    csrf: data.csrf,
    body: html`<p data-testid="dry-run-summary">
        Dry run: nothing was replayed. ${toReplay.length} letter${toReplay.length === 1 ? '' : 's'} would be
        put back on ${toReplay.length === 1 ? 'its' : 'their'} source topic;
        ${data.candidates.length - toReplay.length} already replayed (skipped).
      </p>
      ${readNotes([data.read])}
      <table data-testid="dry-run">
        <tr>
          <th>Letter</th>
          <th>Reason</th>
          <th>Organisation</th>
          <th>Event</th>
          <th>Back to</th>
          <th>Status</th>
        </tr>
        ${data.candidates.map(
          ({ archived, replayed }) =>
            html`<tr class="candidate">
              <td>
                <a href="/console/dead-letters/${archived.partition}/${archived.offset}"
                  >${archived.partition}@${archived.offset}</a
                >
              </td>
              <td>${archived.letter.reason}</td>
              <td>${archived.letter.orgId ?? '–'}</td>
              <td>${archived.letter.eventType ?? '–'} ${archived.letter.eventId ?? ''}</td>
              <td>${archived.letter.sourceTopic}</td>
              <td>${replayed ? 'already replayed' : 'would be replayed'}</td>
            </tr>`,
        )}
      </table>
      ${
        toReplay.length > 0
          ? html`<form method="post" action="/console/dead-letters/replay">
              ${csrfField(data.csrf)}
              <input type="hidden" name="since" value="${data.sinceMs}" />
              <input type="hidden" name="confirm" value="1" />
              ${toReplay.map(
                ({ archived }) =>
                  html`<input
                    type="hidden"
                    name="letter"
                    value="${archived.partition}:${archived.offset}"
                  />`,
              )}
              <button type="submit">
                Replay ${toReplay.length} letter${toReplay.length === 1 ? '' : 's'}
              </button>
            </form>`
          : html`<p>Nothing to replay.</p>`
      }
      <p><a href="/console/dead-letters">Back to the dead letters</a></p>`,
  });
};

export const replayDonePage = (data: {
  csrf: string;
  summary: {
    replayed: number;
    alreadyReplayed: number;
    failed: number;
    failures: readonly { letter: ArchivedDeadLetter; error: string }[];
  };
  missing: number;
}): Html =>
  layout({
    title: 'Replay: done',
    section: 'dead-letters',
    csrf: data.csrf,
    body: html`<p
        class="${data.summary.failed > 0 || data.missing > 0 ? 'warn' : 'ok'}"
        data-testid="replay-summary"
      >
        replayed ${data.summary.replayed}, already replayed ${data.summary.alreadyReplayed}, failed
        ${data.summary.failed}
      </p>
      ${
        data.missing > 0
          ? html`<p class="warn">
              ${data.missing} letter(s) of the dry run were not found again (expired from the topic?).
            </p>`
          : html``
      }
      ${data.summary.failures.map(
        ({ letter, error }) => html`<p class="error">${letter.partition}@${letter.offset}: ${error}</p>`,
      )}
      <p class="note">
        A replayed letter's record is back on its source topic, keyed as before; the pipeline applies it once
        (deterministic event ids, OpenCX's Idempotency-Key). It is remembered as replayed for 30 days.
      </p>
      <p><a href="/console/dead-letters">Back to the dead letters</a></p>`,
  });

export const errorPage = (data: { csrf?: string | undefined; status: number; text: string }): Html =>
  layout({
    title: data.status === 403 ? 'Refused' : data.status === 404 ? 'Not found' : 'Something failed',
    section: 'orgs',
    ...(data.csrf === undefined ? {} : { csrf: data.csrf }),
    body: html`<p class="error" role="alert">${data.text}</p>
      <p><a href="/console/orgs">Back to the console</a></p>`,
  });
