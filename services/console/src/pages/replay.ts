/** The dead-letter replay pages: the dry run, and what a confirmed replay did. */
import type { ArchivedDeadLetter } from '../../../../lib/dead-letters/index.ts';
import type { WindowReadSummary } from '../../../../lib/kafka/index.ts';
import { html, layout, type Html } from '../html.ts';
import { csrfField, readNotes } from './common.ts';

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
