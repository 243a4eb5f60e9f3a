/** What several console pages show the same way: notices, CSRF fields, read notes, positions. */
import type { ArchivedDeadLetter } from '../../../../lib/dead-letters/index.ts';
import type { WindowReadSummary } from '../../../../lib/kafka/index.ts';
import { html, type Html } from '../html.ts';

export type Notice = { readonly kind: 'ok' | 'error' | 'warn'; readonly text: string };

export const notice = (shown: Notice | undefined): Html =>
  shown ? html`<p class="${shown.kind}" role="status">${shown.text}</p>` : html``;

export const csrfField = (csrf: string): Html => html`<input type="hidden" name="csrf" value="${csrf}" />`;

/** One line per topic read: how much of the window was read, and whether a bound stopped it. */
export const readNotes = (reads: readonly (WindowReadSummary | undefined)[]): Html =>
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

export const json = (value: unknown): string =>
  JSON.stringify(value, (_key, item: unknown) => (typeof item === 'bigint' ? item.toString() : item), 2);

export const position = (record: { topic: string; partition: number; offset: string }): string =>
  `${record.topic}/${record.partition}@${record.offset}`;

export const letterLink = (archived: ArchivedDeadLetter): Html =>
  html`<a href="/console/dead-letters/${archived.partition}/${archived.offset}"
    >${archived.letter.reason}</a
  >`;
