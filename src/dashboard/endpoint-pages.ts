/** The dashboard's endpoint pages: the list with its filters, the form, one endpoint and its actions. */
import { html, href, time, type SafeHtml } from '../web/html.ts';
import type { ApiData } from './api-client.ts';
import { AUTH_TYPES, CONTENT_TYPES, SIGNATURE_FORMATS, authKindOf, type EndpointForm } from './endpoint-form.ts';
import { badge, csrfField, page, projectPath, type Frame } from './pages.ts';

export const ENDPOINT_STATES = ['active', 'pending', 'paused', 'inactive'];

export interface EndpointFilters {
  owner_id: string;
  status: string;
  q: string;
}

export function endpointsPage(f: Frame, projectId: string, filters: EndpointFilters, endpoints: ApiData[], next: string | null): string {
  const rows = endpoints.map(
    (e) => html`<tr>
  <td data-label="Name"><a href="${projectPath(projectId, 'endpoints', e.uid)}">${e.name}</a></td>
  <td data-label="URL" class="url">${e.url}</td>
  <td data-label="Owner">${e.owner_id || html`<span class="muted">—</span>`}</td>
  <td data-label="State">${badge(e.status)}</td>
  <td data-label=""><a href="${href(projectPath(projectId, 'deliveries'), { endpoint_id: e.uid })}">Deliveries</a></td>
</tr>`,
  );
  return page(
    { ...f, title: 'Endpoints', section: 'endpoints' },
    html`<h1>Endpoints</h1>
<p><a href="${projectPath(projectId, 'endpoints', 'new')}">New endpoint</a></p>
<form method="get" class="filters">
  <label>Name contains <input name="q" value="${filters.q}"></label>
  <label>Owner <input name="owner_id" value="${filters.owner_id}"></label>
  <label>State <select name="status"><option value="">any</option>${ENDPOINT_STATES.map((s) => html`<option${s === filters.status ? html` selected` : null}>${s}</option>`)}</select></label>
  <div class="filter-actions"><button type="submit">Filter</button> <a href="${projectPath(projectId, 'endpoints')}">Clear</a></div>
</form>
${endpoints.length === 0
  ? html`<p class="empty">No endpoints${filters.q || filters.owner_id || filters.status ? ' match these filters' : ''}.</p>`
  : html`<div class="table-wrap"><table class="stack endpoints">
<thead><tr><th>Name</th><th>URL</th><th>Owner</th><th>State</th><th></th></tr></thead>
<tbody>${rows}</tbody></table></div>`}
${next ? html`<p class="pager"><span></span><a href="${href(projectPath(projectId, 'endpoints'), { ...filters, next_page_cursor: next })}">Older</a></p>` : null}`,
  );
}

const selected = (on: boolean): SafeHtml | null => (on ? html` selected` : null);
const checked = (on: boolean): SafeHtml | null => (on ? html` checked` : null);

/** The create and edit form; `endpoint` is the stored one when editing. */
export function endpointFormSection(f: Frame, action: string, form: EndpointForm, endpoint: ApiData | null): SafeHtml {
  const authLabel: Record<string, string> = {
    '': 'none',
    api_key: 'API key header',
    basic_auth: 'HTTP Basic',
    oauth2: 'OAuth2 client credentials, shared secret',
    oauth2_assertion: 'OAuth2 client credentials, signed assertion (ES256 JWT)',
  };
  const keeps = (kind: string): string => (endpoint && authKindOf(endpoint) === kind ? ' — blank keeps the stored one' : '');
  return html`<form method="post" action="${action}" class="stacked endpoint-form">
  ${csrfField(f.session!.csrf)}
  <label>Name <input name="name" value="${form.name}" maxlength="200" required></label>
  <label>URL <input name="url" type="url" value="${form.url}" maxlength="2048" required></label>
  <label>Owner id <input name="owner_id" value="${form.owner_id}" maxlength="200"></label>
  <label>Description <input name="description" value="${form.description}"></label>
  <label>Timeout (seconds) <input name="http_timeout" inputmode="numeric" value="${form.http_timeout}"></label>
  <label>Rate limit (deliveries per window; 0 = none) <input name="rate_limit" inputmode="numeric" value="${form.rate_limit}"></label>
  <label>Rate limit window (seconds) <input name="rate_limit_duration" inputmode="numeric" value="${form.rate_limit_duration}"></label>
  <label>Body <select name="content_type">${CONTENT_TYPES.map((c) => html`<option${selected(c === form.content_type)}>${c}</option>`)}</select></label>
  <label>Support email (alerts) <input name="support_email" value="${form.support_email}"></label>
  <label>Alert URL (notification_url) <input name="notification_url" value="${form.notification_url}"></label>
  <fieldset>
    <legend>Authentication</legend>
    <label>Type <select name="auth_type">
      ${AUTH_TYPES.map((t) => html`<option value="${t}"${selected(t === form.auth_type)}>${authLabel[t]}</option>`)}
    </select></label>
    <label>Header name (API key) <input name="header_name" value="${form.header_name}"></label>
    <label>Header value (API key)${keeps('api_key')} <input name="header_value" type="password" autocomplete="off"></label>
    <label>Username (Basic) <input name="username" value="${form.username}" autocomplete="off"></label>
    <label>Password (Basic)${keeps('basic_auth')} <input name="password" type="password" autocomplete="off"></label>
    <label>Token URL (OAuth2) <input name="oauth2_url" type="url" value="${form.oauth2_url}"></label>
    <label>Client id (OAuth2) <input name="client_id" value="${form.client_id}" autocomplete="off"></label>
    <label>Scope (OAuth2, optional) <input name="scope" value="${form.scope}"></label>
    <label>Audience (OAuth2, optional) <input name="audience" value="${form.audience}"></label>
    <label>Client secret (OAuth2, shared secret)${keeps('oauth2')} <input name="client_secret" type="password" autocomplete="off"></label>
    <label>Signing key (OAuth2, signed assertion: EC P-256 private JWK as JSON)${keeps('oauth2_assertion')} <textarea name="signing_key" rows="3" autocomplete="off"></textarea></label>
    <label>Assertion issuer (optional; the client id when blank) <input name="issuer" value="${form.issuer}"></label>
    <label>Assertion subject (optional; the client id when blank) <input name="subject" value="${form.subject}"></label>
  </fieldset>
  <label>Signature <select name="signature_format">${SIGNATURE_FORMATS.map((s) => html`<option value="${s}"${selected(s === form.signature_format)}>${s === 'advanced' ? 'advanced: t=…,v1=… over the time and the body, one per live secret' : 'simple: over the body, newest secret'}</option>`)}</select></label>
  <fieldset>
    <legend>TLS</legend>
    <label>Client certificate (mTLS, PEM) <textarea name="client_cert" rows="3">${form.client_cert}</textarea></label>
    <label>Client key (PEM)${endpoint?.mtls_client_cert ? ' — blank keeps the stored one' : ''} <textarea name="client_key" rows="3"></textarea></label>
    ${endpoint?.mtls_client_cert ? html`<label class="check"><input type="checkbox" name="remove_mtls"${checked(form.remove_mtls === 'on')}> Remove the client certificate</label>` : null}
    <label>Extra CA to trust (PEM)${endpoint?.ca_certificate ? ' — blank keeps the stored one' : ''} <textarea name="ca_certificate" rows="3"></textarea></label>
    ${endpoint?.ca_certificate ? html`<label class="check"><input type="checkbox" name="remove_ca"${checked(form.remove_ca === 'on')}> Remove the extra CA</label>` : null}
  </fieldset>
  <label class="check"><input type="checkbox" name="skip_ping"${checked(form.skip_ping === 'on')}> Save without trying the URL first</label>
  <button type="submit" class="primary">${endpoint ? 'Save' : 'Create endpoint'}</button>
</form>`;
}

export function newEndpointPage(f: Frame, projectId: string, form: EndpointForm): string {
  return page(
    { ...f, title: 'New endpoint', section: 'endpoints' },
    html`<p class="crumbs"><a href="${projectPath(projectId, 'endpoints')}">Endpoints</a> /</p>
<h1>New endpoint</h1>
<p class="muted">Wharf tries the URL (a signed ping it must answer with 2xx) before saving, unless told not to.</p>
<section class="card">${endpointFormSection(f, projectPath(projectId, 'endpoints', 'new'), form, null)}</section>`,
  );
}

/** Who made a secret, as the API records it (README: Dashboard): a credential's id, never its value. */
function actorOf(a: ApiData): SafeHtml {
  if (!a) return html`<span class="muted">not recorded (the config file, or before Wharf recorded it)</span>`;
  const via = a.via === 'dashboard' ? ' in the dashboard' : a.via === 'api' ? ' through the API' : '';
  if (a.type === 'operator') return html`the operator${via}`;
  if (a.type === 'portal_link') return html`portal link <span class="code">${a.id}</span> in the portal`;
  return html`API key <span class="code">${a.id}</span>${via}`;
}

export function endpointPage(f: Frame, projectId: string, e: ApiData, form: EndpointForm): string {
  const csrf = f.session!.csrf;
  const base = projectPath(projectId, 'endpoints', e.uid);
  const secrets = (e.secrets ?? []) as ApiData[];
  return page(
    { ...f, title: e.name, section: 'endpoints' },
    html`<p class="crumbs"><a href="${projectPath(projectId, 'endpoints')}">Endpoints</a> /</p>
<h1>${e.name}</h1>
<section class="card">
<dl class="facts">
  <dt>Id</dt><dd class="code">${e.uid}</dd>
  <dt>URL</dt><dd class="url">${e.url}</dd>
  <dt>State</dt><dd>${badge(e.status)}</dd>
  <dt>Owner</dt><dd>${e.owner_id || '—'}</dd>
  <dt>Authentication</dt><dd>${e.authentication?.type ?? 'none'}</dd>
  <dt>Signature</dt><dd>${e.advanced_signatures === false ? 'simple' : 'advanced'}</dd>
  <dt>Client certificate</dt><dd>${e.mtls_client_cert ? 'set' : 'none'}</dd>
  <dt>Extra CA</dt><dd>${e.ca_certificate ? 'set' : 'none'}</dd>
  <dt>Created</dt><dd>${time(e.created_at)}</dd>
</dl>
<p><a href="${href(projectPath(projectId, 'deliveries'), { endpoint_id: e.uid })}">Deliveries to this endpoint</a></p>
</section>
<section class="card">
  <h2>State</h2>
  <div class="actions">
    <form method="post" action="${base}/pause">${csrfField(csrf)}<button type="submit">${e.status === 'paused' ? 'Unpause' : 'Pause'}</button></form>
    ${e.status === 'inactive' || e.status === 'pending' ? html`<form method="post" action="${base}/activate">${csrfField(csrf)}<button type="submit">Activate</button></form>` : null}
    <form method="post" action="${base}/delete" data-confirm="Delete this endpoint? Its deliveries stop.">${csrfField(csrf)}<button type="submit">Delete</button></form>
  </div>
</section>
<section class="card signing-secrets">
  <h2>Signing secrets</h2>
  <div class="table-wrap"><table class="stack secrets"><thead><tr><th>Created</th><th>By</th><th>Expires</th></tr></thead>
  <tbody>${secrets.map((s) => html`<tr><td data-label="Created">${time(s.created_at)}</td><td data-label="By" class="created-by">${actorOf(s.created_by)}</td><td data-label="Expires">${s.expires_at ? time(s.expires_at) : html`<span class="muted">current</span>`}</td></tr>`)}</tbody></table></div>
  <form method="post" action="${base}/rotate-secret" class="stacked" data-confirm="Make a new signing secret? It is shown once.">
    ${csrfField(csrf)}
    <label>The current secret keeps signing beside the new one for (seconds) <input name="expiration" inputmode="numeric" value="3600"></label>
    <button type="submit">Rotate secret</button>
  </form>
</section>
<section class="card">
  <h2>Settings</h2>
  ${endpointFormSection(f, `${base}/edit`, form, e)}
</section>`,
  );
}

export function secretPage(f: Frame, projectId: string, e: ApiData, secret: string, message: string): string {
  const back = projectPath(projectId, 'endpoints', e.uid);
  return page(
    { ...f, title: 'New signing secret', section: 'endpoints' },
    html`<p class="crumbs"><a href="${projectPath(projectId, 'endpoints')}">Endpoints</a> / <a href="${back}">${e.name}</a> /</p>
<h1>New signing secret</h1>
<section class="card">
  <p><strong>Copy it now: it is shown only once.</strong> ${message}.</p>
  <div class="secret"><code id="new-secret">${secret}</code> <button type="button" class="copy" data-copy="new-secret">Copy</button></div>
  <p><a href="${back}">Back to ${e.name}</a></p>
</section>`,
  );
}
