/** The portal's delivery list and delivery detail. Payloads and headers are the attacker's text. */
import type { AttemptRow } from '../api/deliveries-routes.ts';
import type { EventRow } from '../api/events-routes.ts';
import { DELIVERY_STATUSES, type DeliveryStatus } from '../core/types.ts';
import { textDeeperThan } from '../ingest/limits.ts';
import { RESENDABLE, type DeliveryRow } from '../dispatch/operations.ts';
import { html, href, time, type SafeHtml } from './html.ts';
import { page, statusBadge, type Frame } from './pages.ts';
import type { DeliveryListRow, PortalEndpoint } from './scope.ts';

/**
 * What the portal offers to retry: the deliveries at rest that the API may resend, except those
 * that succeeded (the API's operators may send a success again; a customer retries failures).
 */
export const RETRYABLE: readonly DeliveryStatus[] = RESENDABLE.filter((s) => s !== 'success');

/** The filter form's values as typed (shown back as they were, even when wrong). */
export interface FilterValues {
  status: string;
  endpoint_id: string;
  event_type: string;
  from: string;
  to: string;
  /** Kept from the URL (not in the form): rows per page. */
  per_page: string;
}

const latency = (ms: number | null): string => (ms === null ? '—' : ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(2)} s`);

export function deliveriesPage(
  f: Frame,
  endpoints: PortalEndpoint[],
  values: FilterValues,
  rows: DeliveryListRow[],
  next: string | null,
  paged: boolean,
): string {
  const option = (value: string, label: string, selected: string) => html`<option value="${value}"${value === selected ? html` selected` : null}>${label}</option>`;
  const filters = html`<form method="get" action="/portal/deliveries" class="filters" role="search">
  <label>Status <select name="status">${option('', 'Any', values.status)}${DELIVERY_STATUSES.map((s) => option(s, s, values.status))}</select></label>
  <label>Endpoint <select name="endpoint_id">${option('', 'Any', values.endpoint_id)}${endpoints.map((e) => option(e.id, e.name, values.endpoint_id))}</select></label>
  <label>Event type <input name="event_type" value="${values.event_type}" maxlength="200" placeholder="order.created"></label>
  <label>From (UTC) <input name="from" type="datetime-local" step="1" value="${values.from}"></label>
  <label>To (UTC) <input name="to" type="datetime-local" step="1" value="${values.to}"></label>
  ${values.per_page ? html`<input type="hidden" name="per_page" value="${values.per_page}">` : null}
  <div class="filter-actions"><button type="submit">Filter</button> <a href="/portal/deliveries">Clear</a></div>
</form>`;
  const body = rows.map(
    (d) => html`<tr>
  <td data-label="Status">${statusBadge(d.status)}${d.last_status_code !== null ? html` <span class="code">${d.last_status_code}</span>` : null}</td>
  <td data-label="Event type"><a href="/portal/deliveries/${d.id}">${d.event_type}</a></td>
  <td data-label="Endpoint">${d.endpoint_name}</td>
  <td data-label="Time">${time(d.created_at)}</td>
  <td data-label="Attempts">${d.attempts}</td>
  <td data-label="Latency">${latency(d.latency_ms)}</td>
</tr>`,
  );
  const query = { ...values };
  const pager = html`<nav class="pager" aria-label="Pages">
  ${paged ? html`<a href="${href('/portal/deliveries', query)}">← Newest</a>` : null}
  ${next ? html`<a href="${href('/portal/deliveries', { ...query, before: next })}" rel="next">Older →</a>` : null}
</nav>`;
  return page(
    { ...f, title: 'Deliveries', nav: 'deliveries' },
    html`<h1>Deliveries</h1>
${filters}
${rows.length === 0
  ? html`<p class="empty">No deliveries match.</p>`
  : html`<div class="table-wrap"><table class="stack deliveries">
<thead><tr><th>Status</th><th>Event type</th><th>Endpoint</th><th>Time</th><th>Attempts</th><th>Latency</th></tr></thead>
<tbody>${body}</tbody></table></div>`}
${pager}`,
  );
}

/**
 * Indentation grows with depth, so a deeply nested payload pretty-printed would grow with the
 * square of its depth (and JSON.stringify recurses): past this it is shown as stored.
 */
const PRETTY_MAX_DEPTH = 64;

/** JSON pretty-printed when it is JSON nested no deeper than PRETTY_MAX_DEPTH; otherwise as stored. */
function pretty(text: string): string {
  if (textDeeperThan(text, PRETTY_MAX_DEPTH)) return text;
  try {
    return JSON.stringify(JSON.parse(text), null, 2);
  } catch {
    return text;
  }
}

function headerTable(headers: Record<string, string | string[]>, empty: string): SafeHtml {
  const entries = Object.entries(headers).sort(([a], [b]) => a.localeCompare(b));
  if (entries.length === 0) return html`<p class="muted">${empty}</p>`;
  return html`<div class="table-wrap"><table class="headers"><tbody>${entries.map(
    ([k, v]) => html`<tr><th scope="row">${k}</th><td>${Array.isArray(v) ? v.join(', ') : String(v)}</td></tr>`,
  )}</tbody></table></div>`;
}

export interface DeliveryView {
  delivery: DeliveryRow;
  endpoint: PortalEndpoint;
  event: Pick<EventRow, 'data'> | null;
  /** With request headers already redacted. */
  attempts: AttemptRow[];
  /** The body as it was sent when it differs from the JSON (form-encoded endpoints). */
  sentBody: string | null;
}

export function deliveryPage(f: Frame, v: DeliveryView): string {
  const { delivery: d, endpoint: e, event, attempts } = v;
  const s = f.session!;
  const last = attempts.at(-1);
  const retry = RETRYABLE.includes(d.status)
    ? html`<form method="post" action="/portal/deliveries/${d.id}/retry" class="inline">
    <input type="hidden" name="_csrf" value="${s.csrf}">
    <button type="submit" class="primary">Retry</button>
  </form>`
    : null;
  // Newest first: the latest answer is what the reader came for.
  const attemptList = [...attempts].reverse().map(
    (a) => html`<article class="card attempt" id="attempt-${a.attempt}">
  <h3>Attempt ${a.attempt} ${a.status_code !== null ? html`<span class="code">${a.status_code}</span>` : html`<span class="code">no answer</span>`}</h3>
  <dl class="facts">
    <dt>Time</dt><dd>${time(a.created_at)}</dd>
    <dt>Latency</dt><dd>${latency(a.latency_ms)}</dd>
    <dt>URL</dt><dd class="url">${a.url}</dd>
    ${a.error ? html`<dt>Error</dt><dd class="error-text">${a.error_code ? html`<code>${a.error_code}</code> ` : null}${a.error}</dd>` : null}
  </dl>
  <h4>Response body</h4>
  ${a.response_body === '' ? html`<p class="muted">Empty.</p>` : html`<pre class="body response-body">${a.response_body}</pre>`}
  <details><summary>Response headers</summary>${headerTable(a.response_headers, 'None.')}</details>
  <details><summary>Request headers</summary>${headerTable(a.request_headers, 'None recorded.')}</details>
</article>`,
  );
  return page(
    { ...f, title: `Delivery ${d.event_type}`, nav: 'deliveries' },
    html`<p class="crumbs"><a href="/portal/deliveries">Deliveries</a> /</p>
<h1>${d.event_type}</h1>
<section class="card">
  <div class="summary"${d.status === 'scheduled' || d.status === 'processing' ? html` data-refresh="2"` : null}>${statusBadge(d.status)} ${retry}</div>
  <dl class="facts">
    <dt>Delivery</dt><dd><code>${d.id}</code></dd>
    <dt>Event</dt><dd><code>${d.event_id}</code></dd>
    <dt>Endpoint</dt><dd><a href="/portal/endpoints/${encodeURIComponent(e.id)}">${e.name}</a> <span class="url">${e.url}</span></dd>
    <dt>Created</dt><dd>${time(d.created_at)}</dd>
    <dt>Attempts</dt><dd>${d.attempts}</dd>
    ${d.next_attempt_at && (d.status === 'retry' || d.status === 'scheduled') ? html`<dt>Next attempt</dt><dd>${time(d.next_attempt_at)}</dd>` : null}
  </dl>
</section>
<section class="card">
  <h2>Payload</h2>
  ${event ? html`<pre class="body payload">${pretty(event.data)}</pre>` : html`<p class="muted">The event is no longer stored.</p>`}
  ${v.sentBody !== null ? html`<h3>Sent form-encoded as</h3><pre class="body">${v.sentBody}</pre>` : null}
  <h3>Headers sent</h3>
  ${last ? headerTable(last.request_headers, 'None recorded.') : html`<p class="muted">Not sent yet.</p>`}
  <p class="muted small">Signatures and credentials are hidden.</p>
</section>
<h2>Attempts</h2>
${attempts.length === 0 ? html`<p class="empty">No attempt yet.</p>` : attemptList}`,
  );
}
