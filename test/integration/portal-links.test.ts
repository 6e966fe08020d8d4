/**
 * The portal links API (create, list, get, revoke) and what a link does when opened: one-time
 * use, expiry, revocation, session length, cookies, security headers and CSRF checks.
 */
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../harness/app.ts';
import { portalClient } from '../harness/portal.ts';
import { startReceiver, type Receiver } from '../harness/receiver.ts';

describe.each(['postgres', 'embedded'] as const)('portal links (%s)', (kind) => {
  let t: TestApp;
  let rx: Receiver;
  const ids: Record<string, string> = {};

  beforeAll(async () => {
    rx = await startReceiver();
    t = await startTestApp({ kind, projects: [{ id: 'default', name: 'Default' }, { id: 'other', name: 'Other' }] });
    for (const [name, owner, project] of [['a1', 'acme', 'default'], ['a2', 'acme', 'default'], ['b1', 'beta', 'default'], ['o1', 'acme', 'other']] as const) {
      const res = await t.api('POST', '/endpoints', { name, url: `${rx.url}/${name}`, owner_id: owner }, project);
      expect(res.status, res.text).toBe(201);
      ids[name] = res.body.data.uid;
    }
  });
  afterAll(async () => {
    await t?.stop();
    await rx?.close();
  });

  const create = async (body: Record<string, unknown>, project = 'default') => {
    const res = await t.api('POST', '/portal-links', { name: 'Acme portal', ...body }, project);
    expect(res.status, res.text).toBe(201);
    return res.body.data as { uid: string; url: string; kind: string; status: string; [k: string]: unknown };
  };
  const portal = () => portalClient(t.url);

  it('creates a link: the URL once, only a hash of its token stored', async () => {
    const link = await create({ owner_id: 'acme', can_manage_endpoint: true, kind: 'long_lived' });
    expect(link).toMatchObject({ name: 'Acme portal', owner_id: 'acme', endpoints: [], can_manage_endpoint: true, kind: 'long_lived', status: 'active', expires_at: null });
    expect(link.url).toMatch(new RegExp(`^${t.url}/portal/l/wpl_[A-Za-z0-9_-]{43}$`));
    const token = link.url.split('/').at(-1)!;
    const { rows } = await t.app.pool.query('SELECT * FROM portal_links WHERE id = $1', [link.uid]);
    expect(rows[0].token_hash).toBe(createHash('sha256').update(token).digest('hex'));
    expect(JSON.stringify(rows[0])).not.toContain(token);

    const got = await t.api('GET', `/portal-links/${link.uid}`);
    expect(got.status).toBe(200);
    expect(got.body.data.url).toBeUndefined();
    expect(got.body.data.token).toBeUndefined();
    expect(got.text).not.toContain(token);
    const list = await t.api('GET', '/portal-links');
    expect(list.text).not.toContain(token);
    expect(list.body.data.content.map((l: { uid: string }) => l.uid)).toContain(link.uid);
  });

  it("defaults as Convoy's: a reusable (static_token) link that cannot manage; an unopened one-time link expires after a day", async () => {
    // convoy-go's body: never an auth_type, "" and false for what it leaves unset.
    const reusable = await create({ endpoints: [ids.a1, ids.a1], owner_id: '', can_manage_endpoint: false });
    expect(reusable).toMatchObject({ kind: 'long_lived', auth_type: 'static_token', can_manage_endpoint: false, owner_id: '', endpoints: [ids.a1], endpoint_count: 1, expires_at: null });
    expect(reusable.url).toBe(`${t.url}/portal/l/${reusable.token as string}`);
    const link = await create({ endpoints: [ids.a1], auth_type: 'refresh_token' });
    expect(link).toMatchObject({ kind: 'one_time', auth_type: 'refresh_token' });
    const hours = (new Date(link.expires_at as string).getTime() - Date.now()) / 3_600_000;
    expect(hours).toBeGreaterThan(23.9);
    expect(hours).toBeLessThanOrEqual(24);
  });

  it('refuses what it cannot use, naming the field', async () => {
    const past = new Date(Date.now() - 60_000).toISOString();
    const cases: [Record<string, unknown>, string, string][] = [
      [{ owner_id: 'acme', name: undefined }, 'name', 'name: is required'],
      [{}, 'owner_id', 'owner_id: or endpoints is required'],
      [{ owner_id: 'acme', endpoints: [ids.a1] }, 'endpoints', 'endpoints: cannot be given with owner_id'],
      // Convoy's clients send an empty list (and "" for owner_id) for what they leave unset.
      [{ endpoints: [], owner_id: '' }, 'owner_id', 'owner_id: or endpoints is required'],
      [{ endpoints: 'a1' }, 'endpoints', 'endpoints: must be a list of 1 to 100'],
      [{ endpoints: [ids.a1, 'nope'] }, 'endpoints[1]', 'endpoints[1]: endpoint "nope" does not exist in this project'],
      [{ endpoints: [ids.o1] }, 'endpoints[0]', 'does not exist in this project'],
      [{ endpoints: [42] }, 'endpoints[0]', 'endpoints[0]: must be an endpoint id'],
      [{ owner_id: 'acme', kind: 'forever' }, 'kind', 'kind: must be one of one_time, long_lived (got "forever")'],
      [{ owner_id: 'acme', expires_at: past }, 'expires_at', 'expires_at: must be in the future'],
      [{ owner_id: 'acme', expires_at: 'tomorrow' }, 'expires_at', 'expires_at: must be an ISO 8601 time'],
      [{ owner_id: 'acme', expires_at: '2030-01-01T00:00:00' }, 'expires_at', 'with a time zone'],
      [{ owner_id: 'acme', expires_at: '2030-02-30T00:00:00Z' }, 'expires_at', 'expires_at: must be an ISO 8601 time'],
      [{ owner_id: 'acme', can_manage_endpoint: 'yes' }, 'can_manage_endpoint', 'can_manage_endpoint: must be true or false'],
      [{ owner_id: 'acme', colour: 'red' }, 'colour', 'colour: unknown field'],
    ];
    for (const [body, field, message] of cases) {
      const res = await t.api('POST', '/portal-links', { name: 'x', ...body });
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(res.body.data.field).toBe(field);
      expect(res.body.message).toContain(message);
    }
    const other = await t.api('POST', '/portal-links', { name: 'x', owner_id: 'acme' }, 'default');
    expect((await t.api('GET', `/portal-links/${other.body.data.uid}`, undefined, 'other')).status).toBe(404);
  });

  it('lists newest first, paginated, filtered by owner', async () => {
    await create({ owner_id: 'list-owner', kind: 'long_lived' });
    await create({ owner_id: 'list-owner', kind: 'long_lived' });
    const first = await t.api('GET', '/portal-links?owner_id=list-owner&per_page=1');
    expect(first.status).toBe(200);
    expect(first.body.data.content).toHaveLength(1);
    expect(first.body.data.pagination.has_next_page).toBe(true);
    const second = await t.api('GET', `/portal-links?owner_id=list-owner&per_page=1&next_page_cursor=${first.body.data.pagination.next_page_cursor}`);
    expect(second.body.data.content).toHaveLength(1);
    expect(second.body.data.content[0].uid < first.body.data.content[0].uid).toBe(true);
    expect(second.body.data.pagination.has_next_page).toBe(false);
    expect((await t.api('GET', '/portal-links', undefined, 'other')).body.data.content).toEqual([]);
  });

  it('one_time: the first opening starts a session, every later one gets 410', async () => {
    const link = await create({ owner_id: 'acme', kind: 'one_time' });
    const browser = portal();
    const opened = await browser.open(link.url);
    expect(opened.status).toBe(303);
    expect(opened.location).toBe('/portal/');
    const cookie = opened.headers.get('set-cookie')!;
    expect(cookie).toMatch(/^wharf_portal=[A-Za-z0-9_-]{43}; Path=\/portal; Max-Age=\d+; HttpOnly; SameSite=Lax$/);
    const maxAge = Number(/Max-Age=(\d+)/.exec(cookie)![1]);
    expect(maxAge).toBeGreaterThan(3500);
    expect(maxAge).toBeLessThanOrEqual(3600);
    // Only the session id's hash is stored.
    const sid = /wharf_portal=([^;]+)/.exec(cookie)![1]!;
    const { rows } = await t.app.pool.query('SELECT id_hash FROM portal_sessions WHERE link_id = $1', [link.uid]);
    expect(rows.map((r) => r.id_hash)).toEqual([createHash('sha256').update(sid).digest('hex')]);

    const home = await browser.get('/portal/');
    expect(home.status).toBe(200);
    expect(home.text).toContain(`/portal/endpoints/${ids.a1}"`);

    const again = await portal().open(link.url);
    expect(again.status).toBe(410);
    expect(again.text).toContain('already used');
    expect(again.headers.get('set-cookie')).toBeNull();
    expect((await t.api('GET', `/portal-links/${link.uid}`)).body.data).toMatchObject({ status: 'used' });
    // The browser that opened it may come back through the same URL while its session lasts.
    expect((await browser.open(link.url)).status).toBe(303);
  });

  it('one_time: of two simultaneous openings only one starts a session', async () => {
    const link = await create({ owner_id: 'acme', kind: 'one_time' });
    const results = await Promise.all(Array.from({ length: 6 }, () => portal().open(link.url)));
    expect(results.map((r) => r.status).sort()).toEqual([303, 410, 410, 410, 410, 410]);
  });

  it('long_lived: every opening starts a session, until revoked', async () => {
    const link = await create({ owner_id: 'acme', kind: 'long_lived' });
    const [one, two] = [portal(), portal()];
    expect((await one.open(link.url)).status).toBe(303);
    expect((await two.open(link.url)).status).toBe(303);
    expect((await one.get('/portal/deliveries')).status).toBe(200);
    expect((await two.get('/portal/deliveries')).status).toBe(200);

    const revoked = await t.api('DELETE', `/portal-links/${link.uid}`);
    expect(revoked.status).toBe(200);
    expect(revoked.body.data).toMatchObject({ status: 'revoked' });
    expect(revoked.body.data.revoked_at).toBeTruthy();
    // A running session ends at once, and the link says why.
    const page = await one.get('/portal/');
    expect(page.status).toBe(401);
    expect(page.text).toContain('This link was revoked');
    const reopened = await portal().open(link.url);
    expect(reopened.status).toBe(401);
    expect(reopened.text).toContain('revoked');
    expect(reopened.headers.get('content-type')).toContain('text/html');
    // Revoking again is harmless; unknown links are 404.
    expect((await t.api('PUT', `/portal-links/${link.uid}/revoke`)).status).toBe(200);
    expect((await t.api('DELETE', '/portal-links/0190a000-0000-7000-8000-000000000000')).status).toBe(404);
    expect((await t.api('DELETE', '/portal-links/not-a-uuid')).status).toBe(404);
  });

  it('PUT …/revoke revokes too (Convoy\'s route)', async () => {
    const link = await create({ owner_id: 'acme', kind: 'long_lived' });
    const res = await t.api('PUT', `/portal-links/${link.uid}/revoke`);
    expect(res.status).toBe(200);
    expect((await portal().open(link.url)).status).toBe(401);
  });

  it('expiry: an expired link answers 410, and its sessions end', async () => {
    const link = await create({ owner_id: 'acme', kind: 'long_lived', expires_at: new Date(Date.now() + 3_600_000).toISOString() });
    const browser = portal();
    const opened = await browser.open(link.url);
    expect(opened.status).toBe(303);
    // The session never outlives the link.
    const { rows } = await t.app.pool.query('SELECT s.expires_at <= l.expires_at AS bounded FROM portal_sessions s JOIN portal_links l ON l.id = s.link_id WHERE l.id = $1', [link.uid]);
    expect(rows[0].bounded).toBe(true);

    await t.app.pool.query(`UPDATE portal_links SET expires_at = now() - interval '1 second' WHERE id = $1`, [link.uid]);
    const page = await browser.get('/portal/');
    expect(page.status).toBe(410);
    expect(page.text).toContain('This link has expired');
    expect(page.headers.get('set-cookie')).toContain('Max-Age=0');
    const reopened = await portal().open(link.url);
    expect(reopened.status).toBe(410);
    expect(reopened.text).toContain('expired');
    expect((await t.api('GET', `/portal-links/${link.uid}`)).body.data.status).toBe('expired');
  });

  it('a session lasts portal.session_minutes: then 401 (open the link again) or, one-time, 410', async () => {
    const long = await create({ owner_id: 'acme', kind: 'long_lived' });
    const once = await create({ owner_id: 'acme', kind: 'one_time' });
    const [a, b] = [portal(), portal()];
    await a.open(long.url);
    await b.open(once.url);
    await t.app.pool.query(`UPDATE portal_sessions SET expires_at = now() - interval '1 second' WHERE link_id = ANY($1)`, [[long.uid, once.uid]]);
    const pa = await a.get('/portal/');
    expect(pa.status).toBe(401);
    expect(pa.text).toContain('Open your portal link again');
    const pb = await b.get('/portal/');
    expect(pb.status).toBe(410);
    expect(pb.text).toContain('Ask the team that sent it for a new one');
    expect((await a.open(long.url)).status).toBe(303);
    expect((await a.get('/portal/')).status).toBe(200);
  });

  it('unknown tokens and missing or forged cookies get a page saying so, not data', async () => {
    const bad = await portal().open(`${t.url}/portal/l/wpl_${'A'.repeat(43)}`);
    expect(bad.status).toBe(401);
    expect(bad.text).toContain('not valid');
    expect((await portal().get('/portal/')).status).toBe(401);
    expect((await portal().get('/portal/deliveries', { cookie: `wharf_portal=${'B'.repeat(43)}` })).status).toBe(401);
  });

  it('every portal response carries the security headers', async () => {
    const link = await create({ owner_id: 'acme', kind: 'long_lived' });
    const browser = portal();
    const responses = [
      await browser.open(link.url),
      await browser.get('/portal/'),
      await browser.get('/portal/deliveries?status=bogus'),
      await browser.get('/portal/nothing-here'),
      await browser.get('/portal/assets/portal.css'),
      await browser.get('/portal/assets/portal.js'),
      await portal().get('/portal/'),
    ];
    for (const r of responses) {
      expect(r.headers.get('content-security-policy')).toBe(
        "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
      );
      expect(r.headers.get('x-content-type-options')).toBe('nosniff');
      expect(r.headers.get('referrer-policy')).toBe('no-referrer');
      expect(r.headers.get('cache-control')).toBe('no-store');
    }
    expect(responses[4]!.headers.get('content-type')).toContain('text/css');
    expect(responses[5]!.headers.get('content-type')).toContain('text/javascript');
    const home = responses[1]!.text;
    expect(home).toContain('<meta name="viewport" content="width=device-width, initial-scale=1">');
    // No inline script or style anywhere (the CSP would block them).
    expect(home).not.toMatch(/<script(?![^>]*\bsrc=)/);
    expect(home).not.toMatch(/<style|style="/);
  });

  it('forms need the session\'s CSRF token and a same-site origin (403 otherwise)', async () => {
    const link = await create({ owner_id: 'acme', kind: 'long_lived', can_manage_endpoint: true });
    const browser = portal();
    await browser.open(link.url);
    const path = `/portal/endpoints/${ids.a2}/pause`;
    const status = async () => (await t.api('GET', `/endpoints/${ids.a2}`)).body.data.status;
    const refused = [
      await browser.post(path, { _csrf: null }),
      await browser.post(path, { _csrf: 'x'.repeat(43) }),
      await browser.post(path, {}, { origin: 'https://evil.example' }),
      await browser.post(path, {}, { origin: 'https://evil.example', 'sec-fetch-site': null }),
      await browser.post(path, {}, { origin: 'null', 'sec-fetch-site': null }),
      await browser.post(path, {}, { 'sec-fetch-site': 'cross-site' }),
      await browser.post(path, {}, { 'sec-fetch-site': 'same-site' }),
    ];
    for (const r of refused) {
      expect(r.status).toBe(403);
      expect(r.text).toContain('Not allowed');
    }
    // Another session's token is no good either.
    const other = portal();
    await other.open(link.url);
    expect((await browser.post(path, { _csrf: await other.csrf() })).status).toBe(403);
    expect(await status()).toBe('active');

    const ok = await browser.post(path);
    expect(ok.status).toBe(303);
    expect(await status()).toBe('paused');
    // Chromium's same-origin post under Referrer-Policy: no-referrer; and a client that sends neither header.
    expect((await browser.post(path, {}, { origin: 'null' })).status).toBe(303);
    expect(await status()).toBe('active');
    expect((await browser.post(path, {}, { origin: null, 'sec-fetch-site': null })).status).toBe(303);
    expect(await status()).toBe('paused');
    expect((await browser.post(path)).status).toBe(303);
    expect(await status()).toBe('active');
  });

  it('sign out ends the session', async () => {
    const link = await create({ owner_id: 'acme', kind: 'long_lived' });
    const browser = portal();
    await browser.open(link.url);
    const out = await browser.post('/portal/logout');
    expect(out.status).toBe(200);
    expect(out.headers.get('set-cookie')).toContain('Max-Age=0');
    expect((await browser.get('/portal/')).status).toBe(401);
  });
});
