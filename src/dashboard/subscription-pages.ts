/**
 * The dashboard's subscriptions: the list, the create and edit form (event types and the filter
 * as JSON), and a box that tries a filter on a sample event through the API's test_filter.
 */
import { html, time, type SafeHtml } from '../web/html.ts';
import type { ApiData } from './api-client.ts';
import { csrfField, page, projectPath, type Frame } from './pages.ts';

export interface SubscriptionForm {
  name: string;
  endpoint_id: string;
  source_id: string;
  /** Comma-separated. */
  event_types: string;
  /** filter_config.filter as JSON text. */
  filter: string;
}

export interface FilterTest {
  filter: string;
  body: string;
  headers: string;
  /** The API's verdict; null before a test. */
  matches: boolean | null;
}

const pretty = (v: unknown): string => JSON.stringify(v, null, 2);

/** The form filled from a subscription as the API answers it. */
export function subscriptionFormOf(s: ApiData): SubscriptionForm {
  const fc = (s.filter_config ?? {}) as ApiData;
  return {
    name: String(s.name ?? ''),
    endpoint_id: String(s.endpoint_id ?? ''),
    source_id: s.source_id ?? '',
    event_types: ((fc.event_types ?? ['*']) as string[]).join(', '),
    filter: pretty(fc.filter ?? { body: {}, headers: {} }),
  };
}

export const EMPTY_SUBSCRIPTION: SubscriptionForm = { name: '', endpoint_id: '', source_id: '', event_types: '*', filter: pretty({ body: {}, headers: {} }) };

function choices(items: ApiData[], current: string, none: string | null): SafeHtml {
  const known = items.some((i) => i.uid === current);
  return html`${none === null ? null : html`<option value=""${current === '' ? html` selected` : null}>${none}</option>`}${items.map(
    (i) => html`<option value="${i.uid}"${i.uid === current ? html` selected` : null}>${i.name} (${i.uid})</option>`,
  )}${current !== '' && !known ? html`<option value="${current}" selected>${current}</option>` : null}`;
}

function subscriptionForm(f: Frame, action: string, form: SubscriptionForm, endpoints: ApiData[], sources: ApiData[], editing: boolean): SafeHtml {
  return html`<form method="post" action="${action}" class="stacked subscription-form">
  ${csrfField(f.session!.csrf)}
  <label>Name <input name="name" value="${form.name}" maxlength="200"></label>
  <label>Endpoint <select name="endpoint_id" required>${choices(endpoints, form.endpoint_id, editing ? null : '— choose —')}</select></label>
  <label>Source (only its events; none: every source and the API) <select name="source_id">${choices(sources, form.source_id, 'any')}</select></label>
  <label>Event types (comma-separated; <code>*</code> for all, <code>order.*</code> for a prefix) <input name="event_types" value="${form.event_types}"></label>
  <label>Filter (JSON: <code>{"body": {…}, "headers": {…}}</code>, Convoy's operators such as <code>$gte</code>, <code>$in</code>) <textarea name="filter" rows="8" spellcheck="false">${form.filter}</textarea></label>
  <button type="submit" class="primary">${editing ? 'Save' : 'Create subscription'}</button>
</form>`;
}

function testBox(f: Frame, projectId: string, t: FilterTest): SafeHtml {
  return html`<section class="card" id="test-filter">
  <h2>Test this filter</h2>
  <p class="muted">Tries the filter on a sample event, as routing would; nothing is stored or sent.</p>
  <form method="post" action="${projectPath(projectId, 'subscriptions', 'test-filter')}" class="stacked">
    ${csrfField(f.session!.csrf)}
    <label>Filter (JSON) <textarea name="filter" rows="6" spellcheck="false">${t.filter}</textarea></label>
    <label>Sample body (JSON) <textarea name="body" rows="6" spellcheck="false">${t.body}</textarea></label>
    <label>Sample headers (JSON object) <textarea name="headers" rows="3" spellcheck="false">${t.headers}</textarea></label>
    <button type="submit">Test</button>
  </form>
  ${t.matches === null
    ? null
    : html`<p class="verdict ${t.matches ? 'verdict-match' : 'verdict-miss'}" role="status"><strong>${t.matches ? 'The filter matches this event.' : 'The filter does not match this event.'}</strong></p>`}
</section>`;
}

export function subscriptionsPage(f: Frame, projectId: string, subs: ApiData[], test: FilterTest): string {
  return page(
    { ...f, title: 'Subscriptions', section: 'subscriptions' },
    html`<h1>Subscriptions</h1>
<p class="muted">A subscription sends an endpoint the events of the types it names (from one source, or all) that pass its filter.</p>
<p><a href="${projectPath(projectId, 'subscriptions', 'new')}">New subscription</a></p>
${subs.length === 0
  ? html`<p class="empty">No subscriptions.</p>`
  : html`<div class="table-wrap"><table class="stack subscriptions">
<thead><tr><th>Name</th><th>Endpoint</th><th>Source</th><th>Event types</th><th>Filter</th><th>Created</th></tr></thead>
<tbody>${subs.map((s) => html`<tr>
  <td data-label="Name"><a href="${projectPath(projectId, 'subscriptions', s.uid)}">${s.name}</a>${s.from_config ? html` <span class="muted small">(config file)</span>` : null}</td>
  <td data-label="Endpoint"><a href="${projectPath(projectId, 'endpoints', s.endpoint_id)}" class="code">${s.endpoint_id}</a></td>
  <td data-label="Source" class="code">${s.source_id ?? 'any'}</td>
  <td data-label="Event types" class="code">${(s.filter_config?.event_types ?? []).join(', ')}</td>
  <td data-label="Filter"><code class="preview">${JSON.stringify(s.filter_config?.filter ?? {})}</code></td>
  <td data-label="Created">${time(s.created_at)}</td>
</tr>`)}</tbody></table></div>`}
${testBox(f, projectId, test)}`,
  );
}

export function newSubscriptionPage(f: Frame, projectId: string, form: SubscriptionForm, endpoints: ApiData[], sources: ApiData[]): string {
  return page(
    { ...f, title: 'New subscription', section: 'subscriptions' },
    html`<p class="crumbs"><a href="${projectPath(projectId, 'subscriptions')}">Subscriptions</a> /</p>
<h1>New subscription</h1>
<section class="card">${subscriptionForm(f, projectPath(projectId, 'subscriptions', 'new'), form, endpoints, sources, false)}</section>`,
  );
}

export function subscriptionPage(f: Frame, projectId: string, s: ApiData, form: SubscriptionForm, endpoints: ApiData[], sources: ApiData[], test: FilterTest): string {
  const base = projectPath(projectId, 'subscriptions', s.uid);
  return page(
    { ...f, title: s.name, section: 'subscriptions' },
    html`<p class="crumbs"><a href="${projectPath(projectId, 'subscriptions')}">Subscriptions</a> /</p>
<h1>${s.name}</h1>
<section class="card">
<dl class="facts">
  <dt>Id</dt><dd class="code">${s.uid}</dd>
  <dt>Updated</dt><dd>${time(s.updated_at)}</dd>
</dl>
${s.from_config
  ? html`<p class="muted">Declared in the config file: change it there.</p><pre class="body">${form.filter}</pre>`
  : html`${subscriptionForm(f, `${base}/edit`, form, endpoints, sources, true)}
<form method="post" action="${base}/delete" data-confirm="Delete this subscription? Its endpoint stops getting these events.">${csrfField(f.session!.csrf)}<button type="submit">Delete</button></form>`}
</section>
${testBox(f, projectId, test)}`,
  );
}
