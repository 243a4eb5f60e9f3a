/** The dead letters pages: the letters of a window, grouped and filtered, and one letter. */
import type { ArchivedDeadLetter } from '../../../../lib/dead-letters/index.ts';
import type { WindowReadSummary } from '../../../../lib/kafka/index.ts';
import { html, isoTime, layout, type Html } from '../html.ts';
import { csrfField, json, notice, readNotes, type Notice } from './common.ts';

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
