/**
 * The dashboard's events, deliveries and portal links. Payloads, headers and response bodies are
 * tenants' (or attackers') text: they are only ever interpolated through `html`.
 */
import { DELIVERY_STATUSES } from '../core/types.ts';
import { html, href, time, type SafeHtml } from '../web/html.ts';
import type { ApiData } from './api-client.ts';
import { badge, csrfField, page, projectPath, type Frame } from './pages.ts';

/**
 * A force resend's checkboxes are named `resend:{id}`: form bodies keep the first of a repeated
 * field only, so each selected delivery has a field of its own.
 */
export const FORCE_PREFIX = 'resend:';

/** Deliveries the API may resend: those at rest. */
export const RESENDABLE = ['success', 'failure', 'discarded'];

/** A delivery's status in Wharf's spelling (the API may answer in Convoy's, `Success`). */
const statusOf = (d: ApiData): string => String(d.status).toLowerCase();

const option = (value: string, label: string, current: string): SafeHtml =>
  html`<option value="${value}"${value === current ? html` selected` : null}>${label}</option>`;

const json = (v: unknown): string => (typeof v === 'string' ? v : JSON.stringify(v, null, 2));

function headersTable(h: Record<string, unknown> | null | undefined, cls: string): SafeHtml {
  const entries = Object.entries(h ?? {});
  if (entries.length === 0) return html`<p class="muted">None.</p>`;
  return html`<table class="headers ${cls}"><tbody>${entries.map(([k, v]) => html`<tr><th>${k}</th><td>${Array.isArray(v) ? v.join(', ') : String(v)}</td></tr>`)}</tbody></table>`;
}

/** The time range of a list's filters (the API's start_date and end_date, in UTC). */
export interface TimeFilters {
  start_date: string;
  end_date: string;
}

const timeInputs = (filters: TimeFilters): SafeHtml => html`<label>From (UTC) <input name="start_date" type="datetime-local" step="1" value="${filters.start_date}"></label>
  <label>To (UTC) <input name="end_date" type="datetime-local" step="1" value="${filters.end_date}"></label>`;

export function pager(path: string, filters: Record<string, string>, next: string | null): SafeHtml | null {
  return next ? html`<p class="pager"><span></span><a href="${href(path, { ...filters, next_page_cursor: next })}">Older</a></p>` : null;
}

export interface EventFilters extends TimeFilters {
  event_type: string;
  endpoint_id: string;
  idempotency_key: string;
}

export function eventsPage(f: Frame, projectId: string, filters: EventFilters, events: ApiData[], next: string | null): string {
  const path = projectPath(projectId, 'events');
  return page(
    { ...f, title: 'Events', section: 'events' },
    html`<h1>Events</h1>
<form method="get" class="filters" role="search">
  <label>Event type <input name="event_type" value="${filters.event_type}"></label>
  <label>Endpoint id <input name="endpoint_id" value="${filters.endpoint_id}"></label>
  <label>Idempotency key <input name="idempotency_key" value="${filters.idempotency_key}"></label>
  ${timeInputs(filters)}
  <div class="filter-actions"><button type="submit">Filter</button> <a href="${path}">Clear</a></div>
</form>
${events.length === 0
  ? html`<p class="empty">No events.</p>`
  : html`<div class="table-wrap"><table class="stack events">
<thead><tr><th>Event type</th><th>Endpoint</th><th>Source</th><th>Time</th></tr></thead>
<tbody>${events.map((e) => html`<tr>
  <td data-label="Event type"><a href="${projectPath(projectId, 'events', e.uid)}">${e.event_type}</a></td>
  <td data-label="Endpoint" class="code">${e.endpoint_id ?? '—'}</td>
  <td data-label="Source" class="code">${e.source_id || '—'}</td>
  <td data-label="Time">${time(e.created_at)}</td>
</tr>`)}</tbody></table></div>`}
${pager(path, { ...filters }, next)}`,
  );
}

export function eventPage(f: Frame, projectId: string, e: ApiData, deliveries: ApiData[]): string {
  return page(
    { ...f, title: e.event_type, section: 'events' },
    html`<p class="crumbs"><a href="${projectPath(projectId, 'events')}">Events</a> /</p>
<h1>${e.event_type}</h1>
<section class="card">
<dl class="facts">
  <dt>Id</dt><dd class="code">${e.uid}</dd>
  <dt>Endpoint</dt><dd class="code">${e.endpoint_id ?? '—'}</dd>
  <dt>Source</dt><dd class="code">${e.source_id || '—'}</dd>
  <dt>Idempotency key</dt><dd>${e.idempotency_key || '—'}</dd>
  <dt>Time</dt><dd>${time(e.created_at)}</dd>
</dl>
</section>
<section class="card"><h2>Payload</h2><pre class="body payload">${json(e.data)}</pre></section>
<section class="card"><h2>Headers</h2>
  <h3>Received</h3>${headersTable(e.headers, 'event-headers')}
  <h3>Sent with each delivery</h3>${headersTable(e.custom_headers, 'custom-headers')}
</section>
<section class="card"><h2>Deliveries</h2>
${deliveries.length === 0 ? html`<p class="muted">None.</p>` : html`<ul>${deliveries.map((d) => html`<li>${badge(statusOf(d))} <a href="${projectPath(projectId, 'deliveries', d.uid)}">${d.endpoint_id}</a> ${time(d.created_at)}</li>`)}</ul>`}
</section>`,
  );
}

export interface DeliveryFilters extends TimeFilters {
  status: string;
  endpoint_id: string;
  event_type: string;
}

export function deliveriesPage(f: Frame, projectId: string, filters: DeliveryFilters, rows: ApiData[], next: string | null): string {
  const path = projectPath(projectId, 'deliveries');
  return page(
    { ...f, title: 'Deliveries', section: 'deliveries' },
    html`<h1>Deliveries</h1>
<form method="get" class="filters" role="search">
  <label>Status <select name="status">${option('', 'any', filters.status)}${DELIVERY_STATUSES.map((s) => option(s, s, filters.status))}</select></label>
  <label>Endpoint id <input name="endpoint_id" value="${filters.endpoint_id}"></label>
  <label>Event type <input name="event_type" value="${filters.event_type}"></label>
  ${timeInputs(filters)}
  <div class="filter-actions"><button type="submit">Filter</button> <a href="${path}">Clear</a></div>
</form>
<p><a href="${href(projectPath(projectId, 'deliveries', 'batch-retry'), { ...filters })}">Retry every delivery these filters match…</a></p>
${rows.length === 0
  ? html`<p class="empty">No deliveries.</p>`
  : html`<form method="post" action="${projectPath(projectId, 'deliveries', 'force-resend')}" data-confirm="Send the selected deliveries again, whatever their outcome was?">
${csrfField(f.session!.csrf)}
<div class="table-wrap"><table class="stack deliveries">
<thead><tr><th></th><th>Status</th><th>Event type</th><th>Endpoint</th><th>Attempts</th><th>Time</th></tr></thead>
<tbody>${rows.map((d) => html`<tr>
  <td data-label="Select"><input type="checkbox" name="${FORCE_PREFIX}${d.uid}" aria-label="Select delivery ${d.uid}"></td>
  <td data-label="Status">${badge(statusOf(d))}${d.last_status_code !== null && d.last_status_code !== undefined ? html` <span class="code">${d.last_status_code}</span>` : null}</td>
  <td data-label="Event type"><a href="${projectPath(projectId, 'deliveries', d.uid)}">${d.event_type}</a></td>
  <td data-label="Endpoint"><a href="${projectPath(projectId, 'endpoints', d.endpoint_id)}" class="code">${d.endpoint_id}</a></td>
  <td data-label="Attempts">${d.attempts}</td>
  <td data-label="Time">${time(d.created_at)}</td>
</tr>`)}</tbody></table></div>
<p><button type="submit">Force resend selected</button> <span class="muted small">Even deliveries that succeeded, or are on their way.</span></p>
</form>`}
${pager(path, { ...filters }, next)}`,
  );
}

/** The confirmation of a batch retry: how many deliveries the filters match now, before anything is sent. */
export function batchRetryPage(f: Frame, projectId: string, filters: DeliveryFilters, count: number | null): string {
  const back = href(projectPath(projectId, 'deliveries'), { ...filters });
  const shown = Object.entries(filters).filter(([, v]) => v !== '');
  return page(
    { ...f, title: 'Batch retry', section: 'deliveries' },
    html`<p class="crumbs"><a href="${back}">Deliveries</a> /</p>
<h1>Batch retry</h1>
<section class="card">
<dl class="facts">${shown.length === 0
  ? html`<dt>Filters</dt><dd>none: every delivery of the project</dd>`
  : shown.map(([k, v]) => html`<dt>${k}</dt><dd class="code">${v}</dd>`)}
  ${filters.status ? null : html`<dt>Statuses</dt><dd>failure and discarded (choose one to narrow)</dd>`}
</dl>
${count === null
  ? null
  : html`<p class="match-count"><strong>${count} deliver${count === 1 ? 'y matches' : 'ies match'}.</strong> ${count === 0 ? 'Nothing to retry.' : 'Each is sent again in the background; new failures since this page count too.'}</p>
${count === 0
  ? null
  : html`<form method="post" action="${projectPath(projectId, 'deliveries', 'batch-retry')}">
  ${csrfField(f.session!.csrf)}
  ${shown.map(([k, v]) => html`<input type="hidden" name="${k}" value="${v}">`)}
  <button type="submit" class="primary">Retry ${count} deliver${count === 1 ? 'y' : 'ies'}</button>
</form>`}`}
<p><a href="${back}">Back to the deliveries</a></p>
</section>`,
  );
}

export function deliveryPage(f: Frame, projectId: string, d: ApiData, attempts: ApiData[]): string {
  const moving = !RESENDABLE.includes(statusOf(d));
  return page(
    { ...f, title: `Delivery ${d.event_type}`, section: 'deliveries' },
    html`<p class="crumbs"><a href="${projectPath(projectId, 'deliveries')}">Deliveries</a> /</p>
<h1>${d.event_type}</h1>
<section class="card">
<div class="summary"${moving ? html` data-refresh="2"` : null}>${badge(statusOf(d))} <span>${d.attempts} attempt${d.attempts === 1 ? '' : 's'}</span></div>
<dl class="facts">
  <dt>Id</dt><dd class="code">${d.uid}</dd>
  <dt>Event</dt><dd><a href="${projectPath(projectId, 'events', d.event_id)}" class="code">${d.event_id}</a></dd>
  <dt>Endpoint</dt><dd><a href="${projectPath(projectId, 'endpoints', d.endpoint_id)}" class="code">${d.endpoint_id}</a></dd>
  <dt>Next attempt</dt><dd>${d.next_attempt_at ? time(d.next_attempt_at) : '—'}</dd>
  <dt>Last error</dt><dd>${d.last_error ?? '—'}</dd>
</dl>
${moving
  ? html`<p class="muted">On its way: this page looks again every few seconds.</p>
<form method="post" action="${projectPath(projectId, 'deliveries', 'force-resend')}" data-confirm="Send it again now? Its current attempt counts as a failure.">${csrfField(f.session!.csrf)}<input type="hidden" name="${FORCE_PREFIX}${d.uid}" value="on"><button type="submit">Force resend</button></form>`
  : html`<form method="post" action="${projectPath(projectId, 'deliveries', d.uid, 'resend')}">${csrfField(f.session!.csrf)}<button type="submit">Resend</button></form>`}
</section>
<h2>Attempts</h2>
${attempts.length === 0 ? html`<p class="empty">No attempts yet.</p>` : attempts.map((a) => html`<section class="card attempt">
  <h3>Attempt ${a.attempt} · ${a.status_code ?? 'no answer'} · ${time(a.created_at)}</h3>
  <dl class="facts"><dt>URL</dt><dd class="url">${a.url}</dd><dt>Latency</dt><dd>${a.latency_ms ?? '—'} ms</dd>${a.error ? html`<dt>Error</dt><dd class="error-text">${a.error}</dd>` : null}</dl>
  <details><summary>Request headers</summary>${headersTable(a.request_headers, 'request-headers')}</details>
  <details><summary>Response headers</summary>${headersTable(a.response_headers, 'response-headers')}</details>
  <h4>Response body</h4><pre class="body response-body">${a.response_body ?? ''}</pre>
</section>`)}`,
  );
}

export function portalLinksPage(f: Frame, projectId: string, links: ApiData[], form: Record<string, string>): string {
  const csrf = f.session!.csrf;
  return page(
    { ...f, title: 'Portal links', section: 'portal-links' },
    html`<h1>Portal links</h1>
<p class="muted">A link opens the customer portal (/portal) on an owner's endpoints, or on a list of them. Its URL is shown once, when it is made.</p>
<section class="card">
  <h2>New link</h2>
  <form method="post" action="${projectPath(projectId, 'portal-links')}" class="stacked">
    ${csrfField(csrf)}
    <label>Name (shown to the customer) <input name="name" value="${form.name ?? ''}" required maxlength="200"></label>
    <label>Owner id (every endpoint of this owner) <input name="owner_id" value="${form.owner_id ?? ''}"></label>
    <label>…or endpoint ids, comma-separated <input name="endpoints" value="${form.endpoints ?? ''}"></label>
    <label>Kind <select name="kind">${option('one_time', 'one-time (opens once)', form.kind ?? 'one_time')}${option('long_lived', 'long-lived', form.kind ?? 'one_time')}</select></label>
    <label>Expires (ISO 8601 with a zone; blank: a one-time link lasts a day, a long-lived one until revoked) <input name="expires_at" value="${form.expires_at ?? ''}" placeholder="2030-01-31T12:00:00Z"></label>
    <label class="check"><input type="checkbox" name="can_manage_endpoint"${form.can_manage_endpoint === 'on' ? html` checked` : null}> The customer may pause, edit and rotate their endpoints</label>
    <button type="submit" class="primary">Create link</button>
  </form>
</section>
${links.length === 0
  ? html`<p class="empty">No portal links.</p>`
  : html`<div class="table-wrap"><table class="stack links">
<thead><tr><th>Name</th><th>Shows</th><th>Kind</th><th>State</th><th>Expires</th><th></th></tr></thead>
<tbody>${links.map((l) => html`<tr>
  <td data-label="Name">${l.name}</td>
  <td data-label="Shows">${l.owner_id ? html`owner ${l.owner_id}` : html`${(l.endpoints ?? []).length} endpoints`}</td>
  <td data-label="Kind">${l.kind}</td>
  <td data-label="State">${badge(l.status)}</td>
  <td data-label="Expires">${l.expires_at ? time(l.expires_at) : 'never'}</td>
  <td data-label="">${l.status === 'revoked' ? null : html`<form method="post" action="${projectPath(projectId, 'portal-links', l.uid, 'revoke')}" data-confirm="Revoke this link? Its sessions end at once.">${csrfField(csrf)}<button type="submit">Revoke</button></form>`}</td>
</tr>`)}</tbody></table></div>`}`,
  );
}

export function linkCreatedPage(f: Frame, projectId: string, name: string, url: string): string {
  return page(
    { ...f, title: 'Portal link created', section: 'portal-links' },
    html`<p class="crumbs"><a href="${projectPath(projectId, 'portal-links')}">Portal links</a> /</p>
<h1>Portal link created</h1>
<section class="card">
  <p><strong>Copy the URL now: it is shown only once.</strong> Send it to ${name}.</p>
  <div class="secret"><code id="link-url">${url}</code> <button type="button" class="copy" data-copy="link-url">Copy</button></div>
  <p><a href="${projectPath(projectId, 'portal-links')}">Back to portal links</a></p>
</section>`,
  );
}
