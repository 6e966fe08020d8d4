/** The dashboard's page frame, sign-in and overview pages. Every value goes through `html`. */
import { html, href, time, type SafeHtml } from '../web/html.ts';
import { layout } from '../web/pages.ts';
import type { ApiData } from './api-client.ts';
import { sourcesTable, type SourceLine } from './source-pages.ts';

export type Section = 'overview' | 'endpoints' | 'events' | 'deliveries' | 'sources' | 'subscriptions' | 'portal-links';

export interface Frame {
  title: string;
  /** Signed in: the sign-out form's token, and whether every project is open (the operator). */
  session?: { csrf: string; operator: boolean };
  /** The project the page belongs to, for its navigation. */
  project?: { id: string; name: string };
  section?: Section;
  notice?: string | null;
  error?: string | null;
}

/** `/dashboard/projects/{id}` and below, with encoded segments. */
export function projectPath(projectId: string, ...rest: string[]): string {
  return ['/dashboard/projects', projectId, ...rest].map((p, i) => (i === 0 ? p : encodeURIComponent(p))).join('/');
}

export function page(f: Frame, body: SafeHtml): string {
  const s = f.session;
  const p = f.project;
  const current = (n: Section) => (f.section === n ? 'page' : 'false');
  const sections: [Section, string, string][] = p
    ? [
        ['overview', 'Overview', projectPath(p.id)],
        ['endpoints', 'Endpoints', projectPath(p.id, 'endpoints')],
        ['events', 'Events', projectPath(p.id, 'events')],
        ['deliveries', 'Deliveries', projectPath(p.id, 'deliveries')],
        ['sources', 'Sources', projectPath(p.id, 'sources')],
        ['subscriptions', 'Subscriptions', projectPath(p.id, 'subscriptions')],
        ['portal-links', 'Portal links', projectPath(p.id, 'portal-links')],
      ]
    : [];
  const nav = s
    ? html`<nav>
    ${s.operator ? html`<a href="/dashboard/projects" aria-current="${p ? 'false' : 'page'}">Projects</a>` : null}
    ${sections.map(([key, label, to]) => html`<a href="${to}" aria-current="${current(key)}">${label}</a>`)}
    <form method="post" action="/dashboard/logout" class="inline">
      <input type="hidden" name="_csrf" value="${s.csrf}">
      <button type="submit" class="link">Sign out</button>
    </form>
  </nav>`
    : null;
  const brand = p ? html`Wharf · ${p.name}` : html`Wharf`;
  return layout(
    { title: f.title, site: 'Wharf dashboard', assets: '/dashboard/assets', css: 'wharf.css', js: 'wharf.js', brand, nav, notice: f.notice, error: f.error },
    body,
  );
}

export function messagePage(f: Frame, title: string, message: string): string {
  return page({ ...f, title }, html`<section class="card narrow"><h1>${title}</h1><p>${message}</p></section>`);
}

/** A state as a badge; statuses the API spells as Convoy does (`Success`) are shown in Wharf's. */
export function badge(status: string): SafeHtml {
  const s = String(status).toLowerCase();
  return html`<span class="badge status-${s}">${s}</span>`;
}

/** A hidden CSRF field; every form has one. */
export const csrfField = (csrf: string): SafeHtml => html`<input type="hidden" name="_csrf" value="${csrf}">`;

export function signInPage(loginCsrf: string, error: string | null, status?: string): string {
  return page(
    { title: 'Sign in', error },
    html`<section class="card narrow">
  <h1>Sign in</h1>
  ${status ? html`<p class="muted">${status}</p>` : null}
  <p class="muted">With a project's API key (that project only) or the operator token (<code>server.operator_token</code>, every project).</p>
  <form method="post" action="/dashboard/login" class="stacked">
    ${csrfField(loginCsrf)}
    <label>API key or operator token <input name="credential" type="password" autocomplete="current-password" required autofocus></label>
    <button type="submit" class="primary">Sign in</button>
  </form>
</section>`,
  );
}

export interface ProjectSummary {
  id: string;
  name: string;
  endpoints: Record<string, number>;
  /** Deliveries by status, made in the last hour and the last day. */
  hour: Record<string, number>;
  day: Record<string, number>;
}

const ENDPOINT_STATES = ['active', 'pending', 'paused', 'inactive'];
const DELIVERY_STATES = ['success', 'failure', 'retry', 'scheduled', 'processing', 'discarded'];
const total = (counts: Record<string, number>): number => Object.values(counts).reduce((a, b) => a + b, 0);

export function projectsPage(f: Frame, projects: ProjectSummary[]): string {
  const rows = projects.map(
    (p) => html`<tr>
  <td data-label="Project"><a href="${projectPath(p.id)}">${p.name}</a> <span class="code">${p.id}</span></td>
  <td data-label="Endpoints">${total(p.endpoints)} ${(p.endpoints.inactive ?? 0) > 0 ? html`<span class="badge status-inactive">${p.endpoints.inactive} inactive</span>` : null}</td>
  <td data-label="Last hour">${total(p.hour)} ${(p.hour.failure ?? 0) > 0 ? html`<span class="badge status-failure">${p.hour.failure} failed</span>` : null}</td>
  <td data-label="Last day">${total(p.day)} ${(p.day.failure ?? 0) > 0 ? html`<span class="badge status-failure">${p.day.failure} failed</span>` : null}</td>
</tr>`,
  );
  return page(
    { ...f, title: 'Projects' },
    html`<h1>Projects</h1>
${projects.length === 0
  ? html`<p class="empty">No projects.</p>`
  : html`<div class="table-wrap"><table class="stack">
<thead><tr><th>Project</th><th>Endpoints</th><th>Deliveries, last hour</th><th>Last day</th></tr></thead>
<tbody>${rows}</tbody></table></div>`}`,
  );
}

/** Counts as a table with a bar (<meter>, which needs no inline style) for each. */
function countTable(label: string, states: string[], columns: { name: string; counts: Record<string, number> }[]): SafeHtml {
  const known = [...states, ...new Set(columns.flatMap((c) => Object.keys(c.counts)).filter((s) => !states.includes(s)))];
  return html`<table class="counts">
<thead><tr><th>${label}</th>${columns.map((c) => html`<th>${c.name}</th>`)}</tr></thead>
<tbody>${known.map(
    (s) => html`<tr><td>${badge(s)}</td>${columns.map((c) => {
      const n = c.counts[s] ?? 0;
      return html`<td><span class="count">${n}</span> <meter min="0" max="${Math.max(1, total(c.counts))}" value="${n}" title="${n} of ${total(c.counts)}"></meter></td>`;
    })}</tr>`,
  )}</tbody></table>`;
}

export function overviewPage(f: Frame, summary: ProjectSummary, sources: SourceLine[], alerts: ApiData[]): string {
  const id = summary.id;
  return page(
    { ...f, title: summary.name, section: 'overview' },
    html`<h1>${summary.name}</h1>
<div class="grid">
<section class="card">
  <h2>Endpoints</h2>
  ${countTable('State', ENDPOINT_STATES, [{ name: 'Endpoints', counts: summary.endpoints }])}
  <p><a href="${projectPath(id, 'endpoints')}">All endpoints</a> · <a href="${projectPath(id, 'endpoints', 'new')}">New endpoint</a></p>
</section>
<section class="card">
  <h2>Deliveries</h2>
  ${countTable('Status', DELIVERY_STATES, [
    { name: 'Last hour', counts: summary.hour },
    { name: 'Last day', counts: summary.day },
  ])}
  <p><a href="${href(projectPath(id, 'deliveries'), { status: 'failure' })}">Failed deliveries</a></p>
</section>
</div>
<h2>Sources</h2>
${sourcesTable(id, sources)}
<p class="muted small">Broker states are this process's (a source runs where its role runs sources). Shown ${time(new Date())}.</p>
<h2>Recent alerts</h2>
${alerts.length === 0
  ? html`<p class="empty">No alerts: Wharf tells an endpoint's alert URL, or the project's, when an endpoint is disabled or recovers.</p>`
  : html`<div class="table-wrap"><table class="stack alerts">
<thead><tr><th>Alert</th><th>Endpoint</th><th>Sent to</th><th>Outcome</th><th>Time</th></tr></thead>
<tbody>${alerts.map((a) => html`<tr>
  <td data-label="Alert">${a.event_type}</td>
  <td data-label="Endpoint">${a.endpoint_id ? html`<a href="${projectPath(id, 'endpoints', a.endpoint_id)}" class="code">${a.endpoint_id}</a>` : html`<span class="muted">—</span>`}</td>
  <td data-label="Sent to" class="url">${a.url}</td>
  <td data-label="Outcome">${badge(String(a.status))}${a.last_error ? html` <span class="error-text">${a.last_error}</span>` : null}</td>
  <td data-label="Time">${time(a.created_at)}</td>
</tr>`)}</tbody></table></div>`}`,
  );
}
