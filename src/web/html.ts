/**
 * HTML for Wharf's pages (the customer portal and the operator dashboard), built with one tagged
 * template: every interpolated value is escaped by
 * `escapeHtml` unless it is already `SafeHtml` (the output of another `html` template). Payloads,
 * headers and response bodies come from attackers as far as the page is concerned, so nothing
 * reaches a page any other way.
 */

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/** Text made safe for element content and for quoted attribute values alike. */
export function escapeHtml(value: string): string {
  return value.replace(/[&<>"']/g, (c) => ESCAPES[c]!);
}

/** Markup that is already escaped; only `html` makes these. */
export class SafeHtml {
  readonly value: string;
  constructor(value: string) {
    this.value = value;
  }
  toString(): string {
    return this.value;
  }
}

export type Interpolation = SafeHtml | string | number | boolean | null | undefined | Date | readonly Interpolation[];

function render(v: Interpolation): string {
  if (v === null || v === undefined || v === false) return '';
  if (v instanceof SafeHtml) return v.value;
  if (Array.isArray(v)) return v.map(render).join('');
  if (v instanceof Date) return escapeHtml(v.toISOString());
  return escapeHtml(String(v));
}

/** The only way markup is written: html`<p>${untrusted}</p>`. `false`/null/undefined render nothing. */
export function html(strings: TemplateStringsArray, ...values: Interpolation[]): SafeHtml {
  let out = strings[0]!;
  for (let i = 0; i < values.length; i++) out += render(values[i]!) + strings[i + 1]!;
  return new SafeHtml(out);
}

/** A page path with encoded segments and an optional query (empty values left out). */
export function href(path: string, query: Record<string, string | null | undefined> = {}): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) if (v !== null && v !== undefined && v !== '') q.set(k, v);
  const s = q.toString();
  return s ? `${path}?${s}` : path;
}

/** `2026-01-31 12:34:56 UTC` in a <time> element the page's script turns into local time. */
export function time(at: Date | string | null): SafeHtml {
  if (at === null) return html`<span class="muted">—</span>`;
  const d = at instanceof Date ? at : new Date(at);
  const iso = d.toISOString();
  return html`<time datetime="${iso}">${iso.slice(0, 19).replace('T', ' ')} UTC</time>`;
}
