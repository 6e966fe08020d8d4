/**
 * The operator dashboard over HTTP: sign-in with a project key or the operator token, what a
 * project key may see and do (nothing of another project: every route tried with foreign ids is
 * not found and changes nothing), CSRF and cross-site refusals, tenant text escaped, the CSP, and
 * the in-process credential that only app.inject() can use.
 */
import { createHmac, generateKeyPairSync, randomBytes } from 'node:crypto';
import { dirname, join } from 'node:path';
import Fastify from 'fastify';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { loadSecretBox } from '../../src/store/crypto.ts';
import { createInternalCredential } from '../../src/web/internal-credential.ts';
import { startTestApp, type TestApp } from '../harness/app.ts';
import type { BrokerChannel } from '../harness/brokers/fixture.ts';
import { fixture as rabbit } from '../harness/brokers/rabbitmq.ts';
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

  /** Each project's queue, which its RabbitMQ source consumes. */
  const queues: Record<string, BrokerChannel> = {};

  beforeAll(async () => {
    rx = await startReceiver();
    // Paths under /fail answer 500: with no retries, their deliveries fail at once.
    rx.answer((r) => (r.path.startsWith('/fail') ? { status: 500, body: 'down' } : { status: 200, body: 'ok' }));
    for (const project of ['default', 'other']) queues[project] = await rabbit.channel(`dash-${project}-${randomBytes(4).toString('hex')}`);
    const project = (id: string, name: string) => ({
      id,
      name,
      retry: { strategy: 'linear', duration: 1, retry_count: 0 },
      sources: [
        { id: 'queue', name: `${name} queue`, type: 'rabbitmq', rabbitmq: queues[id]!.block },
        { id: 'hooks', name: `${name} hooks`, type: 'http', event_type: 'github.push', http: { verifier: { type: 'github', secret: `github-secret-${id}-long-enough` } } },
      ],
    });
    t = await startTestApp({ projects: [project('default', 'Default'), project('other', 'Other')] });
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
      const sub = await t.api('POST', '/subscriptions', { name: `${project} orders`, endpoint_id: ids.endpoint, filter_config: { event_types: ['order.*'] } }, project);
      expect(sub.status, sub.text).toBe(201);
      ids.subscription = sub.body.data.uid;
      // Two failed deliveries per project, for batch retry.
      const failing = await t.api('POST', '/endpoints', { name: `${project} failing`, url: `${rx.url}/fail/${project}`, skip_ping_validation: true }, project);
      expect(failing.status, failing.text).toBe(201);
      ids.failing = failing.body.data.uid;
      for (let i = 0; i < 2; i++) await t.api('POST', '/events', { endpoint_id: ids.failing, event_type: 'order.failed', data: { i } }, project);
      // A malformed message (dead-lettered) in each project's queue.
      await queues[project]!.publish([{ body: 'not json {' }]);
    }
    await vi.waitFor(
      async () => {
        for (const [project, ids] of [['default', own], ['other', foreign]] as const) {
          const failed = (await t.api('GET', `/eventdeliveries?endpoint_id=${ids.failing}&status=failure`, undefined, project)).body.data.content;
          expect(failed).toHaveLength(2);
          ids.failedDelivery = failed[0].uid;
          const letters = (await t.api('GET', '/deadletters', undefined, project)).body.data.content;
          expect(letters).toHaveLength(1);
          ids.letter = letters[0].uid;
        }
      },
      { timeout: 30_000, interval: 250 },
    );
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
    for (const q of Object.values(queues)) await q.close?.();
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
      // The second slice's pages.
      '/dashboard/projects/other/deliveries/batch-retry',
      '/dashboard/projects/other/sources',
      '/dashboard/projects/other/sources/queue',
      '/dashboard/projects/other/dead-letters',
      '/dashboard/projects/other/subscriptions',
      '/dashboard/projects/other/subscriptions/new',
      `/dashboard/projects/other/subscriptions/${foreign.subscription}`,
      `/dashboard/projects/default/subscriptions/${foreign.subscription}`,
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
      // The second slice's actions.
      ['/dashboard/projects/other/deliveries/batch-retry', {}],
      [`/dashboard/projects/other/deliveries/force-resend`, { [`resend:${foreign.failedDelivery}`]: 'on' }],
      [`/dashboard/projects/default/deliveries/force-resend`, { [`resend:${foreign.failedDelivery}`]: 'on' }],
      [`/dashboard/projects/other/dead-letters/${foreign.letter}/replay`, {}],
      [`/dashboard/projects/default/dead-letters/${foreign.letter}/replay`, {}],
      ['/dashboard/projects/other/subscriptions/new', { name: 'planted', endpoint_id: foreign.endpoint!, event_types: '*' }],
      ['/dashboard/projects/other/subscriptions/test-filter', { filter: '{}', body: '{}' }],
      [`/dashboard/projects/other/subscriptions/${foreign.subscription}/edit`, { name: 'taken', endpoint_id: foreign.endpoint!, event_types: '*' }],
      [`/dashboard/projects/default/subscriptions/${foreign.subscription}/edit`, { name: 'taken', endpoint_id: foreign.endpoint!, event_types: '*' }],
      [`/dashboard/projects/other/subscriptions/${foreign.subscription}/delete`, {}],
      [`/dashboard/projects/default/subscriptions/${foreign.subscription}/delete`, {}],
    ];
    for (const [path, fields] of posts) expect((await d.post(path, fields)).status, path).toBe(404);
    const after = (await t.api('GET', `/endpoints/${foreign.endpoint}`, undefined, 'other')).body.data;
    expect(after).toMatchObject({ name: before.name, url: before.url, status: before.status });
    expect(after.secrets).toHaveLength(before.secrets.length);
    expect((await t.api('GET', `/portal-links/${foreign.link}`, undefined, 'other')).body.data.status).toBe('active');
    expect((await t.api('GET', `/eventdeliveries/${foreign.delivery}`, undefined, 'other')).body.data.attempts).toBe(1);
    expect((await t.api('GET', '/endpoints', undefined, 'other')).body.data.content.map((e: { name: string }) => e.name)).not.toContain('planted');
    // Nothing of the other project was retried, replayed or changed by the second slice's routes.
    const failed = (await t.api('GET', `/eventdeliveries?endpoint_id=${foreign.failing}`, undefined, 'other')).body.data.content;
    expect(failed.map((d: { attempts: number; status: string }) => [d.attempts, d.status])).toEqual([[1, 'Failure'], [1, 'Failure']]);
    expect((await t.api('GET', `/deadletters/${foreign.letter}`, undefined, 'other')).body.data.replayed_at).toBeNull();
    const subs = (await t.api('GET', '/subscriptions', undefined, 'other')).body.data.content;
    expect(subs.map((x: { uid: string; name: string }) => [x.uid, x.name])).toEqual([[foreign.subscription, 'other orders']]);
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
    // The second slice's actions, each without the token and from another site.
    const actions: [string, Record<string, string>][] = [
      ['/dashboard/projects/default/deliveries/batch-retry', { endpoint_id: own.failing! }],
      ['/dashboard/projects/default/deliveries/force-resend', { [`resend:${own.failedDelivery}`]: 'on' }],
      [`/dashboard/projects/default/dead-letters/${own.letter}/replay`, {}],
      ['/dashboard/projects/default/subscriptions/new', { name: 'csrf-less', endpoint_id: own.endpoint!, event_types: '*' }],
      ['/dashboard/projects/default/subscriptions/test-filter', { filter: '{}', body: '{}' }],
      [`/dashboard/projects/default/subscriptions/${own.subscription}/edit`, { name: 'csrf-less', endpoint_id: own.endpoint!, event_types: '*' }],
      [`/dashboard/projects/default/subscriptions/${own.subscription}/delete`, {}],
    ];
    const attemptsBefore = (await t.api('GET', `/eventdeliveries/${own.failedDelivery}`)).body.data.attempts;
    for (const [action, fields] of actions) {
      expect((await d.post(action, { ...fields, _csrf: null })).status, action).toBe(403);
      expect((await d.post(action, fields, { 'sec-fetch-site': 'cross-site' })).status, action).toBe(403);
    }
    expect((await t.api('GET', `/eventdeliveries/${own.failedDelivery}`)).body.data.attempts).toBe(attemptsBefore);
    expect((await t.api('GET', `/deadletters/${own.letter}`)).body.data.replayed_at).toBeNull();
    expect((await t.api('GET', `/subscriptions/${own.subscription}`)).body.data.name).toBe('default orders');
    expect((await t.api('GET', '/subscriptions')).body.data.content).toHaveLength(1);
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

    // The second slice's pages: a subscription's name and filter, a dead letter's body, what the
    // filter box and the batch-retry confirmation echo back.
    const sub = await t.api('POST', '/subscriptions', { name: HOSTILE, endpoint_id: own.hostile, filter_config: { event_types: ['*'], filter: { body: { note: HOSTILE } } } });
    expect(sub.status, sub.text).toBe(201);
    await queues.default!.publish([{ body: HOSTILE }]);
    await vi.waitFor(async () => expect((await t.api('GET', '/deadletters')).body.data.content.some((l: { body_preview: string }) => l.body_preview === HOSTILE)).toBe(true), { timeout: 20_000, interval: 250 });
    const pages = [
      await d.get('/dashboard/projects/default/subscriptions'),
      await d.get(`/dashboard/projects/default/subscriptions/${sub.body.data.uid}`),
      await d.get('/dashboard/projects/default/subscriptions/new'),
      await d.get('/dashboard/projects/default/dead-letters'),
      await d.get('/dashboard/projects/default/sources/queue'),
      await d.get(`/dashboard/projects/default/deliveries/batch-retry?event_type=${encodeURIComponent(HOSTILE)}`),
      await d.post('/dashboard/projects/default/subscriptions/test-filter', { filter: JSON.stringify({ body: { note: HOSTILE } }), body: JSON.stringify({ note: HOSTILE }), headers: '{}' }),
    ];
    for (const page of pages) {
      expect(page.status, page.text.slice(0, 200)).toBe(200);
      expect(page.text).toContain('&lt;script&gt;window.__pwned=1&lt;/script&gt;');
      expect(page.text).not.toContain('<script>window');
      expect(page.text).not.toContain('<img');
    }
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

  it('deliveries: batch retry states the count before confirming, retries only what matches, in this project', async () => {
    const d = dashboardClient(t.url);
    await d.signIn(t.keys.default!);
    const confirm = await d.get(`/dashboard/projects/default/deliveries/batch-retry?endpoint_id=${own.failing}`);
    expect(confirm.status).toBe(200);
    expect(confirm.text).toContain('2 deliveries match.');
    expect(confirm.text).toContain(`<input type="hidden" name="endpoint_id" value="${own.failing}">`);
    // Every failure of the project, counted as the API's list counts them; none of the other project's.
    const listed = (await t.api('GET', '/eventdeliveries?status=failure&status=discarded&per_page=100')).body.data.content.length;
    expect((await d.get('/dashboard/projects/default/deliveries/batch-retry')).text).toContain(`${listed} deliver${listed === 1 ? 'y matches' : 'ies match'}.`);
    const later = await d.get(`/dashboard/projects/default/deliveries/batch-retry?endpoint_id=${own.failing}&start_date=2999-01-01T00:00`);
    expect(later.text).toContain('0 deliveries match.');
    expect(later.text).not.toContain('<button type="submit" class="primary">Retry');
    const wrong = await d.get('/dashboard/projects/default/deliveries/batch-retry?status=retry');
    expect(wrong.status).toBe(400);
    expect(wrong.text).toContain('status');

    const done = await d.post('/dashboard/projects/default/deliveries/batch-retry', { endpoint_id: own.failing! });
    expect(done.status, done.text).toBe(303);
    expect(done.location).toContain('done=batch-retried');
    await vi.waitFor(async () => {
      const rows = (await t.api('GET', `/eventdeliveries?endpoint_id=${own.failing}`)).body.data.content;
      expect(rows.map((r: { attempts: number }) => r.attempts)).toEqual([2, 2]);
    }, { timeout: 20_000, interval: 250 });
    const theirs = (await t.api('GET', `/eventdeliveries?endpoint_id=${foreign.failing}`, undefined, 'other')).body.data.content;
    expect(theirs.map((r: { attempts: number }) => r.attempts)).toEqual([1, 1]);
  });

  it('deliveries: force resend of the selected ones; events and deliveries searched by time', async () => {
    const d = dashboardClient(t.url);
    await d.signIn(t.keys.default!);
    const before = (await t.api('GET', `/eventdeliveries/${own.delivery}`)).body.data.attempts as number;
    const list = await d.get('/dashboard/projects/default/deliveries');
    expect(list.text).toContain(`name="resend:${own.delivery}"`);
    const forced = await d.post('/dashboard/projects/default/deliveries/force-resend', { [`resend:${own.delivery}`]: 'on' });
    expect(forced.status, forced.text).toBe(303);
    expect(forced.location).toBe(`/dashboard/projects/default/deliveries/${own.delivery}?done=resent`);
    await vi.waitFor(async () => expect((await t.api('GET', `/eventdeliveries/${own.delivery}`)).body.data.attempts).toBe(before + 1), { timeout: 20_000, interval: 250 });
    expect((await d.post('/dashboard/projects/default/deliveries/force-resend', {})).location).toContain('done=none-selected');

    const since = await d.get('/dashboard/projects/default/events?start_date=2000-01-01T00:00');
    expect(since.status).toBe(200);
    expect(since.text).toContain(own.event!);
    const future = await d.get('/dashboard/projects/default/events?start_date=2999-01-01T00:00&end_date=2999-12-31T00:00:00');
    expect(future.text).not.toContain(own.event!);
    expect(future.text).toContain('value="2999-01-01T00:00"');
    const bad = await d.get('/dashboard/projects/default/events?end_date=yesterday');
    expect(bad.status).toBe(400);
    expect(bad.text).toContain('end_date');
    expect((await d.get('/dashboard/projects/default/deliveries?start_date=2999-01-01T00:00')).text).toContain('No deliveries.');
  });

  it('sources: an HTTP source shows its URL, verifier type and recent failures, never its secret; a broker source its state', async () => {
    const d = dashboardClient(t.url);
    await d.signIn(t.keys.default!);
    const list = await d.get('/dashboard/projects/default/sources');
    expect(list.status).toBe(200);
    for (const name of ['Default queue', 'Default hooks']) expect(list.text).toContain(name);
    expect(list.text).not.toContain('Other queue');
    const url = (await t.api('GET', '/sources/hooks')).body.data.url as string;
    const path = new URL(url).pathname;
    const unsigned = await t.request('POST', path, { body: { action: 'opened' }, headers: { 'x-github-event': 'push' } });
    expect(unsigned.status).toBeGreaterThanOrEqual(400);
    const hooks = await d.get('/dashboard/projects/default/sources/hooks');
    expect(hooks.status).toBe(200);
    expect(hooks.text).toContain(`<code id="ingest-url">`);
    expect(hooks.text).toContain(path);
    expect(hooks.text).toMatch(/<dd class="verifier">github<\/dd>/);
    expect(hooks.text).not.toContain('github-secret-default');
    expect(hooks.text).toMatch(/<table class="stack failures">[\s\S]*127\.0\.0\.1/);
    const queue = await d.get('/dashboard/projects/default/sources/queue');
    expect(queue.text).toContain('status-running');
    expect(queue.text).toContain('WHARF_ERR_NOT_JSON');
  });

  it('dead letters: listed with their reason; a replay the API refuses shows why; fixed, it becomes an event once', async () => {
    const d = dashboardClient(t.url);
    await d.signIn(t.keys.default!);
    await queues.default!.publish([{ body: JSON.stringify({ owner_id: 'later', event_type: 'late.arrival', data: { n: 1 } }) }]);
    const letter = await vi.waitFor(async () => {
      const rows = (await t.api('GET', '/deadletters?code=WHARF_ERR_UNKNOWN_OWNER')).body.data.content;
      expect(rows).toHaveLength(1);
      return rows[0].uid as string;
    }, { timeout: 20_000, interval: 250 });
    const page = await d.get('/dashboard/projects/default/dead-letters');
    expect(page.text).toContain('WHARF_ERR_UNKNOWN_OWNER');
    expect(page.text).toContain(`/dead-letters/${letter}/replay`);
    const notJson = await d.post(`/dashboard/projects/default/dead-letters/${own.letter}/replay`);
    expect(notJson.status).toBe(422);
    expect(notJson.text).toContain('replay refused again');
    expect((await d.post(`/dashboard/projects/default/dead-letters/${letter}/replay`)).status).toBe(422);
    const later = await t.api('POST', '/endpoints', { name: 'later', url: `${rx.url}/later`, owner_id: 'later' });
    expect(later.status, later.text).toBe(201);
    const replayed = await d.post(`/dashboard/projects/default/dead-letters/${letter}/replay`);
    expect(replayed.status, replayed.text).toBe(303);
    const eventId = /events\/([^/?]+)\?done=replayed$/.exec(replayed.location!)?.[1];
    expect((await t.api('GET', `/events/${eventId}`)).body.data.event_type).toBe('late.arrival');
    expect((await d.get(replayed.location!)).text).toContain('Dead letter replayed');
    const again = await d.post(`/dashboard/projects/default/dead-letters/${letter}/replay`);
    expect(again.status).toBe(409);
    expect(again.text).toContain('already replayed');
  });

  it('subscriptions: create and edit with a filter, refusals name the field, and the filter test box gives the verdict', async () => {
    const d = dashboardClient(t.url);
    await d.signIn(t.keys.default!);
    const base = { name: 'Big orders', endpoint_id: own.endpoint!, source_id: 'queue', event_types: 'order.*, invoice.paid' };
    const notJson = await d.post('/dashboard/projects/default/subscriptions/new', { ...base, filter: '{"body": ' });
    expect(notJson.status).toBe(400);
    expect(notJson.text).toContain('filter_config.filter: is not JSON');
    expect(notJson.text).toContain('Big orders'); // the form keeps what was typed
    const badOp = await d.post('/dashboard/projects/default/subscriptions/new', { ...base, filter: '{"body": {"amount": {"$nope": 1}}}' });
    expect(badOp.status).toBe(400);
    expect(badOp.text).toContain('filter_config.filter');
    const badType = await d.post('/dashboard/projects/default/subscriptions/new', { ...base, event_types: 'order*paid', filter: '' });
    expect(badType.status).toBe(400);
    expect(badType.text).toContain('event_types');

    const made = await d.post('/dashboard/projects/default/subscriptions/new', { ...base, filter: '{"body": {"amount": {"$gte": 100}}}' });
    expect(made.status, made.text).toBe(303);
    const id = /subscriptions\/([^/?]+)\?done=sub-created$/.exec(made.location!)![1]!;
    expect((await t.api('GET', `/subscriptions/${id}`)).body.data).toMatchObject({
      name: 'Big orders', endpoint_id: own.endpoint, source_id: 'queue',
      filter_config: { event_types: ['order.*', 'invoice.paid'], filter: { body: { amount: { $gte: 100 } } } },
    });
    const shown = await d.get(`/dashboard/projects/default/subscriptions/${id}`);
    expect(shown.text).toContain('&quot;$gte&quot;: 100');
    const edited = await d.post(`/dashboard/projects/default/subscriptions/${id}/edit`, { ...base, source_id: '', event_types: 'order.paid', filter: '{"body": {"amount": {"$gte": 500}}}' });
    expect(edited.status, edited.text).toBe(303);
    expect((await t.api('GET', `/subscriptions/${id}`)).body.data).toMatchObject({ source_id: null, filter_config: { event_types: ['order.paid'], filter: { body: { amount: { $gte: 500 } } } } });

    const test = (body: string, filter = '{"body": {"amount": {"$gte": 100}}}') => d.post('/dashboard/projects/default/subscriptions/test-filter', { filter, body, headers: '{}' });
    const yes = await test('{"amount": 150}');
    expect(yes.status).toBe(200);
    expect(yes.text).toContain('The filter matches this event.');
    expect((await test('{"amount": 5}')).text).toContain('The filter does not match this event.');
    const unreadable = await test('{"amount": ');
    expect(unreadable.status).toBe(400);
    expect(unreadable.text).toContain('request.body: is not JSON');
    const refused = await test('{}', '{"body": {"a": {"$regex": 7}}}');
    expect(refused.status).toBe(400);
    expect(refused.text).toContain('filter');

    expect((await d.post(`/dashboard/projects/default/subscriptions/${id}/delete`)).location).toContain('done=sub-deleted');
    expect((await t.api('GET', `/subscriptions/${id}`)).status).toBe(404);
  });

  it('endpoints: OAuth2 client credentials and the signature format through the form; the client secret is never shown', async () => {
    const d = dashboardClient(t.url);
    await d.signIn(t.keys.default!);
    const fields = {
      name: 'Tokened', url: `${rx.url}/tokened`, http_timeout: '10', rate_limit: '0', rate_limit_duration: '60', content_type: 'application/json', skip_ping: 'on',
      auth_type: 'oauth2', oauth2_url: `${rx.url}/token`, client_id: 'wharf-client', client_secret: 'oauth-client-secret-value', scope: 'hooks:write', signature_format: 'simple',
    };
    const missing = await d.post('/dashboard/projects/default/endpoints/new', { ...fields, client_id: '' });
    expect(missing.status).toBe(400);
    expect(missing.text).toContain('client_id');
    const created = await d.post('/dashboard/projects/default/endpoints/new', fields);
    expect(created.status, created.text).toBe(303);
    const id = /endpoints\/([^/]+)\/new-secret$/.exec(created.location!)![1]!;
    const stored = async () => (await t.api('GET', `/endpoints/${id}`)).body.data;
    expect(await stored()).toMatchObject({
      advanced_signatures: false,
      authentication: { type: 'oauth2', oauth2: { url: `${rx.url}/token`, client_id: 'wharf-client', client_secret: '********', scope: 'hooks:write', authentication_type: 'shared_secret' } },
    });
    const page = await d.get(`/dashboard/projects/default/endpoints/${id}`);
    expect(page.text).not.toContain('oauth-client-secret-value');
    expect(page.text).toContain('value="wharf-client"');
    expect(page.text).toMatch(/<option value="oauth2" selected>/);
    // Saved again with the secret left blank: kept; the signature back to advanced.
    const saved = await d.post(`/dashboard/projects/default/endpoints/${id}/edit`, { ...fields, client_secret: '', scope: '', signature_format: 'advanced' });
    expect(saved.status, saved.text).toBe(303);
    expect(await stored()).toMatchObject({ advanced_signatures: true, authentication: { oauth2: { client_id: 'wharf-client', client_secret: '********', scope: null } } });
    const { rows } = await t.app.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM endpoints WHERE id = $1', [id]);
    expect(rows[0]!.n).toBe(1);
  });

  it('the overview shows the project\'s recent alerts, and no other project\'s', async () => {
    const d = dashboardClient(t.url);
    await d.signIn(t.keys.default!);
    for (const [project, ids] of [['default', own], ['other', foreign]] as const) {
      const e = await t.api('POST', '/endpoints', { name: 'watched', url: `${rx.url}/watched`, notification_url: `${rx.url}/notify/${project}-alerts`, skip_ping_validation: true }, project);
      expect(e.status, e.text).toBe(201);
      ids.watched = e.body.data.uid;
      expect((await t.api('PUT', `/endpoints/${ids.watched}/pause`, undefined, project)).status).toBe(202);
    }
    await vi.waitFor(async () => expect((await t.api('GET', '/meta-events')).body.data.content.length).toBeGreaterThan(0), { timeout: 10_000, interval: 250 });
    const overview = await d.get('/dashboard/projects/default');
    expect(overview.text).toMatch(/<table class="stack alerts">[\s\S]*endpoint\.status_changed/);
    expect(overview.text).toContain('/notify/default-alerts');
    expect(overview.text).not.toContain('/notify/other-alerts');
  });

  it('sources: an HTTP source created and edited through the form, through the API; its secret never in a page; markup escaped', async () => {
    const d = dashboardClient(t.url);
    await d.signIn(t.keys.default!);
    const form = await d.get('/dashboard/projects/default/sources/new');
    expect(form.status).toBe(200);
    for (const type of ['hmac', 'basic_auth', 'api_key', 'github', 'shopify', 'stripe', 'standard_webhooks', 'none']) expect(form.text).toContain(`<option value="${type}"`);
    // Broker types are not open to the API in this config: the page says so.
    expect(form.text).toContain('ingest.api_broker_types');
    const secret = 'dashboard-hmac-secret-0123456789';
    const fields = {
      id: 'signed', name: HOSTILE, type: 'http', event_type: 'signed.thing', verifier_type: 'hmac', v_header: 'X-Signature', v_prefix: 'sha256=', v_secret: secret,
      idempotency_keys: 'header:X-Delivery', custom_response_body: `thanks ${HOSTILE}`, custom_response_type: 'text/plain; charset=utf-8',
    };
    const short = await d.post('/dashboard/projects/default/sources/new', { ...fields, v_secret: 'short' });
    expect(short.status).toBe(400);
    expect(short.text).toContain('http.verifier.secret');
    expect(short.text).not.toContain('value="short"');
    const created = await d.post('/dashboard/projects/default/sources/new', fields);
    expect(created.status, created.text).toBe(303);
    expect(created.location).toBe('/dashboard/projects/default/sources/signed?done=source-created');
    const stored = async () => (await t.api('GET', '/sources/signed')).body.data;
    expect(await stored()).toMatchObject({
      name: HOSTILE,
      event_type: 'signed.thing',
      http: { verifier: { type: 'hmac', header: 'X-Signature', prefix: 'sha256=', secret: '********' }, idempotency_keys: [{ header: 'x-delivery' }], custom_response: { body: `thanks ${HOSTILE}` } },
    });
    const page = await d.get('/dashboard/projects/default/sources/signed');
    expect(page.status).toBe(200);
    expect(page.text).not.toContain(secret);
    expect(page.text).not.toContain('<script>window.__pwned');
    expect(page.text).toContain('&lt;script&gt;window.__pwned=1&lt;/script&gt;');
    expect(page.text).toContain('value="X-Signature"');
    expect((await d.get('/dashboard/projects/default/sources')).text).not.toContain('<script>window.__pwned');
    // A signed request to its URL is taken; the secret left blank on an edit is kept.
    const url = (await stored()).url as string;
    const send = async (key: string) => {
      const body = JSON.stringify({ n: 1 });
      const sig = createHmac('sha256', key).update(body).digest('hex');
      return fetch(url.replace(/^https?:\/\/[^/]+/, t.url), { method: 'POST', headers: { 'content-type': 'application/json', 'x-signature': `sha256=${sig}` }, body });
    };
    const first = await send(secret);
    expect(first.status).toBe(200);
    expect(await first.text()).toBe(`thanks ${HOSTILE}`);
    const saved = await d.post('/dashboard/projects/default/sources/signed/edit', { ...fields, name: 'Signed', v_secret: '', custom_response_body: '' });
    expect(saved.status, saved.text).toBe(303);
    expect(await stored()).toMatchObject({ name: 'Signed', http: { verifier: { secret: '********' }, custom_response: null } });
    // The custom response is gone once the edit is applied; the kept secret still verifies.
    await vi.waitFor(async () => {
      const res = await send(secret);
      expect(res.status).toBe(200);
      expect(await res.text()).not.toContain('thanks');
    }, { timeout: 10_000, interval: 250 });
    expect((await send('another-secret-entirely-0123')).status).toBe(401);
    // Another verifier type with its secret left blank is refused, never stored as "********".
    const switched = await d.post('/dashboard/projects/default/sources/signed/edit', { ...fields, verifier_type: 'api_key', v_header_name: 'X-Key', v_secret: '' });
    expect(switched.status).toBe(400);
    expect(switched.text).toContain('http.verifier.header_value');
    // A source from the config file is shown, not editable; the API's refusal says where to change it.
    expect((await d.get('/dashboard/projects/default/sources/hooks')).text).toContain('Declared in the config file');
    const configured = await d.post('/dashboard/projects/default/sources/hooks/edit', { name: 'taken', verifier_type: 'none', event_type: 'x' });
    expect(configured.status).toBe(409);
    expect((await d.post('/dashboard/projects/default/sources/signed/delete')).location).toContain('done=source-deleted');
    expect((await t.api('GET', '/sources/signed')).status).toBe(404);
  });

  it('sources: another project\'s are not found from the new routes and nothing changes; CSRF-less posts are 403', async () => {
    const theirs = await t.api('POST', '/sources', { id: 'theirs', name: 'Theirs', type: 'http', event_type: 'x.y', http: { verifier: { type: 'none' } } }, 'other');
    expect(theirs.status, theirs.text).toBe(201);
    const mine = await t.api('POST', '/sources', { id: 'mine', name: 'Mine', type: 'http', event_type: 'x.y', http: { verifier: { type: 'none' } } });
    expect(mine.status, mine.text).toBe(201);
    const d = dashboardClient(t.url);
    await d.signIn(t.keys.default!);
    for (const path of ['/dashboard/projects/other/sources/new', '/dashboard/projects/other/sources/theirs', '/dashboard/projects/default/sources/theirs']) {
      expect((await d.get(path)).status, path).toBe(404);
    }
    const edit = { name: 'taken', type: 'http', verifier_type: 'none', event_type: 'x.y' };
    const posts: [string, Record<string, string>][] = [
      ['/dashboard/projects/other/sources/new', { ...edit, id: 'planted' }],
      ['/dashboard/projects/other/sources/theirs/edit', edit],
      ['/dashboard/projects/default/sources/theirs/edit', edit],
      ['/dashboard/projects/other/sources/theirs/delete', {}],
      ['/dashboard/projects/default/sources/theirs/delete', {}],
    ];
    for (const [path, fields] of posts) expect((await d.post(path, fields)).status, path).toBe(404);
    expect((await t.api('GET', '/sources/theirs', undefined, 'other')).body.data.name).toBe('Theirs');
    expect((await t.api('GET', '/sources/planted', undefined, 'other')).status).toBe(404);
    const csrfLess: [string, Record<string, string>][] = [
      ['/dashboard/projects/default/sources/new', { ...edit, id: 'csrf-less' }],
      ['/dashboard/projects/default/sources/mine/edit', edit],
      ['/dashboard/projects/default/sources/mine/delete', {}],
    ];
    for (const [path, fields] of csrfLess) {
      expect((await d.post(path, { ...fields, _csrf: null })).status, path).toBe(403);
      expect((await d.post(path, fields, { 'sec-fetch-site': 'cross-site' })).status, path).toBe(403);
    }
    expect((await t.api('GET', '/sources/mine')).body.data.name).toBe('Mine');
    expect((await t.api('GET', '/sources/csrf-less')).status).toBe(404);
  });

  it('endpoints: OAuth2 with a signed client assertion through the form; the signing key is never shown and kept when left blank', async () => {
    const d = dashboardClient(t.url);
    await d.signIn(t.keys.default!);
    const jwk = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' });
    const fields = {
      name: 'Asserted', url: `${rx.url}/asserted`, http_timeout: '10', rate_limit: '0', rate_limit_duration: '60', content_type: 'application/json', skip_ping: 'on',
      auth_type: 'oauth2_assertion', oauth2_url: `${rx.url}/token`, client_id: 'wharf-client', signing_key: JSON.stringify(jwk), issuer: 'wharf-issuer', subject: '', audience: 'https://auth.example',
    };
    const bad = await d.post('/dashboard/projects/default/endpoints/new', { ...fields, signing_key: '{"kty":"RSA"}' });
    expect(bad.status).toBe(400);
    expect(bad.text).toContain('signing_key');
    const created = await d.post('/dashboard/projects/default/endpoints/new', fields);
    expect(created.status, created.text).toBe(303);
    const id = /endpoints\/([^/]+)\/new-secret$/.exec(created.location!)![1]!;
    const stored = async () => (await t.api('GET', `/endpoints/${id}`)).body.data;
    expect(await stored()).toMatchObject({
      authentication: { type: 'oauth2', oauth2: { authentication_type: 'client_assertion', client_id: 'wharf-client', signing_key: '********', issuer: 'wharf-issuer', subject: 'wharf-client', audience: 'https://auth.example' } },
    });
    const page = await d.get(`/dashboard/projects/default/endpoints/${id}`);
    expect(page.text).not.toContain(jwk.d!);
    expect(page.text).toMatch(/<option value="oauth2_assertion" selected>/);
    expect(page.text).toContain('value="wharf-issuer"');
    const saved = await d.post(`/dashboard/projects/default/endpoints/${id}/edit`, { ...fields, signing_key: '', issuer: '' });
    expect(saved.status, saved.text).toBe(303);
    expect(await stored()).toMatchObject({ authentication: { oauth2: { authentication_type: 'client_assertion', signing_key: '********', issuer: 'wharf-client' } } });
    // The stored key is still the one given at creation.
    const box = await loadSecretBox({ key: '', dataDir: join(dirname(t.configFile), 'data') });
    const { rows } = await t.app.pool.query<{ credentials_enc: string }>('SELECT credentials_enc FROM endpoints WHERE project_id = $1 AND id = $2', ['default', id]);
    expect(JSON.parse(box.decrypt(rows[0]!.credentials_enc)).authentication.signing_key.d).toBe(jwk.d);
  });

  it('rotation history: each secret says which credential made it, through the API and the dashboard, never the credential', async () => {
    const keyId = (await t.app.pool.query<{ id: string }>(`SELECT id FROM api_keys WHERE project_id = 'default'`)).rows[0]!.id;
    const e = await t.api('POST', '/endpoints', { name: 'rotated', url: `${rx.url}/rotated`, skip_ping_validation: true });
    const id = e.body.data.uid as string;
    expect(e.body.data.secrets[0].created_by).toEqual({ type: 'api_key', id: keyId, via: 'api' });
    const d = dashboardClient(t.url);
    await d.signIn(t.keys.default!);
    expect((await d.post(`/dashboard/projects/default/endpoints/${id}/rotate-secret`, { expiration: '600' })).status).toBe(303);
    const op = dashboardClient(t.url);
    await op.signIn(t.operatorToken);
    expect((await op.post(`/dashboard/projects/default/endpoints/${id}/rotate-secret`, { expiration: '600' })).status).toBe(303);
    const secrets = (await t.api('GET', `/endpoints/${id}`)).body.data.secrets;
    expect(secrets.map((s: { created_by: unknown }) => s.created_by)).toEqual([
      { type: 'operator', id: null, via: 'dashboard' },
      { type: 'api_key', id: keyId, via: 'dashboard' },
      { type: 'api_key', id: keyId, via: 'api' },
    ]);
    const page = await d.get(`/dashboard/projects/default/endpoints/${id}`);
    expect(page.text).toContain('the operator in the dashboard');
    expect(page.text).toContain(`API key <span class="code">${keyId}</span> in the dashboard`);
    expect(page.text).toContain(`API key <span class="code">${keyId}</span> through the API`);
    expect(page.text).not.toContain(t.keys.default!);
    // The header that says "dashboard" is believed from the dashboard's in-process calls only.
    const spoofed = await t.request('PUT', `/api/v1/projects/default/endpoints/${id}/expire_secret`, { authorization: `Bearer ${t.keys.default}`, body: { expiration: 600 }, headers: { 'x-wharf-via': 'dashboard' } });
    expect(spoofed.status, spoofed.text).toBe(200);
    expect(spoofed.body.data.secrets[0].created_by).toEqual({ type: 'api_key', id: keyId, via: 'api' });
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

describe('dashboard sessions, broker sources and sign-in limits', () => {
  let t: TestApp;
  let queue: BrokerChannel;
  beforeAll(async () => {
    queue = await rabbit.channel(`dash-made-${randomBytes(4).toString('hex')}`);
    t = await startTestApp({ dashboard: { session_seconds: 2 }, ingest: { api_broker_types: ['rabbitmq'] } });
  });
  afterAll(async () => {
    await t?.stop();
    await queue?.close?.();
  });

  it('a session lasts dashboard.session_seconds: after it, a page asks to sign in again and a post is refused', async () => {
    const d = dashboardClient(t.url);
    const ok = await d.signIn(t.keys.default!);
    expect(ok.headers.get('set-cookie')).toMatch(/wharf_dashboard=[A-Za-z0-9_-]{43}; Path=\/dashboard; Max-Age=[12];/);
    expect((await d.get('/dashboard/projects/default')).status).toBe(200);
    await new Promise((resolve) => setTimeout(resolve, 2_100));
    const later = await d.get('/dashboard/projects/default');
    expect(later.status).toBe(303);
    expect(later.location).toBe('/dashboard');
    expect((await d.post('/dashboard/projects/default/endpoints/new', { _csrf: 'x'.repeat(43), name: 'late', url: 'http://127.0.0.1:9/late' })).status).toBe(401);
  });

  it('a broker source of a type the operator opened to the API is created and edited as JSON; its credentials show as ********', async () => {
    const d = dashboardClient(t.url);
    await d.signIn(t.keys.default!);
    expect((await d.get('/dashboard/projects/default/sources/new')).text).toContain('<option value="rabbitmq"');
    const block = queue.block as { url: string; queue: string };
    const password = new URL(block.url).password;
    const fields = { id: 'made-queue', name: 'Made queue', type: 'rabbitmq', format: 'envelope', settings: JSON.stringify(block) };
    const unreadable = await d.post('/dashboard/projects/default/sources/new', { ...fields, settings: `{"url": "${block.url}", ` });
    expect(unreadable.status).toBe(400);
    expect(unreadable.text).toContain('rabbitmq: is not JSON');
    const refused = await d.post('/dashboard/projects/default/sources/new', { ...fields, settings: JSON.stringify({ ...block, prefetch: -1 }) });
    expect(refused.status).toBe(400);
    // Shown again for correction, without the credentials typed in.
    expect(refused.text).not.toContain(`:${password}@`);
    const created = await d.post('/dashboard/projects/default/sources/new', fields);
    expect(created.status, created.text).toBe(303);
    const page = await d.get('/dashboard/projects/default/sources/made-queue');
    expect(page.text).toContain('&quot;url&quot;: &quot;********&quot;');
    expect(page.text).not.toContain(`:${password}@`);
    const shown = /<textarea name="settings"[^>]*>([^<]*)<\/textarea>/.exec(page.text)![1]!.replace(/&quot;/g, '"');
    const saved = await d.post('/dashboard/projects/default/sources/made-queue/edit', { ...fields, name: 'Made queue, renamed', settings: shown });
    expect(saved.status, saved.text).toBe(303);
    // The URL sent back as ******** kept the stored one: the source still reaches its queue.
    await vi.waitFor(async () => {
      const s = (await t.api('GET', '/sources/made-queue')).body.data;
      expect(s).toMatchObject({ name: 'Made queue, renamed', rabbitmq: { url: '********', queue: block.queue } });
      expect(s.status?.state).toBe('running');
    }, { timeout: 20_000, interval: 250 });
  });

  it('failed sign-ins from one address are limited: 429 with Retry-After, a right key refused too while it lasts', async () => {
    const d = dashboardClient(t.url);
    for (let i = 0; i < 5; i++) expect((await d.signIn(`test_wrong-${i}`)).status).toBe(401);
    const limited = await d.signIn(`test_wrong-5`);
    expect(limited.status).toBe(429);
    expect(Number(limited.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(limited.text).toContain('Too many failed sign-ins. Try again in');
    // Guessing right now tells nothing: the right key is refused the same way.
    const right = await d.signIn(t.keys.default!);
    expect(right.status).toBe(429);
    expect(d.cookie).toBe('');
  });
});
