/** The event search page: raw events, what became of each, and domain events. */
import type { EventQuery, EventSearchResult, RawMatch } from '../event-search.ts';
import { html, isoTime, layout, type Html } from '../html.ts';
import type { DomainRecord } from '../records.ts';
import { json, letterLink, position, readNotes } from './common.ts';

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
