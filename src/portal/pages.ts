/** The portal's page frame and its endpoint pages. Every value goes through `html` (html.ts). */
import { html, href, time, type SafeHtml } from './html.ts';
import { layout } from '../web/pages.ts';
import type { PortalEndpoint } from './scope.ts';

export interface Frame {
  title: string;
  /** The signed-in link: shows the navigation and the sign-out form. */
  session?: { name: string; csrf: string; canManage: boolean };
  nav?: 'endpoints' | 'deliveries';
  /** A confirmation from a fixed list (never request text). */
  notice?: string | null;
  /** What was wrong with the request, shown above the page's content. */
  error?: string | null;
}

export function page(f: Frame, body: SafeHtml): string {
  const s = f.session;
  const current = (n: Frame['nav']) => (f.nav === n ? 'page' : 'false');
  const nav = s
    ? html`<nav>
    <a href="/portal/" aria-current="${current('endpoints')}">Endpoints</a>
    <a href="/portal/deliveries" aria-current="${current('deliveries')}">Deliveries</a>
    <form method="post" action="/portal/logout" class="inline">
      <input type="hidden" name="_csrf" value="${s.csrf}">
      <button type="submit" class="link">Sign out</button>
    </form>
  </nav>`
    : null;
  // The portal's asset URLs predate the shared files' names (src/web/assets), and stay.
  return layout(
    { title: f.title, site: 'Webhooks', assets: '/portal/assets', css: 'portal.css', js: 'portal.js', brand: s ? s.name : 'Webhooks', nav, notice: f.notice, error: f.error },
    body,
  );
}

export function errorPage(title: string, message: string): string {
  return page({ title }, html`<section class="card narrow"><h1>${title}</h1><p>${message}</p></section>`);
}

export function statusBadge(status: string): SafeHtml {
  return html`<span class="badge status-${status}">${status}</span>`;
}

export function endpointsPage(f: Frame, endpoints: PortalEndpoint[]): string {
  const rows = endpoints.map(
    (e) => html`<tr>
      <td data-label="Name"><a href="${href(`/portal/endpoints/${encodeURIComponent(e.id)}`)}">${e.name}</a></td>
      <td data-label="URL" class="url">${e.url}</td>
      <td data-label="Status">${statusBadge(e.status)}</td>
      <td data-label="Timeout">${e.http_timeout} s</td>
      <td data-label=""><a href="${href('/portal/deliveries', { endpoint_id: e.id })}">Deliveries</a></td>
    </tr>`,
  );
  return page(
    { ...f, title: 'Endpoints', nav: 'endpoints' },
    html`<h1>Endpoints</h1>
<p class="muted">Where webhooks are sent for you, and their state. An endpoint that keeps failing is disabled (inactive) until it answers again.</p>
${endpoints.length === 0
  ? html`<p class="empty">No endpoints yet.</p>`
  : html`<div class="table-wrap"><table class="stack">
<thead><tr><th>Name</th><th>URL</th><th>Status</th><th>Timeout</th><th></th></tr></thead>
<tbody>${rows}</tbody></table></div>`}`,
  );
}

export interface EndpointForm {
  name: string;
  url: string;
  http_timeout: string;
}

export function endpointPage(f: Frame, e: PortalEndpoint, form: EndpointForm | null): string {
  const s = f.session!;
  const values: EndpointForm = form ?? { name: e.name, url: e.url, http_timeout: String(e.http_timeout) };
  const id = encodeURIComponent(e.id);
  const toggle =
    e.status === 'paused'
      ? { label: 'Unpause', hint: 'Deliveries start again.' }
      : { label: 'Pause', hint: 'While paused, new events for this endpoint are not sent (they are kept as discarded and can be retried).' };
  const manage = s.canManage
    ? html`<section class="card">
  <h2>State</h2>
  <p class="muted">${toggle.hint}</p>
  <div class="actions">
    <form method="post" action="/portal/endpoints/${id}/pause">
      <input type="hidden" name="_csrf" value="${s.csrf}">
      <button type="submit">${toggle.label}</button>
    </form>
    ${e.status === 'inactive' || e.status === 'pending'
      ? html`<form method="post" action="/portal/endpoints/${id}/activate">
      <input type="hidden" name="_csrf" value="${s.csrf}">
      <button type="submit">Activate</button>
    </form>`
      : null}
  </div>
</section>
<section class="card">
  <h2>Settings</h2>
  <form method="post" action="/portal/endpoints/${id}/edit" class="stacked">
    <input type="hidden" name="_csrf" value="${s.csrf}">
    <label>Name <input name="name" value="${values.name}" maxlength="200" required></label>
    <label>URL <input name="url" type="url" value="${values.url}" maxlength="2048" required></label>
    <label>Timeout (seconds, 1–300) <input name="http_timeout" inputmode="numeric" value="${values.http_timeout}" required></label>
    <button type="submit">Save</button>
  </form>
</section>
<section class="card">
  <h2>Signing secret</h2>
  <p class="muted">A new secret signs every delivery from now on; the current one keeps signing beside it for an hour, so you can switch without missing a webhook.</p>
  <form method="post" action="/portal/endpoints/${id}/rotate-secret" data-confirm="Make a new signing secret? It is shown once.">
    <input type="hidden" name="_csrf" value="${s.csrf}">
    <button type="submit">Rotate secret</button>
  </form>
</section>`
    : null;
  return page(
    { ...f, title: e.name, nav: 'endpoints' },
    html`<p class="crumbs"><a href="/portal/">Endpoints</a> /</p>
<h1>${e.name}</h1>
<section class="card">
<dl class="facts">
  <dt>URL</dt><dd class="url">${e.url}</dd>
  <dt>Status</dt><dd>${statusBadge(e.status)}</dd>
  <dt>Timeout</dt><dd>${e.http_timeout} s</dd>
  <dt>Body</dt><dd>${e.content_type}</dd>
  <dt>Created</dt><dd>${time(e.created_at)}</dd>
</dl>
<p><a href="${href('/portal/deliveries', { endpoint_id: e.id })}">Deliveries to this endpoint</a></p>
</section>
${manage}`,
  );
}

export function secretPage(f: Frame, e: PortalEndpoint, secret: string, expirationSeconds: number): string {
  const hours = expirationSeconds / 3600;
  return page(
    { ...f, title: 'New signing secret', nav: 'endpoints' },
    html`<p class="crumbs"><a href="/portal/">Endpoints</a> / <a href="/portal/endpoints/${encodeURIComponent(e.id)}">${e.name}</a> /</p>
<h1>New signing secret</h1>
<section class="card">
  <p><strong>Copy it now: it is shown only once.</strong> Every delivery is signed with it from now on; the previous secret also signs for ${hours === 1 ? 'one more hour' : `${expirationSeconds} more seconds`}.</p>
  <div class="secret"><code id="new-secret">${secret}</code> <button type="button" class="copy" data-copy="new-secret">Copy</button></div>
  <p><a href="/portal/endpoints/${encodeURIComponent(e.id)}">Back to ${e.name}</a></p>
</section>`,
  );
}
