/**
 * HTML by tagged templates: every interpolated value is escaped unless it is already `Html`
 * (the result of another `html` template, or `trusted`). A page is built only from these, so
 * nothing read from Kafka, a form or a URL reaches the browser unescaped.
 */
export class Html {
  readonly text: string;
  constructor(text: string) {
    this.text = text;
  }
  toString(): string {
    return this.text;
  }
}

export type HtmlValue = Html | string | number | boolean | null | undefined | readonly HtmlValue[];

const entities: Readonly<Record<string, string>> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
  '`': '&#96;',
};

export const escapeHtml = (text: string): string =>
  text.replace(/[&<>"'`]/g, (char) => entities[char] ?? char);

const render = (value: HtmlValue): string => {
  if (value instanceof Html) return value.text;
  if (Array.isArray(value)) return (value as readonly HtmlValue[]).map(render).join('');
  if (value === null || value === undefined || value === false) return '';
  return escapeHtml(String(value));
};

export const html = (strings: TemplateStringsArray, ...values: readonly HtmlValue[]): Html =>
  new Html(
    strings.reduce(
      (out, part, index) => out + part + (index < values.length ? render(values[index]) : ''),
      '',
    ),
  );

/** Markup written in this codebase (never data): the only way around the escaping. */
export const trusted = (markup: string): Html => new Html(markup);

const STYLE = `
  body { font: 14px/1.45 system-ui, sans-serif; margin: 0; color: #1d2430; background: #f6f7f9; }
  header { background: #1d2430; color: #fff; padding: 10px 20px; display: flex; gap: 20px; align-items: center; }
  header a { color: #cfe0ff; text-decoration: none; } header a.here { color: #fff; font-weight: 600; }
  header form { margin-left: auto; }
  main { padding: 16px 20px; max-width: 1200px; }
  h1 { font-size: 20px; margin: 4px 0 12px; } h2 { font-size: 16px; margin: 18px 0 8px; }
  table { border-collapse: collapse; background: #fff; width: 100%; margin-bottom: 12px; }
  th, td { border: 1px solid #d9dde3; padding: 5px 8px; text-align: left; vertical-align: top; }
  th { background: #eef1f5; font-weight: 600; }
  pre { background: #fff; border: 1px solid #d9dde3; padding: 8px; overflow: auto; max-height: 360px; margin: 4px 0; }
  .note { color: #56607a; font-size: 13px; } .warn { background: #fff4d6; border: 1px solid #e8c66a; padding: 6px 10px; }
  .error { background: #fde2e1; border: 1px solid #e39a96; padding: 6px 10px; }
  .ok { background: #e2f6e5; border: 1px solid #8fcf9a; padding: 6px 10px; }
  .badge { display: inline-block; padding: 0 6px; border-radius: 8px; background: #e3e8f0; font-size: 12px; }
  .badge.bad { background: #fde2e1; } .badge.good { background: #e2f6e5; }
  form.inline { display: inline; } input, select, button { font: inherit; padding: 3px 6px; }
  button { cursor: pointer; } fieldset { border: 1px solid #d9dde3; background: #fff; margin-bottom: 12px; }
  label { margin-right: 12px; white-space: nowrap; }
`;

export type Section = 'orgs' | 'events' | 'dead-letters' | 'sign-in';

/** The page frame; `csrf` present means signed in (navigation and the sign-out form). */
export const layout = (page: { title: string; section: Section; csrf?: string; body: Html }): Html => {
  const link = (section: Section, href: string, label: string): Html =>
    html`<a href="${href}" class="${section === page.section ? 'here' : ''}">${label}</a>`;
  const nav =
    page.csrf === undefined
      ? html``
      : html`${link('orgs', '/console/orgs', 'Organisations')}
          ${link('events', '/console/events', 'Event search')}
          ${link('dead-letters', '/console/dead-letters', 'Dead letters')}
          <form method="post" action="/console/sign-out">
            <input type="hidden" name="csrf" value="${page.csrf}" /><button type="submit">Sign out</button>
          </form>`;
  return html`<!doctype html>
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <title>${page.title} · pipeline console</title>
        <style>
          ${trusted(STYLE)}
        </style>
      </head>
      <body>
        <header><strong>HubSpot → OpenCX pipeline</strong> ${nav}</header>
        <main>
          <h1>${page.title}</h1>
          ${page.body}
        </main>
      </body>
    </html>`;
};

export const isoTime = (epochMs: number | undefined): string =>
  epochMs === undefined || !Number.isFinite(epochMs) ? '–' : new Date(epochMs).toISOString();
