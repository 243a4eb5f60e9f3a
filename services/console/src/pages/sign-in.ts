/** The sign-in page, and the page every failed console request answers with. */
import { html, layout, type Html } from '../html.ts';

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
        The ADMIN_TOKEN of the console. It is sent once, in this form's body; the browser then keeps a signed
        session cookie (8 hours), never the token.
      </p>`,
  });

export const errorPage = (data: { csrf?: string | undefined; status: number; text: string }): Html =>
  layout({
    title: data.status === 403 ? 'Refused' : data.status === 404 ? 'Not found' : 'Something failed',
    section: 'orgs',
    ...(data.csrf === undefined ? {} : { csrf: data.csrf }),
    body: html`<p class="error" role="alert">${data.text}</p>
      <p><a href="/console/orgs">Back to the console</a></p>`,
  });
