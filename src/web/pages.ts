/**
 * What the portal's and the dashboard's HTML pages share: security headers on every answer, form
 * bodies, the static files, and the page frame. Each calls these inside its own fastify plugin,
 * so the hooks and parsers stay off the JSON API.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { html, type SafeHtml } from './html.ts';

const ASSETS = join(import.meta.dirname, 'assets');

/** The only files pages load: one stylesheet and one script (the CSP allows nothing inline). */
export const ASSET_FILES = ['wharf.css', 'wharf.js'] as const;

export interface Asset {
  type: string;
  body: string;
}

/** The shared static files, read once at start. */
export async function loadAssets(): Promise<Record<(typeof ASSET_FILES)[number], Asset>> {
  return {
    'wharf.css': { type: 'text/css; charset=utf-8', body: await readFile(join(ASSETS, 'wharf.css'), 'utf8') },
    'wharf.js': { type: 'text/javascript; charset=utf-8', body: await readFile(join(ASSETS, 'wharf.js'), 'utf8') },
  };
}

/**
 * A strict CSP (scripts and styles from this origin only, nothing inline), nosniff, no referrer
 * and no caching on every answer of the plugin, and urlencoded form bodies (the first of a
 * repeated field counts).
 */
export function securePages(app: FastifyInstance, frameAncestors: string): void {
  const csp = [
    "default-src 'none'",
    "style-src 'self'",
    "script-src 'self'",
    "img-src 'self' data:",
    "form-action 'self'",
    `frame-ancestors ${frameAncestors}`,
    "base-uri 'none'",
  ].join('; ');
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string', bodyLimit: 65_536 }, (_req, body, done) => {
    const out: Record<string, string> = {};
    for (const [k, v] of new URLSearchParams(body as string)) if (!(k in out)) out[k] = v;
    done(null, out);
  });
  app.addHook('onSend', async (_req, res, payload) => {
    res.header('content-security-policy', csp);
    res.header('x-content-type-options', 'nosniff');
    res.header('referrer-policy', 'no-referrer');
    res.header('cache-control', 'no-store');
    // For browsers that predate frame-ancestors.
    if (frameAncestors.trim() === "'none'") res.header('x-frame-options', 'DENY');
    if (!res.hasHeader('content-type')) res.header('content-type', 'text/html; charset=utf-8');
    return payload;
  });
}

export interface Layout {
  /** The page's own title, before the site's name. */
  title: string;
  /** What the <title> ends with (`Webhooks`, `Wharf dashboard`). */
  site: string;
  /** Where the plugin serves ASSET_FILES (`/portal/assets`). */
  assets: string;
  /** The stylesheet and script names under `assets` (the portal keeps its older names). */
  css: string;
  js: string;
  brand: string | SafeHtml;
  /** The navigation of a signed-in page (null: none). */
  nav: SafeHtml | null;
  /** A confirmation from a fixed list (never request text). */
  notice?: string | null;
  /** What was wrong with the request, shown above the page's content. */
  error?: string | null;
}

export function layout(l: Layout, body: SafeHtml): string {
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>${l.title} · ${l.site}</title>
<link rel="stylesheet" href="${l.assets}/${l.css}">
<script src="${l.assets}/${l.js}" defer></script>
</head>
<body>
<header class="top">
  <div class="brand">${l.brand}</div>
  ${l.nav}
</header>
<main>
${l.notice ? html`<p class="notice" role="status">${l.notice}</p>` : null}
${l.error ? html`<p class="error" role="alert">${l.error}</p>` : null}
${body}
</main>
</body>
</html>
`.value;
}
