/**
 * Whatever a tenant sends is either refused at the door, naming what was wrong, or stored so that
 * it can be delivered and read back (issue 12, items 5, 6 and the NUL item): event types that
 * could not go out in a header, keys with control characters, and JSON deeper than
 * `ingest.max_json_depth` are refused by REST and HTTP ingest alike; what is stored reads back.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../harness/app.ts';
import { MAX_LOOP_BLOCK_MS, watchEventLoop } from '../harness/event-loop.ts';
import { startReceiver, type Receiver } from '../harness/receiver.ts';
import { uuidv7 } from '../../src/core/ids.ts';

const SECRET = 'an-ingest-password-long-enough';
const basic = `Basic ${Buffer.from(`provider:${SECRET}`).toString('base64')}`;
const deepText = (levels: number, leaf = '1'): string => '{"a":'.repeat(levels) + leaf + '}'.repeat(levels);

describe('ingress validation', () => {
  let t: TestApp;
  let rx: Receiver;
  let ingestPath = '';
  beforeAll(async () => {
    rx = await startReceiver();
    t = await startTestApp({
      ingest: { max_json_depth: 32 },
      projects: [
        {
          id: 'default',
          endpoints: [{ id: 'ep', url: `${rx.url}/hook` }],
          sources: [
            {
              id: 'hooks',
              name: 'hooks',
              type: 'http',
              http: { verifier: { type: 'basic_auth', username: 'provider', password: SECRET }, event_type_location: { body: 'type' } },
            },
          ],
        },
      ],
    });
    ingestPath = new URL((await t.api('GET', '/sources/hooks')).body.data.url).pathname;
  });
  afterAll(async () => {
    await t?.stop();
    await rx?.close();
  });

  const post = (body: unknown) => t.api('POST', '/events', body);
  const raw = (text: string) =>
    t.request('POST', '/api/v1/projects/default/events', { raw: text, headers: { 'content-type': 'application/json', authorization: `Bearer ${t.apiKey}` } });
  const ingest = (text: string) => t.request('POST', ingestPath, { raw: text, headers: { 'content-type': 'application/json', authorization: basic } });
  const eventCount = async () => Number((await t.app.pool.query('SELECT count(*) FROM events')).rows[0].count);

  it.each([
    ['a line break', 'a\r\nx-injected: 1', 'must not contain control characters'],
    ['NUL', 'order\u0000created', 'must not contain control characters'],
    ['a tab', 'order\tcreated', 'must not contain control characters'],
    ['non-ASCII', 'commande.créée', 'must be printable ASCII'],
    ['an emoji', 'order.📦', 'must be printable ASCII'],
    ['201 characters', 'x'.repeat(201), 'must be at most 200 characters'],
    ['spaces around', ' order.created', 'must not start or end with a space'],
  ])('refuses an event type with %s at REST and HTTP ingest, storing nothing', async (_name, type, message) => {
    const before = await eventCount();
    const rest = await post({ endpoint_id: 'ep', event_type: type, data: {} });
    expect(rest.status, rest.text).toBe(400);
    expect(rest.body.data.field).toBe('event_type');
    expect(rest.body.message).toContain(message);
    const provider = await ingest(JSON.stringify({ type, id: 1 }));
    expect(provider.status, provider.text).toBe(400);
    expect(provider.body.message).toMatch(/^body path type: /);
    expect(await eventCount()).toBe(before);
  });

  it('refuses control characters in keys and ids; an empty idempotency_key means none', async () => {
    const key = await post({ endpoint_id: 'ep', event_type: 'ok', data: {}, idempotency_key: 'k\u0000' });
    expect(key.status).toBe(400);
    expect(key.body.data.field).toBe('idempotency_key');
    const endpoint = await post({ endpoint_id: 'ep\u0000', event_type: 'ok', data: {} });
    expect(endpoint.status).toBe(400);
    expect(endpoint.body.data.field).toBe('endpoint_id');
    const owner = await t.api('POST', '/events/fanout', { owner_id: 'o\r\n', event_type: 'ok', data: {} });
    expect(owner.status).toBe(400);
    expect(owner.body.data.field).toBe('owner_id');
    const empty = await post({ endpoint_id: 'ep', event_type: 'ok', data: {}, idempotency_key: '' });
    expect(empty.status, empty.text).toBe(201);
    expect(empty.body.data.idempotency_key).toBeNull();
  });

  it('refuses JSON deeper than ingest.max_json_depth at REST and HTTP ingest without blocking, and keeps reading', async () => {
    const before = await eventCount();
    const watch = watchEventLoop();
    const [rest, provider, restArray] = await Promise.all([
      raw(`{"endpoint_id":"ep","event_type":"deep","data":${deepText(10_000)}}`),
      ingest(`{"type":"deep","x":${deepText(10_000)}}`),
      raw(`{"endpoint_id":"ep","event_type":"deep","data":${'['.repeat(5_000)}${']'.repeat(5_000)}}`),
    ]);
    expect(watch.stop()).toBeLessThan(MAX_LOOP_BLOCK_MS);
    for (const res of [rest, restArray]) {
      expect(res.status, res.text).toBe(400);
      expect(res.body.data.field).toBe('data');
      expect(res.body.message).toBe('data: nests objects and arrays deeper than 32 levels (ingest.max_json_depth)');
    }
    expect(provider.status, provider.text).toBe(400);
    expect(provider.body.message).toContain('deeper than 32 levels');
    expect(await eventCount()).toBe(before);
    // At the limit is fine, and the project's events still list.
    expect((await raw(`{"endpoint_id":"ep","event_type":"deep","data":${deepText(32)}}`)).status).toBe(201);
    expect((await t.api('GET', '/events')).status).toBe(200);
  });

  it('stores and delivers NUL inside data faithfully', async () => {
    const res = await post({ endpoint_id: 'ep', event_type: 'nul.data', data: { s: 'a\u0000b', ['k\u0000']: 1 } });
    expect(res.status, res.text).toBe(201);
    await expect.poll(() => rx.requests.filter((r) => r.headers['x-wharf-event-type'] === 'nul.data').length, { timeout: 10_000 }).toBe(1);
    const got = rx.requests.find((r) => r.headers['x-wharf-event-type'] === 'nul.data')!;
    expect(JSON.parse(got.body.toString())).toEqual({ s: 'a\u0000b', ['k\u0000']: 1 });
    expect((await t.api('GET', `/events/${res.body.data.uid}`)).body.data.data).toEqual({ s: 'a\u0000b', ['k\u0000']: 1 });
  });

  it('reads back, and delivers, events stored before these checks', async () => {
    // As an older Wharf could have stored them: a type with a line break, data 5,000 deep.
    const id = uuidv7();
    await t.app.pool.query(
      `INSERT INTO events (id, project_id, event_type, message_type, endpoint_id, custom_headers, data, headers)
       VALUES ($1, 'default', $2, 'single', 'ep', '{}', $3, '{}')`,
      [id, 'legacy\r\nx-injected: 1', deepText(5_000)],
    );
    const one = await t.api('GET', `/events/${id}`);
    expect(one.status, one.text).toBe(200);
    expect(one.body.data).toMatchObject({ data: deepText(5_000), data_is_text: true });
    expect((await t.api('GET', '/events?per_page=100')).status).toBe(200);
    // A resend of such an event goes out with the type percent-encoded, not as a broken header.
    const d = await t.app.pool.query(
      `INSERT INTO deliveries (id, project_id, event_id, endpoint_id, event_type, status) VALUES ($1, 'default', $2, 'ep', 'legacy', 'failure') RETURNING id`,
      [uuidv7(), id],
    );
    const resent = await t.api('PUT', `/eventdeliveries/${d.rows[0].id}/resend`);
    expect(resent.status, resent.text).toBeLessThan(300);
    await expect.poll(() => rx.requests.filter((r) => String(r.headers['x-wharf-event-type']).startsWith('legacy')).length, { timeout: 10_000 }).toBe(1);
    const got = rx.requests.find((r) => String(r.headers['x-wharf-event-type']).startsWith('legacy'))!;
    expect(got.headers['x-wharf-event-type']).toBe('legacy%0D%0Ax-injected: 1');
    expect(got.headers['x-injected']).toBeUndefined();
  });
});
