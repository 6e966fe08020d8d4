import { createHmac, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startReceiver, type Receiver } from '../harness/receiver.ts';
import { startTestApp, type TestApp, type RawResponse } from '../harness/app.ts';
import { REQUEST_HEADERS_SQL } from '../../src/delivery/request.ts';

/**
 * The REST API's contract (DESIGN §5): Convoy routes, `{status, message, data}` envelopes, honest
 * status codes, and 400s that name the field. One app for the file, with one project per concern
 * so broadcasts and listings of one test never see another test's endpoints.
 */
const BODY_LIMIT = 4096;

const PROJECTS = [
  // Retries wait 30 s, so a failing delivery sits in `retry` for the whole file.
  { id: 'default', name: 'Default', retry: { strategy: 'linear', duration: 30, retry_count: 3 } },
  { id: 'stdwh', name: 'Standard', signature: { scheme: 'standard-webhooks' } },
  { id: 'bcast', name: 'Broadcasts' },
  { id: 'empty', name: 'No endpoints' },
  {
    id: 'yaml',
    name: 'Declared endpoints',
    // Reconciled in one transaction, so all five share one created_at.
    endpoints: [1, 2, 3, 4, 5].map((i) => ({
      id: `declared-${i}`,
      name: `Declared ${i}`,
      url: `http://127.0.0.1:9/declared-${i}`,
      owner_id: 'yaml-walk',
    })),
  },
];

let t: TestApp;
let rx: Receiver;

beforeAll(async () => {
  rx = await startReceiver();
  // Each test answers its own paths; everything else gets a 200.
  rx.answer((r) => {
    if (r.path.startsWith('/fail')) return { status: 500, body: 'broken on purpose' };
    if (r.path.startsWith('/slow')) return { status: 200, delayMs: 3_000 };
    return { status: 200, body: 'ok' };
  });
  t = await startTestApp({ kind: 'postgres', projects: PROJECTS, server: { body_limit: BODY_LIMIT } });
});

afterAll(async () => {
  await t?.stop();
  await rx?.close();
});

/** A failure envelope: the code, `status: false`, a message, and (when given) the field named twice. */
function expectError(res: RawResponse, code: number, field?: string): void {
  expect({ code: res.status, body: res.body }).toMatchObject({
    code,
    body: { status: false, message: expect.any(String), data: expect.any(Object) },
  });
  if (field !== undefined) {
    expect(res.body.data.field).toBe(field);
    expect(res.body.message).toContain(field);
  }
}

function expectOk(res: RawResponse, code: number): void {
  expect({ code: res.status, status: res.body?.status, message: typeof res.body?.message }).toEqual({
    code,
    status: true,
    message: 'string',
  });
  expect(res.body).toHaveProperty('data');
}

async function createEndpoint(project: string, fields: Record<string, unknown>): Promise<any> {
  const res = await t.api('POST', '/endpoints', { name: 'ep', url: `${rx.url}/ok`, ...fields }, project);
  expectOk(res, 201);
  return res.body.data;
}

async function sendEvent(body: Record<string, unknown>, project = 'default', path = '/events'): Promise<any> {
  const res = await t.api('POST', path, body, project);
  expectOk(res, 201);
  return res.body.data;
}

async function deliveriesOf(eventId: string, project = 'default'): Promise<any[]> {
  const res = await t.api('GET', `/eventdeliveries?event_id=${eventId}`, undefined, project);
  expectOk(res, 200);
  return res.body.data.content;
}

const hits = (path: string) => rx.requests.filter((r) => r.path === path);

/** Follows next_page_cursor from the first page; returns every page. */
async function walk(path: string, project = 'default'): Promise<any[]> {
  const pages: any[] = [];
  let cursor: string | null = null;
  for (let i = 0; i < 20; i++) {
    const sep = path.includes('?') ? '&' : '?';
    const res = await t.api('GET', cursor === null ? path : `${path}${sep}next_page_cursor=${encodeURIComponent(cursor)}`, undefined, project);
    expectOk(res, 200);
    pages.push(res.body.data);
    cursor = res.body.data.pagination.next_page_cursor;
    if (!res.body.data.pagination.has_next_page) break;
  }
  return pages;
}

describe('authentication', () => {
  const path = '/api/v1/projects/default/endpoints';

  it('opens a project with its own key (positive control)', async () => {
    expectOk(await t.request('GET', path, { authorization: `Bearer ${t.keys.default}` }), 200);
  });

  it('answers 401 without an Authorization header', async () => {
    const res = await t.request('GET', path);
    expectError(res, 401);
    expect(res.body.data.code).toBe('WHARF_ERR_UNAUTHORIZED');
  });

  it.each([
    ['Basic scheme', () => `Basic ${Buffer.from(`u:${t.keys.default}`).toString('base64')}`],
    ['Bearer without a key', () => 'Bearer'],
    ['Bearer with two tokens', () => `Bearer ${t.keys.default} extra`],
    ['the key alone', () => t.keys.default!],
  ])('answers 401 to a malformed header (%s)', async (_name, header) => {
    const res = await t.request('GET', path, { authorization: header() });
    expectError(res, 401);
    expect(res.body.data.code).toBe('WHARF_ERR_UNAUTHORIZED');
  });

  it('answers 401 to a key no project has', async () => {
    expectError(await t.request('GET', path, { authorization: 'Bearer test_not_a_real_key_0123456789' }), 401);
  });

  it("answers 401 to project A's key on project B's routes, both ways", async () => {
    expectError(await t.request('GET', '/api/v1/projects/stdwh/endpoints', { authorization: `Bearer ${t.keys.default}` }), 401);
    expectError(await t.request('GET', path, { authorization: `Bearer ${t.keys.stdwh}` }), 401);
    const post = await t.request('POST', '/api/v1/projects/stdwh/endpoints', {
      authorization: `Bearer ${t.keys.default}`,
      body: { name: 'sneaky', url: `${rx.url}/ok` },
    });
    expectError(post, 401);
    const list = await t.api('GET', '/endpoints', undefined, 'stdwh');
    expect(JSON.stringify(list.body)).not.toContain('sneaky');
  });

  it('answers 401, not 404, for a project that does not exist', async () => {
    expectError(await t.request('GET', '/api/v1/projects/nope/endpoints', { authorization: `Bearer ${t.keys.default}` }), 401);
    expectError(await t.request('GET', '/api/v1/projects/nope/endpoints'), 401);
    expectError(await t.request('GET', '/api/v1/projects/nope/endpoints', { authorization: 'Bearer test_wrong_key_0123456789' }), 401);
  });
});

describe('endpoints: validation', () => {
  const base = () => ({ name: 'valid', url: `${rx.url}/ok` });

  it.each([
    ['missing url', { name: 'x' }, 'url'],
    ['missing name', { url: 'https://example.com/hook' }, 'name'],
    ['empty name', { name: '  ', url: 'https://example.com/hook' }, 'name'],
    ['non-http url', { name: 'x', url: 'ftp://example.com/hook' }, 'url'],
    ['relative url', { name: 'x', url: '/hook' }, 'url'],
    ['url with credentials', { name: 'x', url: 'https://user:pw@example.com/hook' }, 'url'],
    ['url with a user only', { name: 'x', url: 'https://user@example.com/hook' }, 'url'],
    ['http_timeout 0', { name: 'x', url: 'https://example.com/hook', http_timeout: 0 }, 'http_timeout'],
    ['http_timeout 301', { name: 'x', url: 'https://example.com/hook', http_timeout: 301 }, 'http_timeout'],
    ['http_timeout "ten"', { name: 'x', url: 'https://example.com/hook', http_timeout: 'ten' }, 'http_timeout'],
    ['http_timeout 1.5', { name: 'x', url: 'https://example.com/hook', http_timeout: 1.5 }, 'http_timeout'],
    ['bad support_email', { name: 'x', url: 'https://example.com/hook', support_email: 'not-an-email' }, 'support_email'],
    ['unknown field', { name: 'x', url: 'https://example.com/hook', colour: 'red' }, 'colour'],
    ['advanced_signatures "yes"', { name: 'x', url: 'https://example.com/hook', advanced_signatures: 'yes' }, 'advanced_signatures'],
  ])('POST /endpoints with %s → 400 naming the field', async (_name, body, field) => {
    const res = await t.api('POST', '/endpoints', body);
    expectError(res, 400, field);
    expect(res.body.data.code).toBe('WHARF_ERR_INVALID');
  });

  it.each([
    ['an array', [1, 2]],
    ['a string', 'endpoint'],
    ['a number', 42],
  ])('POST /endpoints with a body that is %s → 400 naming body', async (_name, body) => {
    expectError(await t.api('POST', '/endpoints', body), 400, 'body');
  });

  it('stores nothing when validation fails', async () => {
    await t.api('POST', '/endpoints', { name: 'never-stored', url: 'ftp://example.com' });
    const list = await t.api('GET', '/endpoints?per_page=100');
    expect(JSON.stringify(list.body)).not.toContain('never-stored');
    // And the valid base still works (positive control for the table above).
    await createEndpoint('default', base());
  });
});

describe('endpoints: secrets', () => {
  it('lists each endpoint with its own secrets metadata', async () => {
    const a = await createEndpoint('default', { name: 'pair-a', owner_id: 'secret-pair' });
    const b = await createEndpoint('default', { name: 'pair-b', owner_id: 'secret-pair' });
    const list = await t.api('GET', '/endpoints?owner_id=secret-pair');
    expectOk(list, 200);
    const byUid = new Map(list.body.data.content.map((e: any) => [e.uid, e.secrets.map((x: any) => x.uid)]));
    expect(byUid.get(a.uid)).toEqual([a.secrets[0].uid]);
    expect(byUid.get(b.uid)).toEqual([b.secrets[0].uid]);
  });

  it('shows a generated secret once, at creation, and never again', async () => {
    const ep = await createEndpoint('default', { name: 'secretive', owner_id: 'secret-owner' });
    expect(ep.secrets).toHaveLength(1);
    const value = ep.secrets[0].value as string;
    expect(typeof value).toBe('string');
    expect(value.length).toBeGreaterThanOrEqual(32);

    const got = await t.api('GET', `/endpoints/${ep.uid}`);
    expectOk(got, 200);
    expect(got.body.data.uid).toBe(ep.uid);
    expect(got.body.data.secrets).toHaveLength(1);
    expect(got.body.data.secrets[0].uid).toBe(ep.secrets[0].uid);
    expect(got.body.data.secrets[0]).not.toHaveProperty('value');
    expect(got.text).not.toContain(value);

    const list = await t.api('GET', '/endpoints?owner_id=secret-owner');
    expectOk(list, 200);
    expect(list.body.data.content.map((e: any) => e.uid)).toEqual([ep.uid]);
    expect(list.text).not.toContain(value);

    const put = await t.api('PUT', `/endpoints/${ep.uid}`, { description: 'changed' });
    expectOk(put, 202);
    expect(put.text).not.toContain(value);
  });

  it('keeps a secret it is given (the delivered signature verifies with it)', async () => {
    const secret = 'my-own-convoy-secret-0123456789';
    const ep = await createEndpoint('default', { name: 'given', url: `${rx.url}/given-secret`, secret });
    expect(ep.secrets[0].value).toBe(secret);
    const ev = await sendEvent({ endpoint_id: ep.uid, event_type: 'secret.check', data: { n: 1 } });
    await expect.poll(() => hits('/given-secret').length, { timeout: 10_000 }).toBe(1);
    const r = hits('/given-secret')[0]!;
    const header = String(r.headers['x-convoy-signature']);
    const m = /^t=(\d+),v1=([0-9a-f]+)$/.exec(header);
    expect(m, header).not.toBeNull();
    const expected = createHmac('sha256', secret).update(`${m![1]},`).update(r.body).digest('hex');
    expect(m![2]).toBe(expected);
    expect(r.headers['x-wharf-event-id']).toBe(ev.uid);
  });

  it('generates whsec_ secrets for a standard-webhooks project', async () => {
    const ep = await createEndpoint('stdwh', { name: 'std' });
    const value = ep.secrets[0].value as string;
    expect(value).toMatch(/^whsec_[A-Za-z0-9+/]+={0,2}$/);
    expect(Buffer.from(value.slice('whsec_'.length), 'base64').length).toBeGreaterThanOrEqual(24);
    const got = await t.api('GET', `/endpoints/${ep.uid}`, undefined, 'stdwh');
    expectOk(got, 200);
    expect(got.text).not.toContain(value);
  });

  it('rejects a secret a standard-webhooks receiver could not use, and keeps a valid one', async () => {
    for (const secret of ['not base64!!', 'whsec_', 'whsec_abc', 'whsec_YWJj-_']) {
      const res = await t.api('POST', '/endpoints', { name: 'std-bad', url: `${rx.url}/ok`, secret }, 'stdwh');
      expectError(res, 400, 'secret');
    }
    const good = `whsec_${Buffer.from('0123456789abcdef0123456789abcdef').toString('base64')}`;
    const ep = await createEndpoint('stdwh', { name: 'std-good', secret: good });
    expect(ep.secrets[0].value).toBe(good);
  });
});

describe('endpoints: read, update, delete', () => {
  it('PUT updates only the fields it is given', async () => {
    const ep = await createEndpoint('default', {
      name: 'partial',
      url: `${rx.url}/partial`,
      owner_id: 'partial-owner',
      description: 'before',
      http_timeout: 7,
      advanced_signatures: false,
      support_email: 'ops@example.com',
    });
    const put = await t.api('PUT', `/endpoints/${ep.uid}`, { description: 'after' });
    expectOk(put, 202);
    const expected = {
      uid: ep.uid,
      name: 'partial',
      url: `${rx.url}/partial`,
      owner_id: 'partial-owner',
      description: 'after',
      http_timeout: 7,
      advanced_signatures: false,
      support_email: 'ops@example.com',
      status: 'active',
    };
    expect(put.body.data).toMatchObject(expected);
    const got = await t.api('GET', `/endpoints/${ep.uid}`);
    expectOk(got, 200);
    expect(got.body.data).toMatchObject(expected);

    const put2 = await t.api('PUT', `/endpoints/${ep.uid}`, { http_timeout: 30, name: 'renamed' });
    expectOk(put2, 202);
    expect(put2.body.data).toMatchObject({ ...expected, http_timeout: 30, name: 'renamed' });
  });

  it('PUT refuses a secret and invalid fields, changing nothing', async () => {
    const ep = await createEndpoint('default', { name: 'no-secret-put' });
    expectError(await t.api('PUT', `/endpoints/${ep.uid}`, { secret: 'new-secret-value' }), 400, 'secret');
    expectError(await t.api('PUT', `/endpoints/${ep.uid}`, { url: 'ftp://example.com' }), 400, 'url');
    expectError(await t.api('PUT', `/endpoints/${ep.uid}`, { http_timeout: 0 }), 400, 'http_timeout');
    expectError(await t.api('PUT', `/endpoints/${ep.uid}`, { status: 'paused' }), 400, 'status');
    expectError(await t.api('PUT', `/endpoints/${ep.uid}`, ['x']), 400, 'body');
    const got = await t.api('GET', `/endpoints/${ep.uid}`);
    expect(got.body.data).toMatchObject({ name: 'no-secret-put', url: `${rx.url}/ok`, http_timeout: 10, status: 'active' });
  });

  it('GET, PUT and DELETE of an unknown id → 404', async () => {
    for (const id of ['no-such-endpoint', randomUUID()]) {
      expectError(await t.api('GET', `/endpoints/${id}`), 404);
      expectError(await t.api('PUT', `/endpoints/${id}`, { name: 'x' }), 404);
      expectError(await t.api('DELETE', `/endpoints/${id}`), 404);
      expectError(await t.api('PUT', `/endpoints/${id}/pause`), 404);
      expectError(await t.api('POST', `/endpoints/${id}/activate`), 404);
    }
  });

  it("does not show or touch another project's endpoint", async () => {
    const ep = await createEndpoint('stdwh', { name: 'other-project' });
    expectError(await t.api('GET', `/endpoints/${ep.uid}`), 404);
    expectError(await t.api('PUT', `/endpoints/${ep.uid}`, { name: 'hijacked' }), 404);
    expectError(await t.api('DELETE', `/endpoints/${ep.uid}`), 404);
    const still = await t.api('GET', `/endpoints/${ep.uid}`, undefined, 'stdwh');
    expectOk(still, 200);
    expect(still.body.data.name).toBe('other-project');
  });

  it('DELETE removes the endpoint: GET is 404 after, and a second DELETE too', async () => {
    const ep = await createEndpoint('default', { name: 'doomed' });
    const del = await t.api('DELETE', `/endpoints/${ep.uid}`);
    expectOk(del, 200);
    expectError(await t.api('GET', `/endpoints/${ep.uid}`), 404);
    expectError(await t.api('DELETE', `/endpoints/${ep.uid}`), 404);
  });
});

describe('endpoints: listing', () => {
  it('filters by owner_id', async () => {
    const a1 = await createEndpoint('default', { name: 'fa1', owner_id: 'filter-a' });
    const a2 = await createEndpoint('default', { name: 'fa2', owner_id: 'filter-a' });
    const b = await createEndpoint('default', { name: 'fb', owner_id: 'filter-b' });
    const res = await t.api('GET', '/endpoints?owner_id=filter-a');
    expectOk(res, 200);
    expect(res.body.data.content.map((e: any) => e.uid).sort()).toEqual([a1.uid, a2.uid].sort());
    const resB = await t.api('GET', '/endpoints?owner_id=filter-b');
    expect(resB.body.data.content.map((e: any) => e.uid)).toEqual([b.uid]);
    const none = await t.api('GET', '/endpoints?owner_id=nobody');
    expectOk(none, 200);
    expect(none.body.data.content).toEqual([]);
    expect(none.body.data.pagination).toMatchObject({ has_next_page: false, next_page_cursor: '' });
  });

  const expectWalk = (pages: any[], ids: string[]) => {
    expect(pages.map((p) => p.content.length)).toEqual([2, 2, 1]);
    expect(pages.map((p) => p.pagination.has_next_page)).toEqual([true, true, false]);
    expect(pages.every((p) => p.pagination.per_page === 2)).toBe(true);
    expect(pages.at(-1).pagination.next_page_cursor).toBe('');
    const seen = pages.flatMap((p) => p.content.map((e: any) => e.uid));
    expect(seen).toHaveLength(5);
    expect([...seen].sort()).toEqual([...ids].sort());
  };

  it('walks 5 endpoints with per_page=2 exactly once each, newest first', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push((await createEndpoint('default', { name: `walk-${i}`, owner_id: 'walk' })).uid);
    const pages = await walk('/endpoints?owner_id=walk&per_page=2');
    expectWalk(pages, ids);
    expect(pages.flatMap((p) => p.content.map((e: any) => e.uid))).toEqual([...ids].reverse());
  });

  it('walks 5 endpoints created together (one created_at, as config reconcile makes them) exactly once each', async () => {
    const pages = await walk('/endpoints?owner_id=yaml-walk&per_page=2', 'yaml');
    expectWalk(pages, [1, 2, 3, 4, 5].map((i) => `declared-${i}`));
  });

  // An empty per_page is unset (convoy-go sends perPage= when it has none).
  it.each(['0', '101', 'abc', '2.5', '-1'])('per_page=%s → 400 naming per_page', async (v) => {
    expectError(await t.api('GET', `/endpoints?per_page=${v}`), 400, 'per_page');
    expectError(await t.api('GET', `/events?per_page=${v}`), 400, 'per_page');
    expectError(await t.api('GET', `/eventdeliveries?per_page=${v}`), 400, 'per_page');
  });

  it.each([
    ['not base64 JSON', 'garbage!!'],
    ['JSON of the wrong shape', Buffer.from('[1,2]').toString('base64url')],
    ['a timestamp that is not one', Buffer.from(JSON.stringify(['not-a-date', 'x'])).toString('base64url')],
    ['too long', 'a'.repeat(300)],
  ])('a garbage cursor (%s) → 400 naming next_page_cursor', async (_name, cursor) => {
    const res = await t.api('GET', `/endpoints?next_page_cursor=${encodeURIComponent(cursor)}`);
    expectError(res, 400, 'next_page_cursor');
  });

  it('a garbage cursor on events and deliveries → 400', async () => {
    expectError(await t.api('GET', '/events?next_page_cursor=garbage'), 400, 'next_page_cursor');
    expectError(await t.api('GET', '/eventdeliveries?next_page_cursor=garbage'), 400, 'next_page_cursor');
  });
});

describe('endpoints: pause and activate', () => {
  it('pause toggles active ↔ paused; activate sets active', async () => {
    const ep = await createEndpoint('default', { name: 'toggle' });
    expect(ep.status).toBe('active');
    const statusAfter = async (method: string, path: string) => {
      const res = await t.api(method, `/endpoints/${ep.uid}${path}`);
      expectOk(res, 202);
      const got = await t.api('GET', `/endpoints/${ep.uid}`);
      expect(got.body.data.status).toBe(res.body.data.status);
      return res.body.data.status as string;
    };
    expect(await statusAfter('PUT', '/pause')).toBe('paused');
    expect(await statusAfter('PUT', '/pause')).toBe('active');
    expect(await statusAfter('PUT', '/pause')).toBe('paused');
    expect(await statusAfter('POST', '/activate')).toBe('active');
    expect(await statusAfter('POST', '/activate')).toBe('active');
  });

  it('an event to a paused endpoint is recorded as discarded and never sent', async () => {
    const paused = await createEndpoint('default', { name: 'paused', url: `${rx.url}/paused-target` });
    const active = await createEndpoint('default', { name: 'active', url: `${rx.url}/active-target` });
    expect((await t.api('PUT', `/endpoints/${paused.uid}/pause`)).body.data.status).toBe('paused');

    const toPaused = await sendEvent({ endpoint_id: paused.uid, event_type: 'pause.check', data: { to: 'paused' } });
    expect(toPaused.deliveries).toBe(1);
    const toActive = await sendEvent({ endpoint_id: active.uid, event_type: 'pause.check', data: { to: 'active' } });
    expect(toActive.deliveries).toBe(1);

    const [pausedDelivery] = await deliveriesOf(toPaused.uid);
    expect(pausedDelivery).toMatchObject({ endpoint_id: paused.uid, status: 'Discarded', attempts: 0 });

    // Positive control: the dispatcher is running and delivers the active endpoint's event...
    await expect.poll(() => hits('/active-target').length, { timeout: 10_000 }).toBe(1);
    await expect.poll(async () => (await deliveriesOf(toActive.uid))[0]?.status, { timeout: 10_000 }).toBe('Success');
    // ...which was sent after the paused one's, so the paused endpoint would have had its by now.
    expect(hits('/paused-target')).toHaveLength(0);
    const [after] = await deliveriesOf(toPaused.uid);
    expect(after).toMatchObject({ status: 'Discarded', attempts: 0 });
    const attempts = await t.api('GET', `/eventdeliveries/${pausedDelivery.uid}/deliveryattempts`);
    expectOk(attempts, 200);
    expect(attempts.body.data).toEqual([]);
  });
});

describe('events: validation', () => {
  let target: any;
  beforeAll(async () => {
    target = await createEndpoint('default', { name: 'event-target', url: `${rx.url}/event-target` });
  });

  it('missing event_type → 400 naming event_type', async () => {
    expectError(await t.api('POST', '/events', { endpoint_id: target.uid, data: {} }), 400, 'event_type');
  });

  it('missing data → 400 naming data', async () => {
    expectError(await t.api('POST', '/events', { endpoint_id: target.uid, event_type: 'x' }), 400, 'data');
  });

  it('missing endpoint_id → 400 naming endpoint_id', async () => {
    expectError(await t.api('POST', '/events', { event_type: 'x', data: {} }), 400, 'endpoint_id');
  });

  it('unknown field → 400 naming it', async () => {
    expectError(await t.api('POST', '/events', { endpoint_id: target.uid, event_type: 'x', data: {}, extra: 1 }), 400, 'extra');
    expectError(await t.api('POST', '/events/broadcast', { endpoint_id: target.uid, event_type: 'x', data: {} }), 400, 'endpoint_id');
  });

  it('unknown endpoint_id → 404 naming endpoint_id', async () => {
    const res = await t.api('POST', '/events', { endpoint_id: 'no-such-endpoint', event_type: 'x', data: {} });
    expectError(res, 404, 'endpoint_id');
  });

  it("another project's endpoint_id → 404", async () => {
    const other = await createEndpoint('stdwh', { name: 'foreign-target' });
    expectError(await t.api('POST', '/events', { endpoint_id: other.uid, event_type: 'x', data: {} }), 404, 'endpoint_id');
  });

  it('fanout to an owner with no endpoints → 404 naming owner_id', async () => {
    const res = await t.api('POST', '/events/fanout', { owner_id: 'owner-with-nothing', event_type: 'x', data: {} });
    expectError(res, 404, 'owner_id');
  });

  it.each([
    ['the reserved name Content-Length', 'Content-Length', '10'],
    ['the reserved name Host', 'Host', 'evil.example'],
    ['the reserved name User-Agent', 'User-Agent', 'me'],
    ['the reserved name X-Wharf-Anything', 'X-Wharf-Anything', 'x'],
    ['the reserved name x-wharf-event-id', 'x-wharf-event-id', 'x'],
    ['the reserved name content-type', 'content-type', 'text/plain'],
    ['a number', 'X-Count', 5],
    ['null', 'X-Null', null],
    ['an object', 'X-Obj', { a: 1 }],
    ['CRLF', 'X-Split', 'a\r\nInjected: 1'],
    ['LF', 'X-Lf', 'a\nInjected: 1'],
    ['an invalid name', 'Bad Name', 'x'],
  ])('custom_headers with %s → 400 naming custom_headers.<name>', async (_what, name, value) => {
    const res = await t.api('POST', '/events', {
      endpoint_id: target.uid,
      event_type: 'rejected.headers',
      data: {},
      custom_headers: { [name]: value },
    });
    expectError(res, 400, `custom_headers.${name}`);
  });

  it('custom_headers that is not an object → 400 naming custom_headers', async () => {
    const res = await t.api('POST', '/events', { endpoint_id: target.uid, event_type: 'rejected.headers', data: {}, custom_headers: ['x'] });
    expectError(res, 400, 'custom_headers');
  });

  it('stores no event for any rejected request, and forwards an allowed custom header', async () => {
    const list = await t.api('GET', '/events?event_type=rejected.headers');
    expectOk(list, 200);
    expect(list.body.data.content).toEqual([]);
    await sendEvent({ endpoint_id: target.uid, event_type: 'allowed.headers', data: {}, custom_headers: { 'X-Tenant': 'acme' } });
    await expect.poll(() => hits('/event-target').length, { timeout: 10_000 }).toBe(1);
    expect(hits('/event-target')[0]!.headers['x-tenant']).toBe('acme');
  });

  it('broadcast in a project with no endpoints → 201 with 0 deliveries', async () => {
    const res = await t.api('POST', '/events/broadcast', { event_type: 'nobody.listens', data: { a: 1 } }, 'empty');
    expectOk(res, 201);
    expect(res.body.data).toMatchObject({ event_type: 'nobody.listens', message_type: 'broadcast', deliveries: 0, data: { a: 1 } });
    const got = await t.api('GET', `/events/${res.body.data.uid}`, undefined, 'empty');
    expectOk(got, 200);
  });
});

describe('events: reading', () => {
  it('lists newest first, filters by event_type, and paginates', async () => {
    const ep = await createEndpoint('default', { name: 'lister', url: `${rx.url}/lister` });
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push((await sendEvent({ endpoint_id: ep.uid, event_type: 'list.walk', data: { i } })).uid);
    await sendEvent({ endpoint_id: ep.uid, event_type: 'list.other', data: {} });

    const all = await t.api('GET', '/events?event_type=list.walk');
    expectOk(all, 200);
    expect(all.body.data.content.map((e: any) => e.uid)).toEqual([...ids].reverse());
    expect(all.body.data.content.map((e: any) => e.data)).toEqual([{ i: 2 }, { i: 1 }, { i: 0 }]);
    expect(all.body.data.pagination).toMatchObject({ has_next_page: false, next_page_cursor: '' });

    const pages = await walk('/events?event_type=list.walk&per_page=2');
    expect(pages.map((p) => p.content.length)).toEqual([2, 1]);
    expect(pages.map((p) => p.pagination.has_next_page)).toEqual([true, false]);
    expect(pages.flatMap((p) => p.content.map((e: any) => e.uid))).toEqual([...ids].reverse());

    // Unfiltered, the newest event of the project comes first.
    const newest = await t.api('GET', '/events?per_page=1');
    expect(newest.body.data.content[0].event_type).toBe('list.other');
  });

  it('GET /events/{id} returns the event; an unknown or non-UUID id → 404', async () => {
    const ep = await createEndpoint('default', { name: 'getter', url: `${rx.url}/getter` });
    const ev = await sendEvent({ endpoint_id: ep.uid, event_type: 'get.one', data: { deep: { x: [1, 'two'] } }, idempotency_key: 'get-one' });
    const got = await t.api('GET', `/events/${ev.uid}`);
    expectOk(got, 200);
    expect(got.body.data).toMatchObject({ uid: ev.uid, event_type: 'get.one', endpoint_id: ep.uid, data: { deep: { x: [1, 'two'] } }, idempotency_key: 'get-one' });
    expectError(await t.api('GET', `/events/${randomUUID()}`), 404);
    expectError(await t.api('GET', '/events/not-a-uuid'), 404);
    // Another project's event is as unknown as a made-up one.
    expectError(await t.api('GET', `/events/${ev.uid}`, undefined, 'stdwh'), 404);
  });
});

describe('events: broadcast and subscriptions', () => {
  it('an endpoint subscribed to invoice.* takes invoice.paid but not order.created; the others take everything', async () => {
    const x = await createEndpoint('bcast', { name: 'X', url: `${rx.url}/bcast-x` });
    const y = await createEndpoint('bcast', { name: 'Y', url: `${rx.url}/bcast-y` });
    const z = await createEndpoint('bcast', { name: 'Z', url: `${rx.url}/bcast-z` });
    await t.app.pool.query(
      `INSERT INTO subscriptions (project_id, id, endpoint_id, event_types) VALUES ($1, $2, $3, $4)`,
      ['bcast', 'x-invoices', x.uid, ['invoice.*']],
    );

    const order = await sendEvent({ event_type: 'order.created', data: { order: 1 } }, 'bcast', '/events/broadcast');
    expect(order.deliveries).toBe(2);
    expect((await deliveriesOf(order.uid, 'bcast')).map((d) => d.endpoint_id).sort()).toEqual([y.uid, z.uid].sort());
    await expect.poll(() => [hits('/bcast-y').length, hits('/bcast-z').length], { timeout: 10_000 }).toEqual([1, 1]);
    expect(hits('/bcast-y')[0]!.headers['x-wharf-event-type']).toBe('order.created');
    // Y and Z got theirs, so X would have got one by now had it been routed.
    expect(hits('/bcast-x')).toHaveLength(0);

    const invoice = await sendEvent({ event_type: 'invoice.paid', data: { invoice: 2 } }, 'bcast', '/events/broadcast');
    expect(invoice.deliveries).toBe(3);
    await expect.poll(() => hits('/bcast-x').length, { timeout: 10_000 }).toBe(1);
    const got = hits('/bcast-x')[0]!;
    expect(got.headers['x-wharf-event-type']).toBe('invoice.paid');
    expect(JSON.parse(got.body.toString('utf8'))).toEqual({ invoice: 2 });
    await expect.poll(() => [hits('/bcast-y').length, hits('/bcast-z').length], { timeout: 10_000 }).toEqual([2, 2]);
    expect(hits('/bcast-x')).toHaveLength(1);
  });
});

describe('request bodies', () => {
  const path = '/api/v1/projects/default/endpoints';
  const auth = () => `Bearer ${t.keys.default}`;

  it(`a body over server.body_limit (${BODY_LIMIT} bytes) → 413`, async () => {
    const res = await t.request('POST', path, {
      authorization: auth(),
      body: { name: 'huge', url: `${rx.url}/ok`, description: 'x'.repeat(BODY_LIMIT) },
    });
    expectError(res, 413);
    expect(res.body.message).toContain(String(BODY_LIMIT));
    const ev = await t.request('POST', '/api/v1/projects/default/events', {
      authorization: auth(),
      body: { endpoint_id: 'x', event_type: 'big', data: 'y'.repeat(BODY_LIMIT * 2) },
    });
    expectError(ev, 413);
  });

  it('a body just under the limit is accepted (positive control)', async () => {
    const description = 'x'.repeat(1500);
    const res = await t.request('POST', path, { authorization: auth(), body: { name: 'big-ok', url: `${rx.url}/ok`, description } });
    expectOk(res, 201);
  });

  it('invalid JSON → 400', async () => {
    const res = await t.request('POST', path, { authorization: auth(), raw: '{"name": "x", "url": ', headers: { 'content-type': 'application/json' } });
    expectError(res, 400);
  });

  it('an empty JSON body → 400', async () => {
    const res = await t.request('POST', path, { authorization: auth(), raw: '', headers: { 'content-type': 'application/json' } });
    expectError(res, 400);
  });

  it('a form-encoded body → 415', async () => {
    const form = await t.request('POST', path, { authorization: auth(), raw: 'name=x', headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    expectError(form, 415);
    expect(form.body.message).toContain('application/json');
  });

  it('a text/plain body → 415 (not parsed as a string and then refused as "body")', async () => {
    const body = JSON.stringify({ name: 'x', url: `${rx.url}/ok` });
    const res = await t.request('POST', path, { authorization: auth(), raw: body, headers: { 'content-type': 'text/plain' } });
    expectError(res, 415);
    expect(res.body.message).toContain('application/json');
  });
});

describe('event deliveries', () => {
  let okEp: any;
  let pausedEp: any;
  let okDelivery: any;
  let pausedDelivery: any;
  let okEvent: any;

  // Set up in a test rather than beforeAll: expect.poll only runs inside a test. Later tests use it.
  it('records a success and a discarded delivery (setup for the filters below)', async () => {
    okEp = await createEndpoint('default', { name: 'd-ok', url: `${rx.url}/d-ok` });
    pausedEp = await createEndpoint('default', { name: 'd-paused', url: `${rx.url}/d-paused` });
    expect((await t.api('PUT', `/endpoints/${pausedEp.uid}/pause`)).body.data.status).toBe('paused');
    okEvent = await sendEvent({ endpoint_id: okEp.uid, event_type: 'd.filter', data: {} });
    const pausedEvent = await sendEvent({ endpoint_id: pausedEp.uid, event_type: 'd.filter', data: {} });
    [pausedDelivery] = await deliveriesOf(pausedEvent.uid);
    expect(pausedDelivery.status).toBe('Discarded');
    await expect.poll(async () => (await deliveriesOf(okEvent.uid))[0]?.status, { timeout: 10_000 }).toBe('Success');
    [okDelivery] = await deliveriesOf(okEvent.uid);
  });

  it.each(['bogus', 'success,bogus', 'Succeeded'])('status=%s → 400 naming status', async (s) => {
    expectError(await t.api('GET', `/eventdeliveries?status=${s}`), 400, 'status');
  });

  it("takes Convoy's spelling of statuses and its camelCase parameters", async () => {
    const convoy = await t.api('GET', `/eventdeliveries?status=Success&status=Discarded&eventId=${okEvent.uid}&perPage=5&prev_page_cursor=&next_page_cursor=&startDate=0001-01-01T00:00:00&endDate=0001-01-01T00:00:00`);
    expectOk(convoy, 200);
    expect(convoy.body.data.content.map((d: { uid: string }) => d.uid)).toEqual([okDelivery.uid]);
    const window = await t.api('GET', `/eventdeliveries?endpointId=${okDelivery.endpoint_id}&startDate=2000-01-01T00:00:00&endDate=2999-01-01T00:00:00`);
    expect(window.body.data.content.map((d: { uid: string }) => d.uid)).toEqual([okDelivery.uid]);
    const before = await t.api('GET', `/eventdeliveries?endpointId=${okDelivery.endpoint_id}&endDate=2000-01-01T00:00:00`);
    expect(before.body.data.content).toEqual([]);
    expectError(await t.api('GET', '/eventdeliveries?startDate=yesterday'), 400, 'start_date');
    expectError(await t.api('GET', '/eventdeliveries?prev_page_cursor=abc'), 400, 'prev_page_cursor');
  });

  it('filters by a comma list of statuses, and by repeated status parameters', async () => {
    for (const q of ['status=success,discarded', 'status=success&status=discarded']) {
      const res = await t.api('GET', `/eventdeliveries?${q}&per_page=100`);
      expectOk(res, 200);
      const content = res.body.data.content as any[];
      expect(content.every((d) => d.status === 'Success' || d.status === 'Discarded')).toBe(true);
      const ids = content.map((d) => d.uid);
      expect(ids).toContain(okDelivery.uid);
      expect(ids).toContain(pausedDelivery.uid);
    }
    const discarded = await t.api('GET', '/eventdeliveries?status=discarded&per_page=100');
    const ids = discarded.body.data.content.map((d: any) => d.uid);
    expect(ids).toContain(pausedDelivery.uid);
    expect(ids).not.toContain(okDelivery.uid);
  });

  it('filters by endpoint_id', async () => {
    await sendEvent({ endpoint_id: okEp.uid, event_type: 'd.second', data: {} });
    const res = await t.api('GET', `/eventdeliveries?endpoint_id=${okEp.uid}`);
    expectOk(res, 200);
    const content = res.body.data.content as any[];
    expect(content).toHaveLength(2);
    expect(content.every((d) => d.endpoint_id === okEp.uid)).toBe(true);
    const none = await t.api('GET', '/eventdeliveries?endpoint_id=no-such-endpoint');
    expectOk(none, 200);
    expect(none.body.data.content).toEqual([]);
  });

  it('filters by event_id; a non-UUID event_id → 400', async () => {
    const res = await t.api('GET', `/eventdeliveries?event_id=${okEvent.uid}`);
    expectOk(res, 200);
    expect(res.body.data.content.map((d: any) => d.uid)).toEqual([okDelivery.uid]);
    expect(res.body.data.content[0]).toMatchObject({ event_id: okEvent.uid, endpoint_id: okEp.uid, status: 'Success', attempts: 1 });
    expectError(await t.api('GET', '/eventdeliveries?event_id=not-a-uuid'), 400, 'event_id');
    const none = await t.api('GET', `/eventdeliveries?event_id=${randomUUID()}`);
    expectOk(none, 200);
    expect(none.body.data.content).toEqual([]);
  });

  it('GET one delivery; unknown or non-UUID → 404', async () => {
    const got = await t.api('GET', `/eventdeliveries/${okDelivery.uid}`);
    expectOk(got, 200);
    expect(got.body.data).toMatchObject({ uid: okDelivery.uid, status: 'Success' });
    expectError(await t.api('GET', `/eventdeliveries/${randomUUID()}`), 404);
    expectError(await t.api('GET', '/eventdeliveries/nope'), 404);
    expectError(await t.api('GET', `/eventdeliveries/${okDelivery.uid}`, undefined, 'stdwh'), 404);
  });

  it('deliveryattempts of an unknown delivery → 404', async () => {
    expectError(await t.api('GET', `/eventdeliveries/${randomUUID()}/deliveryattempts`), 404);
    expectError(await t.api('GET', '/eventdeliveries/nope/deliveryattempts'), 404);
    const known = await t.api('GET', `/eventdeliveries/${okDelivery.uid}/deliveryattempts`);
    expectOk(known, 200);
    expect(known.body.data).toHaveLength(1);
    expect(known.body.data[0]).toMatchObject({ attempt: 1, status_code: 200 });
  });

  it("an attempt shows every request header sent, though its row keeps only those its delivery does not determine", async () => {
    const [got] = (await t.api('GET', `/eventdeliveries/${okDelivery.uid}/deliveryattempts`)).body.data;
    const sent = hits('/d-ok').find((r) => r.headers['x-wharf-delivery-id'] === okDelivery.uid)!;
    const shown = got.request_http_header as Record<string, string>;
    expect(shown).toMatchObject({ 'x-wharf-event-id': okEvent.uid, 'x-wharf-delivery-id': okDelivery.uid, 'x-wharf-event-type': 'd.filter' });
    // Every header shown is one the receiver got, with its value.
    for (const [k, v] of Object.entries(shown)) expect([k, sent.headers[k.toLowerCase()]]).toEqual([k, v]);
    expect(got.request_headers).toEqual(shown);
    const { rows } = await t.app.pool.query<{ h: Record<string, string> }>('SELECT request_headers AS h FROM attempts WHERE delivery_id = $1', [okDelivery.uid]);
    expect(Object.keys(rows[0]!.h).filter((k) => k.startsWith('x-wharf-'))).toEqual([]);
    expect(rows[0]!.h['user-agent']).toBe(shown['user-agent']);
    // A row written before (the three kept) reads the same.
    // (In a row of its own, or in the delivery's when that holds its first attempt: migration 022.)
    const rewritten =
      ((await t.app.pool.query(`UPDATE delivery_attempts a SET request_headers = ${REQUEST_HEADERS_SQL} FROM deliveries d WHERE d.id = a.delivery_id AND a.delivery_id = $1`, [okDelivery.uid])).rowCount ?? 0) +
      ((await t.app.pool.query(
        `UPDATE deliveries d SET first_request_headers = ${REQUEST_HEADERS_SQL.replace('a.request_headers', 'd.first_request_headers')} WHERE d.id = $1 AND d.first_attempted_at IS NOT NULL`,
        [okDelivery.uid],
      )).rowCount ?? 0);
    expect(rewritten).toBe(1);
    expect((await t.app.pool.query<{ h: Record<string, string> }>('SELECT request_headers AS h FROM attempts WHERE delivery_id = $1', [okDelivery.uid])).rows[0]!.h['x-wharf-delivery-id']).toBe(okDelivery.uid);
    expect((await t.api('GET', `/eventdeliveries/${okDelivery.uid}/deliveryattempts`)).body.data[0].request_http_header).toEqual(shown);
  });

  it('resend of a delivery waiting to retry → 409, and it stays in retry', async () => {
    const ep = await createEndpoint('default', { name: 'd-fail', url: `${rx.url}/fail-d`, skip_ping_validation: true });
    const ev = await sendEvent({ endpoint_id: ep.uid, event_type: 'd.fail', data: {} });
    const [d] = await deliveriesOf(ev.uid);
    await expect.poll(async () => (await t.api('GET', `/eventdeliveries/${d.uid}`)).body.data.status, { timeout: 10_000 }).toBe('Retry');
    const res = await t.api('PUT', `/eventdeliveries/${d.uid}/resend`);
    expectError(res, 409);
    expect(res.body.data.code).toBe('WHARF_ERR_CONFLICT');
    const after = await t.api('GET', `/eventdeliveries/${d.uid}`);
    expect(after.body.data).toMatchObject({ status: 'Retry', attempts: 1, last_status_code: 500 });
    expect(hits('/fail-d')).toHaveLength(1);
  });

  it('resend of a scheduled delivery (its attempt in flight) → 409', async () => {
    const ep = await createEndpoint('default', { name: 'd-slow', url: `${rx.url}/slow-d` });
    const ev = await sendEvent({ endpoint_id: ep.uid, event_type: 'd.slow', data: {} });
    const [d] = await deliveriesOf(ev.uid);
    await expect.poll(() => hits('/slow-d').length, { timeout: 10_000 }).toBe(1);
    const now = await t.api('GET', `/eventdeliveries/${d.uid}`);
    expect(now.body.data.status).toBe('Scheduled');
    expectError(await t.api('PUT', `/eventdeliveries/${d.uid}/resend`), 409);
  });

  it('resend of an unknown delivery → 404; of a delivery at rest → 200', async () => {
    expectError(await t.api('PUT', `/eventdeliveries/${randomUUID()}/resend`), 404);
    const res = await t.api('PUT', `/eventdeliveries/${okDelivery.uid}/resend`);
    expectOk(res, 200);
    expect(res.body.data).toMatchObject({ uid: okDelivery.uid, status: 'Scheduled' });
    await expect.poll(() => hits('/d-ok').length, { timeout: 10_000 }).toBe(2);
  });
});

describe('health and unknown routes', () => {
  it('/healthz → 200', async () => {
    const res = await t.request('GET', '/healthz');
    expectOk(res, 200);
    expect(res.body.data).toBeNull();
  });

  it('/readyz → 200 with its details for the operator only; /metrics for the operator only', async () => {
    const res = await t.operator('GET', '/readyz');
    expectOk(res, 200);
    expect(res.body.data.database).toBe('ok');
    // Anyone else learns the status and nothing more (issue 12: broker hosts and error texts).
    for (const authorization of [null, 'Bearer wrong', `Bearer ${t.apiKey}`]) {
      const anon = await t.request('GET', '/readyz', { authorization });
      expectOk(anon, 200);
      expect(anon.body).toEqual({ status: true, message: 'ready', data: null });
      const metrics = await t.request('GET', '/metrics', { authorization });
      expectError(metrics, 401);
      expect(metrics.text).not.toContain('wharf_');
    }
    const metrics = await t.operator('GET', '/metrics');
    expect(metrics.status).toBe(200);
    expect(metrics.text).toContain('wharf_');
  });

  it('every answer carries X-Content-Type-Options: nosniff', async () => {
    const answers = await Promise.all([
      t.request('GET', '/healthz'),
      t.request('GET', '/readyz'),
      t.request('GET', '/metrics'),
      t.request('GET', '/no/such/route'),
      t.api('GET', '/endpoints'),
      t.request('GET', '/api/v1/projects/default/endpoints'),
      t.request('POST', '/ingest/no-such-mask-id-0123456789', { body: {} }),
      t.request('GET', '/portal/'),
    ]);
    for (const a of answers) expect(a.headers.get('x-content-type-options'), `${a.status} ${a.text.slice(0, 80)}`).toBe('nosniff');
  });

  it('an unknown route → 404 envelope', async () => {
    const res = await t.request('GET', '/no/such/route');
    expectError(res, 404);
    expect(res.body.data.code).toBe('WHARF_ERR_NO_ROUTE');
    const inApi = await t.api('GET', '/no-such-thing');
    expectError(inApi, 404);
    const wrongMethod = await t.api('PATCH', '/endpoints');
    expectError(wrongMethod, 404);
  });
});
