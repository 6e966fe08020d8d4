/**
 * The dashboard's sources and dead letters. A source is shown as GET /sources answers it, its
 * credentials already redacted there; the pages show a verifier's type only, never its fields.
 * Dead letters' bodies and reasons are whatever a broker carried: only ever through `html`.
 */
import { html, href, time, type SafeHtml } from '../web/html.ts';
import type { ApiData } from './api-client.ts';
import { pager } from './delivery-pages.ts';
import { badge, csrfField, page, projectPath, type Frame } from './pages.ts';
import { RESPONSE_TYPES, VERIFIER_TYPES, keepsSecret, type SourceForm } from './source-form.ts';

/** A source as GET /sources answers it (the fields the pages read). */
export interface SourceLine {
  uid: string;
  name: string;
  type: string;
  url?: string;
  status: { state?: string; in_flight?: number; lag?: number | null; last_error?: string | null } | null;
  created_at: string;
}

/** Sources with their state (broker) or ingest URL (HTTP); the overview and the sources page both show it. */
export function sourcesTable(projectId: string, sources: SourceLine[]): SafeHtml {
  if (sources.length === 0) return html`<p class="empty">No sources: events come in through the API.</p>`;
  return html`<div class="table-wrap"><table class="stack sources">
<thead><tr><th>Source</th><th>Type</th><th>State / URL</th><th>In flight / lag</th><th>Last error</th></tr></thead>
<tbody>${sources.map((s) => html`<tr>
  <td data-label="Source"><a href="${projectPath(projectId, 'sources', s.uid)}">${s.name}</a> <span class="code">${s.uid}</span></td>
  <td data-label="Type">${s.type}</td>
  <td data-label="State">${s.type === 'http' ? html`<span class="url">${s.url ?? ''}</span>` : s.status?.state ? badge(s.status.state) : html`<span class="muted">not running here</span>`}</td>
  <td data-label="In flight / lag">${s.status?.in_flight ?? '—'} / ${s.status?.lag ?? '—'}</td>
  <td data-label="Last error">${s.status?.last_error ? html`<span class="error-text">${s.status.last_error}</span>` : html`<span class="muted">—</span>`}</td>
</tr>`)}</tbody></table></div>`;
}

export function sourcesPage(f: Frame, projectId: string, sources: SourceLine[]): string {
  return page(
    { ...f, title: 'Sources', section: 'sources' },
    html`<h1>Sources</h1>
<p><a href="${projectPath(projectId, 'sources', 'new')}">New source</a> · <a href="${projectPath(projectId, 'dead-letters')}">Dead letters</a> (broker messages Wharf could not take, kept with their reason)</p>
${sourcesTable(projectId, sources)}
<p class="muted small">Broker states are this process's (a source runs where its role runs sources). Sources are declared in the config file (shown here, changed there) or made here and through the API. Shown ${time(new Date())}.</p>`,
  );
}

function httpFacts(s: ApiData): SafeHtml {
  const http = (s.http ?? {}) as ApiData;
  const stats = s.status as ApiData;
  const failures = (stats?.recent_failures ?? []) as ApiData[];
  return html`<section class="card">
  <h2>Ingest URL</h2>
  <p class="muted">Providers post to this URL; give it to them as it is.</p>
  <div class="secret"><code id="ingest-url">${s.url ?? ''}</code> <button type="button" class="copy" data-copy="ingest-url">Copy</button></div>
  <dl class="facts">
    <dt>Verifier</dt><dd class="verifier">${http.verifier?.type ?? 'none'}</dd>
    <dt>Custom response</dt><dd>${http.custom_response ? html`<span class="code">${http.custom_response.content_type}</span><pre class="body custom-response">${http.custom_response.body}</pre>` : html`<span class="muted">none (Wharf's own answer)</span>`}</dd>
  </dl>
</section>
<section class="card">
  <h2>Requests</h2>
  ${stats
    ? html`<p>${stats.received} received · ${stats.stored} stored · ${stats.duplicate} duplicates · ${stats.unverified} unverified · ${stats.refused} refused <span class="muted small">(since this process started)</span></p>`
    : html`<p class="muted">No requests since this process started.</p>`}
  <h3>Recent failures</h3>
  ${failures.length === 0
    ? html`<p class="muted">None.</p>`
    : html`<table class="stack failures"><thead><tr><th>Time</th><th>Reason</th><th>From</th></tr></thead>
<tbody>${failures.map((x) => html`<tr><td data-label="Time">${time(x.at)}</td><td data-label="Reason" class="error-text">${x.reason}</td><td data-label="From" class="code">${x.remote_address}</td></tr>`)}</tbody></table>`}
</section>`;
}

function brokerFacts(projectId: string, s: ApiData, letters: ApiData[]): SafeHtml {
  const st = s.status as ApiData;
  return html`<section class="card">
  <h2>State</h2>
  ${st
    ? html`<dl class="facts">
    <dt>State</dt><dd>${badge(st.state)}</dd>
    <dt>In flight</dt><dd>${st.in_flight ?? '—'}</dd>
    <dt>Lag</dt><dd>${st.lag ?? html`<span class="muted">the broker does not tell</span>`}</dd>
    <dt>Messages</dt><dd>${st.messages ?? '—'}</dd>
    <dt>Last error</dt><dd>${st.last_error ? html`<span class="error-text">${st.last_error}</span>` : '—'}</dd>
  </dl>`
    : html`<p class="muted">Not running in this process (its role does not run sources, or it is starting).</p>`}
</section>
<section class="card">
  <h2>Dead letters</h2>
  ${deadLetterTable(projectId, letters)}
  <p><a href="${href(projectPath(projectId, 'dead-letters'), { source_id: s.uid })}">All of this source's dead letters</a></p>
</section>`;
}

const VERIFIER_LABELS: Record<string, string> = {
  none: 'none: accept every request (say so on purpose)',
  hmac: 'HMAC of the body (your header, hash, encoding)',
  basic_auth: 'HTTP Basic',
  api_key: 'API key header',
  github: 'GitHub (X-Hub-Signature-256)',
  shopify: 'Shopify (X-Shopify-Hmac-Sha256)',
  stripe: 'Stripe (Stripe-Signature)',
  standard_webhooks: 'Standard Webhooks / Svix (whsec_…)',
};

const selected = (on: boolean): SafeHtml | null => (on ? html` selected` : null);

/**
 * The create and edit form; `stored` is the source when editing. `brokerTypes` are the broker
 * types the API may create here (config `ingest.api_broker_types`). Credential inputs are always
 * blank: a page never shows a secret, typed or stored.
 */
export function sourceFormSection(f: Frame, action: string, form: SourceForm, stored: ApiData | null, brokerTypes: readonly string[]): SafeHtml {
  const v = form.verifier;
  const keeps = (key: string): string => (keepsSecret(stored, key) ? ' — blank keeps the stored one' : '');
  const types = stored ? [stored.type as string] : ['http', ...brokerTypes];
  return html`<form method="post" action="${action}" class="stacked source-form">
  ${csrfField(f.session!.csrf)}
  <label>Name <input name="name" value="${form.name}" maxlength="200" required></label>
  ${stored ? null : html`<label>Id (optional; letters, digits, "_", "." or "-"; generated when blank) <input name="id" value="${form.id}" maxlength="64"></label>`}
  <label>Type <select name="type">${types.map((t) => html`<option value="${t}"${selected(t === form.type)}>${t === 'http' ? 'http: Wharf takes requests at a URL of its own' : t}</option>`)}</select></label>
  ${stored ? null : brokerTypes.length === 0 ? html`<p class="muted small">Broker sources (kafka, sqs, pubsub, rabbitmq) come from the config file here: the operator has opened none of them to the API (<code>ingest.api_broker_types</code>).</p>` : null}
  <label>Event type (when a request or message carries none) <input name="event_type" value="${form.event_type}" maxlength="200"></label>
  <label>Headers to forward to endpoints (comma-separated, or *) <input name="forward_headers" value="${form.forward_headers}"></label>
  <label>Largest body (bytes; blank: 1 MiB) <input name="max_body_bytes" inputmode="numeric" value="${form.max_body_bytes}"></label>
  ${form.type === 'http' || !stored ? html`<fieldset>
    <legend>HTTP source</legend>
    <label>Verifier <select name="verifier_type">${VERIFIER_TYPES.map((t) => html`<option value="${t}"${selected(t === form.verifier_type)}>${VERIFIER_LABELS[t] ?? t}</option>`)}</select></label>
    <label>Secret (HMAC, GitHub, Shopify, Stripe, Standard Webhooks)${keeps('secret')} <input name="v_secret" type="password" autocomplete="off"></label>
    <label>Signature header (HMAC) <input name="v_header" value="${v.header ?? ''}"></label>
    <label>Hash (HMAC) <select name="v_hash"><option value=""${selected(!v.hash)}>SHA256 (default)</option><option${selected(v.hash === 'SHA256')}>SHA256</option><option${selected(v.hash === 'SHA512')}>SHA512</option></select></label>
    <label>Encoding (HMAC) <select name="v_encoding"><option value=""${selected(!v.encoding)}>hex (default)</option><option${selected(v.encoding === 'hex')}>hex</option><option${selected(v.encoding === 'base64')}>base64</option></select></label>
    <label>Mode (HMAC) <select name="v_mode"><option value="simple"${selected(v.mode !== 'advanced')}>simple: the header holds the digest of the body</option><option value="advanced"${selected(v.mode === 'advanced')}>advanced: t=…,v1=… over the time and the body</option></select></label>
    <label>Prefix before the digest (HMAC simple, e.g. sha256=) <input name="v_prefix" value="${v.prefix ?? ''}"></label>
    <label>Tolerance in seconds (HMAC advanced, Stripe, Standard Webhooks; blank: 300) <input name="v_tolerance" inputmode="numeric" value="${v.tolerance ?? ''}"></label>
    <label>Username (Basic) <input name="v_username" value="${v.username ?? ''}" autocomplete="off"></label>
    <label>Password (Basic)${keeps('password')} <input name="v_password" type="password" autocomplete="off"></label>
    <label>Header name (API key) <input name="v_header_name" value="${v.header_name ?? ''}"></label>
    <label>Header value (API key)${keeps('header_value')} <input name="v_header_value" type="password" autocomplete="off"></label>
    <label>Event type from each request (header:X-Event-Type, body:data.type or query:type) <input name="event_type_location" value="${form.event_type_location}"></label>
    <label>Idempotency keys (such locations, one per line) <textarea name="idempotency_keys" rows="2">${form.idempotency_keys}</textarea></label>
    <label>Custom response body (blank: Wharf's own JSON answer) <textarea name="custom_response_body" rows="3" maxlength="10000">${form.custom_response_body}</textarea></label>
    <label>Custom response type <select name="custom_response_type">${RESPONSE_TYPES.map((t) => html`<option${selected(t === form.custom_response_type)}>${t}</option>`)}</select></label>
  </fieldset>` : null}
  ${form.type !== 'http' || (!stored && brokerTypes.length > 0) ? html`<fieldset>
    <legend>Broker source</legend>
    <label>Format <select name="format"><option value="envelope"${selected(form.format !== 'raw')}>envelope: Convoy's JSON with its own event type</option><option value="raw"${selected(form.format === 'raw')}>raw: the whole message is the event's data</option></select></label>
    <label>Header with the event type (raw) <input name="event_type_header" value="${form.event_type_header}"></label>
    <label>The ${stored ? form.type : 'broker'}'s settings (JSON, the keys the config file takes; credentials show as ********, which keeps them) <textarea name="settings" rows="6" class="code">${form.settings}</textarea></label>
  </fieldset>` : null}
  <button type="submit" class="primary">${stored ? 'Save' : 'Create source'}</button>
</form>`;
}

export function newSourcePage(f: Frame, projectId: string, form: SourceForm, brokerTypes: readonly string[]): string {
  return page(
    { ...f, title: 'New source', section: 'sources' },
    html`<p class="crumbs"><a href="${projectPath(projectId, 'sources')}">Sources</a> /</p>
<h1>New source</h1>
<p class="muted">An HTTP source gets an ingest URL to give a provider; its verifier checks each request before anything is stored.</p>
<section class="card">${sourceFormSection(f, projectPath(projectId, 'sources', 'new'), form, null, brokerTypes)}</section>`,
  );
}

/** The edit form and delete button, or why the source cannot be changed here. */
function sourceSettings(f: Frame, projectId: string, s: ApiData, form: SourceForm): SafeHtml {
  if (s.from_config) {
    return html`<section class="card"><h2>Settings</h2><p class="muted">Declared in the config file: change it there (the API and this page keep the file's word).</p></section>`;
  }
  const base = projectPath(projectId, 'sources', s.uid);
  return html`<section class="card">
  <h2>Settings</h2>
  ${sourceFormSection(f, `${base}/edit`, form, s, [])}
</section>
<section class="card">
  <h2>Delete</h2>
  <form method="post" action="${base}/delete" data-confirm="Delete this source? Its URL stops taking requests.">${csrfField(f.session!.csrf)}<button type="submit">Delete source</button></form>
</section>`;
}

export function sourcePage(f: Frame, projectId: string, s: ApiData, letters: ApiData[], form: SourceForm): string {
  return page(
    { ...f, title: s.name, section: 'sources' },
    html`<p class="crumbs"><a href="${projectPath(projectId, 'sources')}">Sources</a> /</p>
<h1>${s.name}</h1>
<section class="card">
<dl class="facts">
  <dt>Id</dt><dd class="code">${s.uid}</dd>
  <dt>Type</dt><dd>${s.type}</dd>
  <dt>Declared in</dt><dd>${s.from_config ? 'the config file' : 'the API'}</dd>
  <dt>Created</dt><dd>${time(s.created_at)}</dd>
</dl>
</section>
${s.type === 'http' ? httpFacts(s) : brokerFacts(projectId, s, letters)}
${sourceSettings(f, projectId, s, form)}`,
  );
}

function deadLetterTable(projectId: string, letters: ApiData[], csrf?: string): SafeHtml {
  if (letters.length === 0) return html`<p class="empty">No dead letters.</p>`;
  return html`<div class="table-wrap"><table class="stack dead-letters">
<thead><tr><th>Reason</th><th>Source</th><th>Seen</th><th>Received</th><th>Body</th><th></th></tr></thead>
<tbody>${letters.map((l) => html`<tr>
  <td data-label="Reason"><span class="code">${l.code}</span> <span class="error-text">${l.reason}</span></td>
  <td data-label="Source"><a href="${projectPath(projectId, 'sources', l.source_id)}" class="code">${l.source_id}</a></td>
  <td data-label="Seen">${l.times_seen}×</td>
  <td data-label="Received">${time(l.received_at)}</td>
  <td data-label="Body">${l.body_preview === null ? html`<span class="muted">${l.body_size} bytes, not text</span>` : html`<code class="preview">${l.body_preview}${l.body_truncated ? '…' : ''}</code>`}</td>
  <td data-label="">${l.replayed_at
    ? html`<a href="${projectPath(projectId, 'events', l.event_id)}">replayed</a>`
    : csrf
      ? html`<form method="post" action="${projectPath(projectId, 'dead-letters', l.uid, 'replay')}">${csrfField(csrf)}<button type="submit">Replay</button></form>`
      : html`<span class="muted">not replayed</span>`}</td>
</tr>`)}</tbody></table></div>`;
}

export interface DeadLetterFilters {
  source_id: string;
  code: string;
  replayed: string;
}

export function deadLettersPage(f: Frame, projectId: string, filters: DeadLetterFilters, letters: ApiData[], next: string | null): string {
  const path = projectPath(projectId, 'dead-letters');
  const opt = (v: string, label: string) => html`<option value="${v}"${v === filters.replayed ? html` selected` : null}>${label}</option>`;
  return page(
    { ...f, title: 'Dead letters', section: 'sources' },
    html`<p class="crumbs"><a href="${projectPath(projectId, 'sources')}">Sources</a> /</p>
<h1>Dead letters</h1>
<p class="muted">Broker messages Wharf could not take (not JSON, no event type, no such endpoint…), acked so they never block their queue. Replay one once the cause is fixed: it goes through the source's settings again.</p>
<form method="get" class="filters" role="search">
  <label>Source id <input name="source_id" value="${filters.source_id}"></label>
  <label>Code <input name="code" value="${filters.code}"></label>
  <label>Replayed <select name="replayed">${opt('', 'any')}${opt('false', 'not yet')}${opt('true', 'replayed')}</select></label>
  <div class="filter-actions"><button type="submit">Filter</button> <a href="${path}">Clear</a></div>
</form>
${deadLetterTable(projectId, letters, f.session!.csrf)}
${pager(path, { ...filters }, next)}`,
  );
}
