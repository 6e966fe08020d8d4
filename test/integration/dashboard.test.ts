/**
 * The operator dashboard over HTTP: sign-in with a project key or the operator token, what a
 * project key may see and do (nothing of another project: every route tried with foreign ids is
 * not found and changes nothing), CSRF and cross-site refusals, tenant text escaped, the CSP, and
 * the in-process credential that only app.inject() can use.
 */
import Fastify from 'fastify';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createInternalCredential } from '../../src/web/internal-credential.ts';
import { startTestApp, type TestApp } from '../harness/app.ts';
import { createTestCerts } from '../harness/certs.ts';
import { portalClient } from '../harness/portal.ts';
import { startReceiver, type Receiver } from '../harness/receiver.ts';

interface Page {
  status: number;
  headers: Headers;
  text: string;
  location: string | null;
}

/** A browser in the dashboard: keeps the session cookie and posts forms as a dashboard page does. */
function dashboardClient(baseUrl: string) {
  let cookie = '';
  let csrf: string | null = null;
  const request = async (method: string, path: string, init: { body?: string; headers?: Record<string, string> } = {}): Promise<Page> => {
    const res = await fetch(`${baseUrl}${path}`, { method, redirect: 'manual', headers: { ...(cookie ? { cookie } : {}), ...init.headers }, body: init.body });
    return { status: res.status, headers: res.headers, text: await res.text(), location: res.headers.get('location') };
  };
  const form = (fields: Record<string, string>, headers: Record<string, string | null> = {}) => {
    const sent: Record<string, string> = {};
    for (const [k, v] of Object.entries({ 'content-type': 'application/x-www-form-urlencoded', origin: baseUrl, 'sec-fetch-site': 'same-origin', ...headers })) if (v !== null) sent[k] = v;
    return { body: new URLSearchParams(fields).toString(), headers: sent };
  };
  const client = {
    get cookie() {
      return cookie;
    },
    /** Opens the sign-in page and posts the credential with the page's token. */
    async signIn(credential: string): Promise<Page> {
      const login = await request('GET', '/dashboard');
      const loginCookie = /wharf_dashboard_login=([^;]*)/.exec(login.headers.get('set-cookie') ?? '')?.[1];
      const token = /name="_csrf" value="([^"]+)"/.exec(login.text)?.[1];
      if (!loginCookie || !token) throw new Error(`no sign-in form (status ${login.status})`);
      cookie = `wharf_dashboard_login=${loginCookie}`;
      const res = await request('POST', '/dashboard/login', form({ _csrf: token, credential }));
      const session = /wharf_dashboard=([^;]*)/.exec(res.headers.get('set-cookie') ?? '')?.[1];
      cookie = session ? `wharf_dashboard=${session}` : '';
      csrf = null;
      return res;
    },
    get: (path: string) => request('GET', path),
    /** A form post with the session's CSRF token unless `_csrf` is given (null: none). */
    async post(path: string, fields: Record<string, string | null> = {}, headers: Record<string, string | null> = {}): Promise<Page> {
      const sent: Record<string, string> = {};
      if (!('_csrf' in fields)) sent._csrf = await client.csrf();
      for (const [k, v] of Object.entries(fields)) if (v !== null) sent[k] = v;
      return request('POST', path, form(sent, headers));
    },
    async csrf(): Promise<string> {
      if (csrf) return csrf;
      const page = await request('GET', '/dashboard/projects');
      const followed = page.location ? await request('GET', page.location) : page;
      const m = /name="_csrf" value="([^"]+)"/.exec(followed.text);
      if (!m) throw new Error(`no CSRF token (status ${followed.status})`);
      csrf = m[1]!;
      return csrf;
    },
  };
  return client;
}

const HOSTILE = '<script>window.__pwned=1</script><img src=x onerror=alert(1)>';

describe('dashboard', () => {
  let t: TestApp;
  let rx: Receiver;
  /** Ids in project `other`, which the `default` key must never reach. */
  const foreign: Record<string, string> = {};
  /** Ids in project `default`. */
  const own: Record<string, string> = {};

  beforeAll(async () => {
    rx = await startReceiver();
    t = await startTestApp({ projects: [{ id: 'default', name: 'Default' }, { id: 'other', name: 'Other' }] });
    for (const project of ['default', 'other']) {
      const ids = project === 'default' ? own : foreign;
      const e = await t.api('POST', '/endpoints', { name: `${project} hook`, url: `${rx.url}/${project}`, owner_id: 'acme' }, project);
      expect(e.status, e.text).toBe(201);
      ids.endpoint = e.body.data.uid;
      const ev = await t.api('POST', '/events', { endpoint_id: ids.endpoint, event_type: `${project}.created`, data: { project } }, project);
      expect(ev.status, ev.text).toBe(201);
      ids.event = ev.body.data.uid;
      const link = await t.api('POST', '/portal-links', { name: `${project} portal`, owner_id: 'acme', kind: 'long_lived' }, project);
      ids.link = link.body.data.uid;
    }
    for (const [project, ids] of [['default', own], ['other', foreign]] as const) {
      await vi.waitFor(
        async () => {
          const list = (await t.api('GET', `/eventdeliveries?event_id=${ids.event}`, undefined, project)).body.data.content;
          expect(String(list[0]?.status).toLowerCase()).toBe('success');
          ids.delivery = list[0].uid;
        },
        { timeout: 20_000, interval: 200 },
      );
    }
    // Tenant text with markup, where pages show it.
    const hostile = await t.api('POST', '/endpoints', { name: HOSTILE, url: `${rx.url}/hostile`, owner_id: HOSTILE });
    expect(hostile.status, hostile.text).toBe(201);
    own.hostile = hostile.body.data.uid;
  });
  afterAll(async () => {
    await t?.stop();
    await rx?.close();
  });

  it('GET / leads to the sign-in page, which carries the CSP and a Strict login cookie', async () => {
    const root = await t.request('GET', '/');
    expect(root.status).toBe(200); // fetch follows the redirect
    const page = await fetch(`${t.url}/dashboard`);
    expect(page.status).toBe(200);
    const csp = page.headers.get('content-security-policy')!;
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain("frame-ancestors 'none'");
    expect(csp).not.toContain('unsafe-inline');
    expect(page.headers.get('x-frame-options')).toBe('DENY');
    expect(page.headers.get('set-cookie')).toMatch(/^wharf_dashboard_login=[A-Za-z0-9_-]{43}; Path=\/dashboard; Max-Age=\d+; HttpOnly; SameSite=Strict$/);
    const text = await page.text();
    expect(text).toContain('<form method="post" action="/dashboard/login"');
    expect(text).not.toMatch(/<script>|<style>| style="/);
  });

  it('a wrong key is refused; a project key signs in to its project only', async () => {
    const wrong = dashboardClient(t.url);
    const refused = await wrong.signIn('test_not-a-key');
    expect(refused.status).toBe(401);
    expect(refused.text).toContain('not a valid API key or operator token');
    expect(wrong.cookie).toBe('');
    expect((await wrong.get('/dashboard/projects/default')).location).toBe('/dashboard');

    const d = dashboardClient(t.url);
    const ok = await d.signIn(t.keys.default!);
    expect(ok.status).toBe(303);
    expect(ok.location).toBe('/dashboard/projects/default');
    expect(ok.headers.get('set-cookie')).toMatch(/wharf_dashboard=[A-Za-z0-9_-]{43}; Path=\/dashboard; Max-Age=\d+; HttpOnly; SameSite=Strict(,|$)/);
    const overview = await d.get('/dashboard/projects/default');
    expect(overview.status).toBe(200);
    expect(overview.text).toContain('<h1>Default</h1>');
    expect(overview.headers.get('content-security-policy')).toContain("default-src 'none'");
    // The projects list sends a project key to its own project.
    expect((await d.get('/dashboard/projects')).location).toBe('/dashboard/projects/default');
    expect((await d.get('/dashboard/projects/other')).status).toBe(404);
  });

  it('the operator token signs in to every project; signing out ends the session', async () => {
    const op = dashboardClient(t.url);
    const ok = await op.signIn(t.operatorToken);
    expect(ok.location).toBe('/dashboard/projects');
    const list = await op.get('/dashboard/projects');
    expect(list.status).toBe(200);
    for (const name of ['Default', 'Other']) expect(list.text).toContain(name);
    const other = await op.get(`/dashboard/projects/other/endpoints/${foreign.endpoint}`);
    expect(other.status).toBe(200);
    expect(other.text).toContain('other hook');
    // The operator acts through the API too: pause and unpause the other project's endpoint.
    expect((await op.post(`/dashboard/projects/other/endpoints/${foreign.endpoint}/pause`)).status).toBe(303);
    expect((await t.api('GET', `/endpoints/${foreign.endpoint}`, undefined, 'other')).body.data.status).toBe('paused');
    expect((await op.post(`/dashboard/projects/other/endpoints/${foreign.endpoint}/pause`)).status).toBe(303);
    expect((await t.api('GET', `/endpoints/${foreign.endpoint}`, undefined, 'other')).body.data.status).toBe('active');
    expect((await op.get('/dashboard/projects/nope')).status).toBe(404);

    const out = await op.post('/dashboard/logout');
    expect(out.status).toBe(303);
    expect(out.headers.get('set-cookie')).toContain('Max-Age=0');
    expect((await op.get('/dashboard/projects')).location).toBe('/dashboard');
  });

  it('a project key cannot see or act on another project: every route with foreign ids is 404 and changes nothing', async () => {
    const d = dashboardClient(t.url);
    await d.signIn(t.keys.default!);
    const before = (await t.api('GET', `/endpoints/${foreign.endpoint}`, undefined, 'other')).body.data;
    const gets = [
      '/dashboard/projects/other',
      '/dashboard/projects/other/endpoints',
      `/dashboard/projects/other/endpoints/${foreign.endpoint}`,
      '/dashboard/projects/other/events',
      '/dashboard/projects/other/deliveries',
      '/dashboard/projects/other/portal-links',
      // Foreign ids under the session's own project.
      `/dashboard/projects/default/endpoints/${foreign.endpoint}`,
      `/dashboard/projects/default/endpoints/${foreign.endpoint}/new-secret`,
      `/dashboard/projects/default/events/${foreign.event}`,
      `/dashboard/projects/default/deliveries/${foreign.delivery}`,
    ];
    for (const path of gets) expect((await d.get(path)).status, path).toBe(404);
    const posts: [string, Record<string, string>][] = [
      [`/dashboard/projects/other/endpoints/${foreign.endpoint}/pause`, {}],
      [`/dashboard/projects/other/endpoints/${foreign.endpoint}/edit`, { name: 'taken', url: `${rx.url}/x` }],
      ['/dashboard/projects/other/endpoints/new', { name: 'planted', url: `${rx.url}/planted` }],
      [`/dashboard/projects/other/deliveries/${foreign.delivery}/resend`, {}],
      [`/dashboard/projects/other/portal-links/${foreign.link}/revoke`, {}],
      [`/dashboard/projects/default/endpoints/${foreign.endpoint}/pause`, {}],
      [`/dashboard/projects/default/endpoints/${foreign.endpoint}/activate`, {}],
      [`/dashboard/projects/default/endpoints/${foreign.endpoint}/edit`, { name: 'taken', url: `${rx.url}/x` }],
      [`/dashboard/projects/default/endpoints/${foreign.endpoint}/rotate-secret`, { expiration: '0' }],
      [`/dashboard/projects/default/endpoints/${foreign.endpoint}/delete`, {}],
      [`/dashboard/projects/default/deliveries/${foreign.delivery}/resend`, {}],
      [`/dashboard/projects/default/portal-links/${foreign.link}/revoke`, {}],
    ];
    for (const [path, fields] of posts) expect((await d.post(path, fields)).status, path).toBe(404);
    const after = (await t.api('GET', `/endpoints/${foreign.endpoint}`, undefined, 'other')).body.data;
    expect(after).toMatchObject({ name: before.name, url: before.url, status: before.status });
    expect(after.secrets).toHaveLength(before.secrets.length);
    expect((await t.api('GET', `/portal-links/${foreign.link}`, undefined, 'other')).body.data.status).toBe('active');
    expect((await t.api('GET', `/eventdeliveries/${foreign.delivery}`, undefined, 'other')).body.data.attempts).toBe(1);
    expect((await t.api('GET', '/endpoints', undefined, 'other')).body.data.content.map((e: { name: string }) => e.name)).not.toContain('planted');
  });

  it('a form post without the CSRF token, or from another site, is refused with 403 and changes nothing', async () => {
    const d = dashboardClient(t.url);
    await d.signIn(t.keys.default!);
    const path = `/dashboard/projects/default/endpoints/${own.endpoint}/pause`;
    expect((await d.post(path, { _csrf: null })).status).toBe(403);
    expect((await d.post(path, { _csrf: 'x'.repeat(43) })).status).toBe(403);
    expect((await d.post(path, {}, { 'sec-fetch-site': 'cross-site' })).status).toBe(403);
    expect((await d.post(path, {}, { 'sec-fetch-site': null, origin: 'https://evil.example' })).status).toBe(403);
    expect((await t.api('GET', `/endpoints/${own.endpoint}`)).body.data.status).toBe('active');
    // Without a session, a post is refused too (and the login form needs its own token).
    const anon = dashboardClient(t.url);
    expect((await anon.post(path, { _csrf: 'x' })).status).toBe(401);
    const login = await fetch(`${t.url}/dashboard/login`, {
      method: 'POST',
      redirect: 'manual',
      headers: { 'content-type': 'application/x-www-form-urlencoded', 'sec-fetch-site': 'same-origin' },
      body: new URLSearchParams({ credential: t.keys.default! }).toString(),
    });
    expect(login.status).toBe(403);
    expect(login.headers.get('set-cookie') ?? '').not.toMatch(/wharf_dashboard=[A-Za-z0-9_-]{43}/);
  });

  it('tenant strings with markup are rendered as text', async () => {
    const d = dashboardClient(t.url);
    await d.signIn(t.keys.default!);
    for (const path of ['/dashboard/projects/default/endpoints', `/dashboard/projects/default/endpoints/${own.hostile}`]) {
      const page = await d.get(path);
      expect(page.status).toBe(200);
      expect(page.text).toContain('&lt;script&gt;window.__pwned=1&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;');
      expect(page.text).not.toContain('<script>window');
      expect(page.text).not.toContain('<img');
    }
    // A filter value comes back escaped too.
    const filtered = await d.get(`/dashboard/projects/default/endpoints?q=${encodeURIComponent('"><script>x</script>')}`);
    expect(filtered.text).toContain('value="&quot;&gt;&lt;script&gt;x&lt;/script&gt;"');
  });

  it('endpoints: create through the form, the API\'s refusal names the field, edit, rotate shows the secret once, delete', async () => {
    const d = dashboardClient(t.url);
    await d.signIn(t.keys.default!);
    const bad = await d.post('/dashboard/projects/default/endpoints/new', { name: 'Billing', url: `${rx.url}/billing`, http_timeout: 'soon', auth_type: 'basic_auth', username: 'u', password: 'p' });
    expect(bad.status).toBe(400);
    expect(bad.text).toContain('http_timeout');
    expect(bad.text).toContain('value="Billing"'); // the form keeps what was typed

    const created = await d.post('/dashboard/projects/default/endpoints/new', {
      name: 'Billing', url: `${rx.url}/billing`, http_timeout: '12', rate_limit: '50', rate_limit_duration: '60', content_type: 'application/json', owner_id: 'acme',
      auth_type: 'basic_auth', username: 'wharf', password: 's3cret-pass',
    });
    expect(created.status, created.text).toBe(303);
    const id = /endpoints\/([^/]+)\/new-secret$/.exec(created.location!)?.[1];
    expect(id).toBeDefined();
    const shown = await d.get(created.location!);
    expect(shown.text).toMatch(/<code id="new-secret">[^<]+<\/code>/);
    expect((await d.get(created.location!)).location).toContain('done=secret-shown');
    const api = (await t.api('GET', `/endpoints/${id}`)).body.data;
    expect(api).toMatchObject({ name: 'Billing', http_timeout: 12, rate_limit: 50, owner_id: 'acme', authentication: { type: 'basic_auth', basic_auth: { username: 'wharf', password: '********' } } });
    // The ping the API made on create carried the endpoint's Basic credentials.
    const ping = rx.pings.find((p) => p.path === '/billing');
    expect(ping?.headers.authorization).toBe(`Basic ${Buffer.from('wharf:s3cret-pass').toString('base64')}`);

    // Edit: a blank password keeps the stored one; the page never shows it.
    const page = await d.get(`/dashboard/projects/default/endpoints/${id}`);
    expect(page.text).not.toContain('s3cret-pass');
    const edited = await d.post(`/dashboard/projects/default/endpoints/${id}/edit`, {
      name: 'Billing v2', url: `${rx.url}/billing`, http_timeout: '20', rate_limit: '0', rate_limit_duration: '60', content_type: 'application/json', owner_id: 'acme',
      auth_type: 'basic_auth', username: 'wharf', password: '',
    });
    expect(edited.status, edited.text).toBe(303);
    expect(edited.location).toContain('done=saved');
    expect((await t.api('GET', `/endpoints/${id}`)).body.data).toMatchObject({ name: 'Billing v2', http_timeout: 20 });

    const rotated = await d.post(`/dashboard/projects/default/endpoints/${id}/rotate-secret`, { expiration: '600' });
    expect(rotated.status).toBe(303);
    const secret = /<code id="new-secret">([^<]+)<\/code>/.exec((await d.get(rotated.location!)).text)?.[1];
    expect(secret).toBeDefined();
    const secrets = (await t.api('GET', `/endpoints/${id}`)).body.data.secrets;
    // The first secret and the new one; the first expires after the overlap chosen.
    expect(secrets).toHaveLength(2);
    const expiring = secrets.filter((s: { expires_at: string | null }) => s.expires_at !== null);
    expect(expiring).toHaveLength(1);
    const overlap = new Date(expiring[0].expires_at).getTime() - Date.now();
    expect(overlap).toBeGreaterThan(500_000);
    expect(overlap).toBeLessThanOrEqual(600_000);

    expect((await d.post(`/dashboard/projects/default/endpoints/${id}/delete`)).location).toContain('done=deleted');
    expect((await t.api('GET', `/endpoints/${id}`)).status).toBe(404);
  });

  it('mTLS: a client certificate and key set through the form are kept when the form is saved again', async () => {
    const certs = await createTestCerts();
    try {
      const d = dashboardClient(t.url);
      await d.signIn(t.keys.default!);
      const fields = { name: 'Mutual', url: 'https://127.0.0.1:1/hook', http_timeout: '10', rate_limit: '0', rate_limit_duration: '60', content_type: 'application/json', skip_ping: 'on' };
      const created = await d.post('/dashboard/projects/default/endpoints/new', { ...fields, client_cert: certs.clientCert, client_key: certs.clientKey, ca_certificate: certs.ca });
      expect(created.status, created.text).toBe(303);
      const id = /endpoints\/([^/]+)\/new-secret$/.exec(created.location!)![1]!;
      const stored = async () => (await t.api('GET', `/endpoints/${id}`)).body.data;
      expect((await stored()).mtls_client_cert).toMatchObject({ client_cert: certs.clientCert.trim(), client_key: '********' });
      const page = await d.get(`/dashboard/projects/default/endpoints/${id}`);
      expect(page.text).not.toContain('PRIVATE KEY');
      // Saved again with the key left blank: the stored key stays; a wrong key is refused by name.
      expect((await d.post(`/dashboard/projects/default/endpoints/${id}/edit`, { ...fields, name: 'Mutual 2', client_cert: certs.clientCert })).status).toBe(303);
      expect(await stored()).toMatchObject({ name: 'Mutual 2', mtls_client_cert: { client_key: '********' } });
      const wrong = await d.post(`/dashboard/projects/default/endpoints/${id}/edit`, { ...fields, client_cert: certs.clientCert, client_key: certs.otherKey });
      expect(wrong.status).toBe(400);
      expect(wrong.text).toContain('mtls_client_cert');
      expect((await d.post(`/dashboard/projects/default/endpoints/${id}/edit`, { ...fields, remove_mtls: 'on', remove_ca: 'on' })).status).toBe(303);
      expect(await stored()).toMatchObject({ mtls_client_cert: null, ca_certificate: null });
    } finally {
      await certs.cleanup();
    }
  });

  it('events, deliveries, resend and portal links through the pages', async () => {
    const d = dashboardClient(t.url);
    await d.signIn(t.keys.default!);
    const events = await d.get('/dashboard/projects/default/events?event_type=default.created');
    expect(events.text).toContain(own.event!);
    const event = await d.get(`/dashboard/projects/default/events/${own.event}`);
    expect(event.text).toContain('&quot;project&quot;: &quot;default&quot;');
    const bad = await d.get('/dashboard/projects/default/deliveries?status=lost');
    expect(bad.status).toBe(400);
    expect(bad.text).toContain('status');
    const delivery = await d.get(`/dashboard/projects/default/deliveries/${own.delivery}`);
    expect(delivery.text).toContain('Attempt 1');
    const resent = await d.post(`/dashboard/projects/default/deliveries/${own.delivery}/resend`);
    expect(resent.location).toContain('done=resent');
    await vi.waitFor(async () => expect((await t.api('GET', `/eventdeliveries/${own.delivery}`)).body.data.attempts).toBe(2), { timeout: 20_000, interval: 200 });

    const made = await d.post('/dashboard/projects/default/portal-links', { name: 'Acme', owner_id: 'acme', kind: 'one_time' });
    expect(made.status).toBe(303);
    const url = /<code id="link-url">([^<]+)<\/code>/.exec((await d.get(made.location!)).text)?.[1];
    expect(url).toMatch(new RegExp(`^${t.url}/portal/l/`));
    const customer = portalClient(t.url);
    expect((await customer.open(url!)).status).toBe(303);
    expect((await customer.get('/portal/')).text).toContain('default hook');
    const links = (await t.api('GET', '/portal-links')).body.data.content as { uid: string; name: string }[];
    const linkId = links.find((l) => l.name === 'Acme')!.uid;
    expect((await d.post(`/dashboard/projects/default/portal-links/${linkId}/revoke`)).location).toContain('done=revoked');
    expect((await customer.get('/portal/')).status).toBe(401);
  });

  it('a key revoked after sign-in ends its dashboard session', async () => {
    const d = dashboardClient(t.url);
    await d.signIn(t.keys.default!);
    expect((await d.get('/dashboard/projects/default/endpoints')).status).toBe(200);
    const db = new pg.Client({ connectionString: t.db.url });
    await db.connect();
    try {
      await db.query(`DELETE FROM api_keys WHERE project_id = 'default'`);
    } finally {
      await db.end();
    }
    await vi.waitFor(async () => expect((await d.get('/dashboard/projects/default/endpoints')).status).toBe(401), { timeout: 10_000, interval: 500 });
  });
});

describe('the internal credential', () => {
  it('is honoured for app.inject() only, never over the network', async () => {
    const credential = createInternalCredential();
    const app = Fastify();
    app.get('/check', async (req) => ({ accepted: credential.accepts(req) }));
    await app.listen({ host: '127.0.0.1', port: 0 });
    try {
      const injected = await app.inject({ method: 'GET', url: '/check', headers: { authorization: credential.authorization } });
      expect(injected.json()).toEqual({ accepted: true });
      const wrong = await app.inject({ method: 'GET', url: '/check', headers: { authorization: `${credential.authorization}x` } });
      expect(wrong.json()).toEqual({ accepted: false });
      const address = app.server.address() as { port: number };
      const network = await fetch(`http://127.0.0.1:${address.port}/check`, { headers: { authorization: credential.authorization } });
      expect(await network.json()).toEqual({ accepted: false });
    } finally {
      await app.close();
    }
  });
});
