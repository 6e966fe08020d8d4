/**
 * HTTP ingest sources end to end: provider-style webhooks posted to an ingest URL are verified,
 * stored once, and routed by subscriptions (event types and filters) to the endpoints that want
 * them, and only those; bad requests get the right status and store nothing.
 */
import { createHmac } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { Webhook } from 'standardwebhooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../harness/app.ts';
import { startReceiver, type Receiver } from '../harness/receiver.ts';
import { eventually } from './connectors/conformance.ts';

const GITHUB_SECRET = 'gh-secret-not-for-logs';
const SW_SECRET = `whsec_${Buffer.from('standard-webhooks-test-key-32byt').toString('base64')}`;

const githubSignature = (body: string, secret = GITHUB_SECRET): string =>
  `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;

describe('HTTP ingest sources', () => {
  let t: TestApp;
  let rx: Receiver;
  const urls: Record<string, string> = {};

  beforeAll(async () => {
    rx = await startReceiver();
    t = await startTestApp({
      projects: [
        {
          id: 'inbox',
          type: 'incoming',
          endpoints: [
            { id: 'wharf-pushes', url: `${rx.url}/wharf-pushes` },
            { id: 'all-issues', url: `${rx.url}/all-issues` },
            { id: 'unsubscribed', url: `${rx.url}/unsubscribed` },
          ],
          sources: [
            {
              name: 'github',
              type: 'http',
              max_body_bytes: 4096,
              forward_headers: ['x-github-event'],
              http: {
                verifier: { type: 'github', secret: GITHUB_SECRET },
                event_type_location: { header: 'X-GitHub-Event' },
                idempotency_keys: [{ header: 'X-GitHub-Delivery' }],
              },
            },
            {
              name: 'partner',
              type: 'http',
              event_type: 'partner.event',
              http: {
                verifier: { type: 'basic_auth', username: 'partner', password: 'pw-not-for-logs-ever' },
                idempotency_keys: [{ body: 'id' }],
                custom_response: { body: 'thanks', content_type: 'text/plain' },
              },
            },
            {
              name: 'stdhooks',
              type: 'http',
              http: { verifier: { type: 'standard_webhooks', secret: SW_SECRET }, event_type_location: { body: 'type' } },
            },
          ],
          subscriptions: [
            {
              id: 'wharf-pushes',
              endpoint_id: 'wharf-pushes',
              source_id: 'github',
              filter_config: { event_types: ['push'], filter: { body: { 'repository.name': 'wharf', commits: { $exist: true } } } },
            },
            { id: 'all-issues', endpoint_id: 'all-issues', source_id: 'github', filter_config: { event_types: ['issues'] } },
            // Takes nothing from github: only partner events that are urgent.
            {
              id: 'unsubscribed',
              endpoint_id: 'unsubscribed',
              source_id: 'partner',
              filter_config: { filter: { body: { priority: { $in: ['urgent'] } }, headers: { 'x-partner-region': 'eu' } } },
            },
          ],
        },
      ],
    });
    for (const name of ['github', 'partner', 'stdhooks']) {
      const res = await t.api('GET', `/sources/${name}`, undefined, 'inbox');
      expect(res.status, res.text).toBe(200);
      urls[name] = new URL(res.body.data.url).pathname;
    }
  });
  afterAll(async () => {
    await t?.stop();
    await rx?.close();
  });

  const events = async (sourceId: string) =>
    (await t.app.pool.query<{ id: string; event_type: string; data: string; headers: Record<string, string> }>(
      'SELECT id, event_type, data, headers FROM events WHERE source_id = $1 ORDER BY id',
      [sourceId],
    )).rows;
  /** The endpoints an event has deliveries for: written in the same transaction, before the 200. */
  const deliveredTo = async (eventId: string) =>
    (await t.app.pool.query<{ endpoint_id: string }>('SELECT endpoint_id FROM deliveries WHERE event_id = $1 ORDER BY endpoint_id', [eventId])).rows.map(
      (r) => r.endpoint_id,
    );
  /**
   * A request through node:http rather than fetch: a header given as an array is sent once per
   * value, and the body goes out chunked, without content-length.
   */
  const rawPost = (path: string, headers: Record<string, string | string[]>, body: string) =>
    new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = httpRequest(`${t.url}${path}`, { method: 'POST', headers }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (text += chunk));
        res.on('end', () => resolve({ status: res.statusCode!, text }));
      });
      req.on('error', reject);
      req.write(body); // written before end(), so it goes out chunked, with no content-length
      req.end();
    });
  const github = (event: string, delivery: string, body: string, signature = githubSignature(body)) =>
    t.request('POST', urls.github!, {
      raw: body,
      headers: { 'content-type': 'application/json', 'x-github-event': event, 'x-github-delivery': delivery, 'x-hub-signature-256': signature },
    });
  const arrivals = (path: string) => rx.requests.filter((r) => r.path === path);

  it('shows each source its ingest URL, and keeps the verifier secret out of answers', async () => {
    const res = await t.api('GET', '/sources/github', undefined, 'inbox');
    expect(res.body.data.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/ingest\/[A-Za-z0-9_-]{16,64}$/);
    expect(res.body.data.http.verifier).toEqual({ type: 'github', secret: '********' });
    expect(res.text).not.toContain(GITHUB_SECRET);
  });

  it('delivers a GitHub push to the subscribed endpoint whose filter matches, and to no other', async () => {
    const push = JSON.stringify({ ref: 'refs/heads/main', repository: { name: 'wharf' }, commits: [{ id: 'c1' }] });
    const res = await github('push', 'd-1', push);
    expect(res.status, res.text).toBe(200);
    expect(res.body.data.duplicate).toBe(false);
    await eventually(async () => arrivals('/wharf-pushes').length, (n) => n === 1, 15_000, 'the push delivery');
    const [hook] = arrivals('/wharf-pushes');
    expect(hook!.body.toString()).toBe(push); // byte for byte
    expect(hook!.headers['x-github-event']).toBe('push'); // forwarded as the source says

    const other = JSON.stringify({ ref: 'refs/heads/main', repository: { name: 'other' }, commits: [] });
    const otherRes = await github('push', 'd-2', other);
    expect(otherRes.status).toBe(200);
    const issue = JSON.stringify({ action: 'opened', issue: { number: 7 }, repository: { name: 'wharf' } });
    const issueRes = await github('issues', 'd-3', issue);
    expect(issueRes.status).toBe(200);
    // Which endpoints each event goes to, exactly: the other repository's push matched no filter.
    expect(await deliveredTo(res.body.data.event_id)).toEqual(['wharf-pushes']);
    expect(await deliveredTo(otherRes.body.data.event_id)).toEqual([]);
    expect(await deliveredTo(issueRes.body.data.event_id)).toEqual(['all-issues']);
    await eventually(async () => arrivals('/all-issues').length, (n) => n === 1, 15_000, 'the issues delivery');
    expect((await events('github')).map((e) => e.event_type)).toEqual(['push', 'push', 'issues']);
  });

  it('stores a provider retry with the same delivery id once', async () => {
    const body = JSON.stringify({ action: 'closed', issue: { number: 8 } });
    const first = await github('issues', 'retry-1', body);
    const again = await github('issues', 'retry-1', body);
    expect(first.body.data.duplicate).toBe(false);
    expect(again.status).toBe(200);
    expect(again.body.data).toEqual({ event_id: first.body.data.event_id, duplicate: true });
    const rows = (await events('github')).filter((e) => e.data === body);
    expect(rows).toHaveLength(1);
  });

  it('answers bad requests with the right status and stores nothing', async () => {
    const before = (await events('github')).length;
    const body = JSON.stringify({ repository: { name: 'wharf' } });
    const cases: [Promise<{ status: number; text: string }>, number][] = [
      [github('push', 'bad-1', body, githubSignature(body, 'wrong-secret')), 401],
      [github('push', 'bad-2', `${body} `, githubSignature(body)), 401], // tampered after signing
      [t.request('POST', urls.github!, { raw: body, headers: { 'content-type': 'application/json', 'x-github-event': 'push' } }), 401],
      [github('push', 'bad-3', 'not json {'), 400],
      [github('push', 'bad-4', JSON.stringify({ pad: 'x'.repeat(5000) })), 413],
      [t.request('POST', '/ingest/no-such-source-0123456789', { raw: body, headers: { 'content-type': 'application/json' } }), 404],
      [t.request('GET', urls.github!), 405],
    ];
    for (const [pending, status] of cases) {
      const res = await pending;
      expect(res.status, res.text).toBe(status);
      expect(res.text).not.toContain(GITHUB_SECRET);
    }
    expect((await events('github')).length).toBe(before);

    // Refused attempts are counted and listed on the source, and in the metrics.
    const source = await t.api('GET', '/sources/github', undefined, 'inbox');
    expect(source.body.data.status.unverified).toBe(3);
    const reasons = source.body.data.status.recent_failures.map((f: { reason: string }) => f.reason);
    expect(reasons[0]).toContain('max_body_bytes (4096)'); // newest first
    expect(reasons).toContain('X-Hub-Signature-256 header is missing');
    expect(reasons).toContain('signature does not match');
    expect(source.body.data.status.recent_failures.map((f: { reason: string }) => f.reason).join()).not.toContain(GITHUB_SECRET);
    const metrics = (await t.operator('GET', '/metrics')).text;
    expect(metrics).toMatch(/wharf_ingest_requests_total\{project="inbox",source="github",outcome="unverified"\} 3/);
  });

  it('basic auth: a custom answer, an idempotency key from the body, a header filter, and no credentials stored', async () => {
    const auth = `Basic ${Buffer.from('partner:pw-not-for-logs-ever').toString('base64')}`;
    const post = (body: unknown, headers: Record<string, string> = {}) =>
      t.request('POST', urls.partner!, { raw: JSON.stringify(body), headers: { 'content-type': 'application/json', authorization: auth, ...headers } });
    const res = await post({ id: 'p-1', priority: 'urgent' }, { 'x-partner-region': 'eu' });
    expect(res.status).toBe(200);
    expect(res.text).toBe('thanks');
    expect(res.headers.get('content-type')).toContain('text/plain');
    expect((await post({ id: 'p-1', priority: 'urgent' }, { 'x-partner-region': 'eu' })).status).toBe(200); // same id: duplicate
    expect((await post({ id: 'p-2', priority: 'urgent' }, { 'x-partner-region': 'us' })).status).toBe(200); // header filter fails
    expect((await post({ id: 'p-3', priority: 'low' }, { 'x-partner-region': 'eu' })).status).toBe(200); // body filter fails
    expect((await t.request('POST', urls.partner!, { raw: '{}', headers: { 'content-type': 'application/json', authorization: 'Basic bm9wZTpub3Bl' } })).status).toBe(401);

    const rows = await events('partner');
    expect(rows.map((e) => JSON.parse(e.data).id)).toEqual(['p-1', 'p-2', 'p-3']);
    expect(rows.every((e) => e.event_type === 'partner.event' && e.headers.authorization === undefined)).toBe(true);
    // The request's headers are there to inspect on the event, without the credentials.
    const shown = await t.api('GET', `/events/${rows[0]!.id}`, undefined, 'inbox');
    expect(shown.status, shown.text).toBe(200);
    expect(shown.body.data.headers).toMatchObject({ 'content-type': 'application/json', 'x-partner-region': 'eu' });
    expect(shown.body.data.headers.authorization).toBeUndefined();
    expect(shown.text).not.toContain(auth.slice(6));
    // Only the urgent eu request passes the subscription's body and header filters.
    expect(await Promise.all(rows.map((e) => deliveredTo(e.id)))).toEqual([['unsubscribed'], [], []]);
    await eventually(async () => arrivals('/unsubscribed').length, (n) => n === 1, 15_000, 'the urgent eu delivery');
    expect(arrivals('/unsubscribed').map((r) => JSON.parse(r.body.toString()).id)).toEqual(['p-1']);
  });

  it('Standard Webhooks: a request signed by the standardwebhooks library is stored with its type from the body', async () => {
    const payload = JSON.stringify({ type: 'invoice.paid', amount: 42 });
    const msgId = 'msg_2bYkZ3';
    const now = new Date();
    const signature = new Webhook(SW_SECRET).sign(msgId, now, payload);
    const headers = { 'content-type': 'application/json', 'webhook-id': msgId, 'webhook-timestamp': String(Math.floor(now.getTime() / 1000)), 'webhook-signature': signature };
    expect((await t.request('POST', urls.stdhooks!, { raw: payload, headers })).status).toBe(200);
    expect((await t.request('POST', urls.stdhooks!, { raw: payload.replace('42', '43'), headers })).status).toBe(401);
    // A replay within the tolerance (same webhook-id, still validly signed) is stored once: the
    // source names no idempotency_keys, so webhook-id is the key.
    const replay = await t.request('POST', urls.stdhooks!, { raw: payload, headers });
    expect(replay.status).toBe(200);
    expect(replay.body.data.duplicate).toBe(true);
    expect((await events('stdhooks')).map((e) => e.event_type)).toEqual(['invoice.paid']);
  });

  it('refuses a signature or credential header given twice, which Node would merge or drop', async () => {
    // Node joins repeated webhook-signature headers into one ("v1,a, v1,b") and keeps only the first
    // Authorization; the verifier must see both copies, or a sender could smuggle a second one in.
    const payload = JSON.stringify({ type: 'invoice.twice' });
    const msgId = 'msg_twice';
    const now = new Date();
    const signature = new Webhook(SW_SECRET).sign(msgId, now, payload);
    const base = { 'content-type': 'application/json', 'webhook-id': msgId, 'webhook-timestamp': String(Math.floor(now.getTime() / 1000)) };
    const twice = await rawPost(urls.stdhooks!, { ...base, 'webhook-signature': [`v1,${Buffer.alloc(32).toString('base64')}`, signature] }, payload);
    expect(twice.status, twice.text).toBe(401);
    expect((await rawPost(urls.stdhooks!, { ...base, 'webhook-signature': signature }, payload)).status).toBe(200); // once is fine

    const auth = `Basic ${Buffer.from('partner:pw-not-for-logs-ever').toString('base64')}`;
    const partner = (authorization: string | string[]) =>
      rawPost(urls.partner!, { 'content-type': 'application/json', authorization }, JSON.stringify({ id: 'p-twice' }));
    expect((await partner([auth, 'Basic bm9wZTpub3Bl'])).status).toBe(401);

    const source = await t.api('GET', '/sources/stdhooks', undefined, 'inbox');
    expect(source.body.data.status.recent_failures[0].reason).toBe('webhook-signature header is given more than once');
    expect((await events('stdhooks')).map((e) => e.event_type)).toEqual(['invoice.paid', 'invoice.twice']);
    expect((await events('partner')).some((e) => JSON.parse(e.data).id === 'p-twice')).toBe(false);
  });

  it('Standard Webhooks under Svix\'s header names: verified, and a replay is stored once', async () => {
    const payload = JSON.stringify({ type: 'invoice.svix', amount: 7 });
    const msgId = 'msg_svix_2bYkZ3';
    const now = new Date();
    const signature = new Webhook(SW_SECRET).sign(msgId, now, payload);
    const svix = { 'content-type': 'application/json', 'svix-id': msgId, 'svix-timestamp': String(Math.floor(now.getTime() / 1000)), 'svix-signature': signature };
    const first = await t.request('POST', urls.stdhooks!, { raw: payload, headers: svix });
    expect(first.status, first.text).toBe(200);
    expect(first.body.data.duplicate).toBe(false);
    const replay = await t.request('POST', urls.stdhooks!, { raw: payload, headers: svix });
    expect(replay.status, replay.text).toBe(200);
    expect(replay.body.data.duplicate).toBe(true);
    // An unsigned id added beside the signed one changes nothing: the signed names are read.
    const withOther = await t.request('POST', urls.stdhooks!, { raw: payload, headers: { ...svix, 'webhook-id': 'msg_other' } });
    expect(withOther.status, withOther.text).toBe(401);
    const unbranded = { 'content-type': 'application/json', 'webhook-id': msgId, 'webhook-timestamp': svix['svix-timestamp'], 'webhook-signature': signature };
    const again = await t.request('POST', urls.stdhooks!, { raw: payload, headers: { ...unbranded, 'svix-id': 'msg_other' } });
    expect(again.status, again.text).toBe(200);
    expect(again.body.data.duplicate).toBe(true);
    expect((await events('stdhooks')).filter((e) => e.event_type === 'invoice.svix')).toHaveLength(1);
  });

  it('counts a body cut off while streaming like one whose declared size is too large', async () => {
    const before = (await t.api('GET', '/sources/github', undefined, 'inbox')).body.data.status;
    const body = JSON.stringify({ pad: 'x'.repeat(5000) });
    // No content-length: node:http sends the body chunked, so only the streamed count can catch it.
    const res = await rawPost(urls.github!, { 'content-type': 'application/json', 'x-github-event': 'push', 'x-hub-signature-256': githubSignature(body) }, body);
    expect(res.status, res.text).toBe(413);
    const after = (await t.api('GET', '/sources/github', undefined, 'inbox')).body.data.status;
    expect(after.refused).toBe(before.refused + 1);
    expect(after.recent_failures[0].reason).toContain('max_body_bytes (4096)');
    const metrics = (await t.operator('GET', '/metrics')).text;
    expect(metrics).toMatch(new RegExp(`wharf_ingest_requests_total\\{project="inbox",source="github",outcome="refused"\\} ${after.refused}\\b`));
  });
});

describe('subscriptions API', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({ projects: [{ id: 'default', endpoints: [{ id: 'ep', url: 'http://127.0.0.1:9/' }] }] });
  });
  afterAll(async () => t?.stop());

  it('creates, lists, updates and deletes a subscription in Convoy\'s shape', async () => {
    const created = await t.api('POST', '/subscriptions', {
      name: 'orders',
      endpoint_id: 'ep',
      filter_config: { event_types: ['order.created', 'order.*'], filter: { body: { total: { $gte: 100 } } } },
    });
    expect(created.status, created.text).toBe(201);
    const id = created.body.data.uid;
    expect(created.body.data).toMatchObject({
      name: 'orders',
      endpoint_id: 'ep',
      source_id: null,
      filter_config: { event_types: ['order.created', 'order.*'], filter: { body: { total: { $gte: 100 } } } },
    });
    expect((await t.api('GET', '/subscriptions')).body.data.content.map((s: { uid: string }) => s.uid)).toEqual([id]);
    const updated = await t.api('PUT', `/subscriptions/${id}`, { filter_config: { event_types: ['*'] } });
    expect(updated.status, updated.text).toBe(202);
    expect(updated.body.data.filter_config).toEqual({ event_types: ['*'], filter: { body: { total: { $gte: 100 } } } });
    expect((await t.api('DELETE', `/subscriptions/${id}`)).status).toBe(200);
    expect((await t.api('GET', `/subscriptions/${id}`)).status).toBe(404);
  });

  it('routes API events through the filter', async () => {
    const sub = await t.api('POST', '/subscriptions', { endpoint_id: 'ep', filter_config: { filter: { body: { total: { $gte: 100 } } } } });
    expect(sub.status).toBe(201);
    const big = await t.api('POST', '/events', { endpoint_id: 'ep', event_type: 'order.created', data: { total: 150 } });
    const small = await t.api('POST', '/events', { endpoint_id: 'ep', event_type: 'order.created', data: { total: 50 } });
    expect([big.body.data.deliveries, small.body.data.deliveries]).toEqual([1, 0]);
    await t.api('DELETE', `/subscriptions/${sub.body.data.uid}`);
  });

  it('refuses a bad subscription with the field that is wrong', async () => {
    const cases: [unknown, string][] = [
      [{}, 'endpoint_id: is required'],
      [{ endpoint_id: 'nope' }, 'endpoint_id: endpoint "nope" does not exist'],
      [{ endpoint_id: 'ep', source_id: 'nope' }, 'source_id: source "nope" does not exist'],
      [{ endpoint_id: 'ep', filter_config: { event_types: [] } }, 'filter_config.event_types: must name at least one event type'],
      [{ endpoint_id: 'ep', filter_config: { filter: { body: { a: { $near: 1 } } } } }, 'filter_config.filter.body'],
      [{ endpoint_id: 'ep', colour: 'red' }, 'colour: unknown field'],
    ];
    for (const [body, message] of cases) {
      const res = await t.api('POST', '/subscriptions', body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(res.body.message).toContain(message);
    }
  });

  it('an HTTP source changed or deleted through the API takes effect on its URL at once', async () => {
    const created = await t.api('POST', '/sources', {
      name: 'temp',
      type: 'http',
      event_type: 'temp.event',
      http: { verifier: { type: 'api_key', header_name: 'X-Key', header_value: 'first-key-0123456789' } },
    });
    expect(created.status, created.text).toBe(201);
    const path = new URL(created.body.data.url).pathname;
    const post = (key: string) => t.request('POST', path, { raw: '{}', headers: { 'content-type': 'application/json', 'x-key': key } });
    expect((await post('first-key-0123456789')).status).toBe(200);
    const { uid: _u, status: _s, url: _url, project_id: _p, from_config: _f, created_at: _c, updated_at: _up, ...definition } = created.body.data;
    const changed = await t.api('PUT', `/sources/${created.body.data.uid}`, {
      ...definition,
      http: { ...definition.http, verifier: { type: 'api_key', header_name: 'X-Key', header_value: 'second-key-0123456789' } },
    });
    expect(changed.status, changed.text).toBe(202);
    expect(new URL(changed.body.data.url).pathname).toBe(path); // the URL outlives edits
    expect((await post('first-key-0123456789')).status).toBe(401);
    expect((await post('second-key-0123456789')).status).toBe(200);
    expect((await t.api('DELETE', `/sources/${created.body.data.uid}`)).status).toBe(200);
    expect((await post('second-key-0123456789')).status).toBe(404);
  });

  it('test_filter evaluates a filter against a sample payload', async () => {
    const request = { body: { person: { age: 30, tags: ['vip'] } }, headers: { 'X-Region': 'eu' } };
    const yes = await t.api('POST', '/subscriptions/test_filter', {
      request,
      schema: { body: { 'person.age': { $gt: 18 }, 'person.tags': { $in: ['vip'] } }, headers: { 'x-region': 'eu' } },
    });
    expect(yes.status, yes.text).toBe(200);
    expect(yes.body.data).toBe(true);
    const no = await t.api('POST', '/subscriptions/test_filter', { request, filter: { body: { $or: [{ 'person.age': { $lt: 18 } }, { vip: true }] } } });
    expect(no.body.data).toBe(false);
    const bad = await t.api('POST', '/subscriptions/test_filter', { request, filter: { body: { a: { $regex: '(' }, 'b: c': { $in: 1 } } } });
    expect(bad.status).toBe(400);
    expect(bad.body.message).toMatch(/^filter\.body\.a\.\$regex: is not a pattern RE2 accepts .* \(and 1 more: filter\.body\.b: c\.\$in\)$/);
    const schema = await t.api('POST', '/subscriptions/test_filter', { request, schema: { body: { a: { $in: 1 } } } });
    expect(schema.body.message).toBe('schema.body.a.$in: must be an array');
    // Headers are seen as routing sees them: a repeated header's values joined.
    const repeated = { body: {}, headers: { 'X-Tag': ['a', 'b'] } };
    expect((await t.api('POST', '/subscriptions/test_filter', { request: repeated, filter: { headers: { 'x-tag': 'a, b' } } })).body.data).toBe(true);
  });

  it('of two creates racing on one id, one wins and the other gets 409', async () => {
    const create = (name: string) => t.api('POST', '/subscriptions', { id: 'raced', name, endpoint_id: 'ep' });
    const results = await Promise.all([create('first'), create('second'), create('third')]);
    expect(results.map((r) => r.status).sort()).toEqual([201, 409, 409]);
    const winner = results.find((r) => r.status === 201)!.body.data.name;
    expect((await t.api('GET', '/subscriptions/raced')).body.data.name).toBe(winner); // not overwritten
    expect(results.find((r) => r.status === 409)!.body.message).toContain('subscription "raced" already exists');
    await t.api('DELETE', '/subscriptions/raced');
  });
});
