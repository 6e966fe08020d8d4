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
import { portalClient } from '../harness/portal.ts';
import { uuidv7 } from '../../src/core/ids.ts';
import type { AcceptResult, BrokerMessage } from '../../src/core/connector.ts';
import { brokerMessage as message, brokerSink, brokerSource as source } from '../harness/broker-sink.ts';

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
    ['NUL', 'order\u0000created', 'must not contain'],
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
    expect(empty.body.data.idempotency_key).toBe(''); // Convoy's none
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

  it.each([
    ['a control character', 'a\u0001b', 'must not contain control characters'],
    ['DEL', 'a\u007fb', 'must not contain control characters'],
    ['a C1 control', 'a\u0085b', 'must not contain control characters'],
    ['NUL', 'a\u0000b', 'must not contain NUL'],
    ['non-ASCII', 'café', 'must be printable ASCII'],
  ])('refuses a custom header value with %s (400 naming it), storing nothing', async (_name, value, message) => {
    const before = await eventCount();
    const res = await post({ endpoint_id: 'ep', event_type: 'custom.header', data: {}, custom_headers: { 'X-Tenant': value } });
    expect(res.status, res.text).toBe(400);
    expect(res.body.data.field).toBe('custom_headers.X-Tenant');
    expect(res.body.message).toContain(message);
    expect(await eventCount()).toBe(before);
  });

  it('refuses custom headers too large to be sent, and sends a tab as given', async () => {
    const big = await post({ endpoint_id: 'ep', event_type: 'custom.header', data: {}, custom_headers: { 'X-A': 'a'.repeat(5000), 'X-B': 'b'.repeat(5000) } });
    expect(big.status, big.text).toBe(400);
    expect(big.body.data.field).toBe('custom_headers');
    expect(big.body.message).toBe('custom_headers: must be at most 8192 characters in all, names and values');
    const tab = await post({ endpoint_id: 'ep', event_type: 'custom.tab', data: {}, custom_headers: { 'X-Tab': 'a\tb' } });
    expect(tab.status, tab.text).toBe(201);
    await expect.poll(() => rx.requests.find((r) => r.headers['x-wharf-event-type'] === 'custom.tab')?.headers['x-tab'], { timeout: 10_000 }).toBe('a\tb');
  });

  it('refuses NUL anywhere else in the API with a 400 naming the field, never a 500', async () => {
    const cases: [Promise<Awaited<ReturnType<typeof post>>>, string][] = [
      [t.api('POST', '/endpoints', { name: 'a\u0000b', url: `${rx.url}/x`, skip_ping_validation: true }), 'name'],
      [t.api('POST', '/subscriptions', { name: 's', endpoint_id: 'ep', filter_config: { event_types: ['a\u0000'] } }), 'filter_config.event_types[0]'],
      [t.api('POST', '/subscriptions', { name: 's', endpoint_id: 'ep', filter_config: { filter: { body: { x: 'a\u0000' } } } }), 'filter_config.filter.body.x'],
      [t.api('GET', '/events?event_type=a%00b'), 'event_type'],
      [t.api('GET', '/endpoints/ep%00'), 'endpointID'],
      [post({ endpoint_id: 'ep', event_type: 'ok', data: {}, ['extra\u0000']: 1 }), 'extra\\u0000 (a key)'],
    ];
    for (const [pending, field] of cases) {
      const res = await pending;
      expect(res.status, res.text).toBe(400);
      expect(res.body.data).toMatchObject({ code: 'WHARF_ERR_INVALID', field });
      expect(res.body.message).toBe(`${field}: must not contain NUL (\\u0000): it cannot be stored`);
    }
    expect((await t.api('GET', '/endpoints')).body.data.content.map((e: { name: string }) => e.name)).not.toContain('a\u0000b');
  });

  it('refuses event types that could not be delivered wherever they are configured', async () => {
    const src = await t.api('POST', '/sources', { name: 'typed', type: 'http', event_type: 'a\r\nx-injected: 1', verifier: { type: 'noop' } });
    expect(src.status, src.text).toBe(400);
    expect(src.body.data.field).toBe('event_type');
    expect(src.body.message).toContain('must not contain control characters');
    for (const type of ['commande.créée', 'a\tb.*', 'a*b']) {
      const sub = await t.api('POST', '/subscriptions', { name: 's', endpoint_id: 'ep', filter_config: { event_types: [type] } });
      expect(sub.status, `${type}: ${sub.text}`).toBe(400);
      expect(sub.body.data.field).toBe('filter_config.event_types[0]');
    }
  });

  it('refuses a body nested too deep before reading its event type or key (HTTP ingest)', async () => {
    const before = await eventCount();
    const watch = watchEventLoop();
    const res = await ingest(`{"type":${deepText(10_000)}}`);
    expect(watch.stop()).toBeLessThan(MAX_LOOP_BLOCK_MS);
    expect(res.status, res.text).toBe(400);
    expect(res.body.data).toMatchObject({ code: 'WHARF_ERR_INVALID', field: 'body' });
    expect(res.body.message).toBe('body: nests objects and arrays deeper than 32 levels (ingest.max_json_depth)');
    expect(await eventCount()).toBe(before);
    expect((await t.api('GET', '/events')).status).toBe(200);
  });

  it('stores and delivers NUL inside an HTTP ingest body byte for byte', async () => {
    const body = '{"type":"nul.ingest","s":"a\\u0000b"}';
    const res = await ingest(body);
    expect(res.status, res.text).toBe(200);
    await expect.poll(() => rx.requests.filter((r) => r.headers['x-wharf-event-type'] === 'nul.ingest').length, { timeout: 10_000 }).toBe(1);
    expect(rx.requests.find((r) => r.headers['x-wharf-event-type'] === 'nul.ingest')!.body.toString()).toBe(body);
  });

  it('lists a project whose stored data is not JSON, showing that row as text', async () => {
    const id = uuidv7();
    await t.app.pool.query(
      `INSERT INTO events (id, project_id, event_type, message_type, endpoint_id, custom_headers, data, headers)
       VALUES ($1, 'default', 'legacy.text', 'single', 'ep', '{}', '{not json', '{}')`,
      [id],
    );
    const list = await t.api('GET', '/events?event_type=legacy.text');
    expect(list.status, list.text).toBe(200);
    expect(list.body.data.content).toEqual([expect.objectContaining({ uid: id, data: '{not json', data_is_text: true })]);
    expect((await t.api('GET', `/events/${id}`)).body.data).toMatchObject({ data: '{not json', data_is_text: true });
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

  it("shows a deeply nested stored payload in the portal as stored, without blocking", async () => {
    // 4,000 deep: still within what JSON.stringify can do, but pretty-printed it would be tens of
    // megabytes of indentation.
    const id = uuidv7();
    await t.app.pool.query(
      `INSERT INTO events (id, project_id, event_type, message_type, endpoint_id, custom_headers, data, headers)
       VALUES ($1, 'default', 'legacy.portal', 'single', 'ep', '{}', $2, '{}')`,
      [id, deepText(4_000)],
    );
    const d = await t.app.pool.query(
      `INSERT INTO deliveries (id, project_id, event_id, endpoint_id, event_type, status) VALUES ($1, 'default', $2, 'ep', 'legacy.portal', 'failure') RETURNING id`,
      [uuidv7(), id],
    );
    const link = await t.api('POST', '/portal-links', { name: 'Portal', kind: 'long_lived', endpoints: ['ep'] });
    expect(link.status, link.text).toBe(201);
    const browser = portalClient(t.url);
    expect((await browser.open(link.body.data.url)).status).toBe(303);
    const watch = watchEventLoop();
    const page = await browser.get(`/portal/deliveries/${d.rows[0].id}`);
    expect(watch.stop()).toBeLessThan(MAX_LOOP_BLOCK_MS);
    expect(page.status).toBe(200);
    expect(page.text).toContain(`{&quot;a&quot;:{&quot;a&quot;:`);
    expect(page.text.length).toBeLessThan(200_000);
  });

  describe('broker messages (the sink, on the same database)', () => {
    const LIMITS = { maxJsonDepth: 32 };
    const envelope = (fields: Record<string, unknown>) => message(JSON.stringify({ endpoint_id: 'ep', event_type: 'broker.ok', data: {}, ...fields }));
    const accept = (messages: BrokerMessage[], s = source()) => brokerSink(t.app, LIMITS, s).accept(messages);
    const letter = async (r: AcceptResult) => {
      expect(r.status).toBe('rejected');
      const { rows } = await t.app.pool.query('SELECT code, reason FROM dead_letters WHERE id = $1', [(r as { dead_letter_id: string }).dead_letter_id]);
      return rows[0] as { code: string; reason: string };
    };

    it('dead-letters undeliverable event types and custom headers with the reason, storing nothing', async () => {
      const before = await eventCount();
      const raw = source({ id: 'raw', format: 'raw', event_type: 'raw.default', event_type_header: 'x-type' });
      const results = [
        ...(await accept([
          envelope({ event_type: 'a\r\nx-injected: 1' }),
          envelope({ event_type: 'commande.créée' }),
          envelope({ event_type: 'x'.repeat(201) }),
          envelope({ custom_headers: { 'X-Tenant': 'a\u0001b' } }),
          envelope({ custom_headers: { 'X-Tenant': 'café' } }),
        ])),
        ...(await accept([message('{"a":1}', { headers: { 'x-type': 'order\tcreated' } }), message('{"a":1}', { headers: { 'x-type': 'order.📦' } })], raw)),
      ];
      const reasons = await Promise.all(results.map(async (r) => (await letter(r)).reason));
      expect(reasons).toEqual([
        'event_type: must not contain control characters (line breaks, NUL, tabs)',
        expect.stringMatching(/^event_type: must be printable ASCII/),
        'event_type: must be at most 200 characters (got 201)',
        'custom_headers.X-Tenant: must not contain control characters (line breaks, NUL)',
        'custom_headers.X-Tenant: must be printable ASCII: a header value cannot carry other characters as they are',
        'x-type header: must not contain control characters (line breaks, NUL, tabs)',
        expect.stringMatching(/^x-type header: must be printable ASCII/),
      ]);
      expect(await eventCount()).toBe(before);
    });

    it('dead-letters 10,000-deep JSON (envelope and raw) without blocking, and the project still lists', async () => {
      const before = await eventCount();
      const raw = source({ id: 'raw', format: 'raw', event_type: 'raw.deep' });
      const watch = watchEventLoop();
      const [enveloped] = await accept([message(`{"endpoint_id":"ep","event_type":"deep","data":${deepText(10_000)}}`)]);
      const [rawDeep] = await accept([message(`{"x":${deepText(10_000)}}`)], raw);
      expect(watch.stop()).toBeLessThan(MAX_LOOP_BLOCK_MS);
      expect(await letter(enveloped!)).toEqual({ code: 'WHARF_ERR_INVALID', reason: 'data: nests objects and arrays deeper than 32 levels (ingest.max_json_depth)' });
      expect(await letter(rawDeep!)).toEqual({ code: 'WHARF_ERR_INVALID', reason: 'body: nests objects and arrays deeper than 32 levels (ingest.max_json_depth)' });
      expect(await eventCount()).toBe(before);
      expect((await t.api('GET', '/events')).status).toBe(200);
    });

    it('keeps NUL in data, dead-letters a NUL byte in the body, and stores a message whose id holds NUL once', async () => {
      const [kept] = await accept([envelope({ event_type: 'broker.nul', data: { s: 'a\u0000b' } })]);
      expect(kept!.status).toBe('stored');
      const { rows } = await t.app.pool.query('SELECT data FROM events WHERE id = $1', [(kept as { event_id: string }).event_id]);
      expect(JSON.parse(rows[0].data)).toEqual({ s: 'a\u0000b' });

      // The parser's reason quotes the byte: it is kept as U+FFFD, so the letter can be written
      // (before, the letter itself failed and the broker redelivered the batch forever).
      const before = await eventCount();
      const [nulByte, after] = await accept([message(Buffer.from([0x00])), envelope({ data: { after: true } })]);
      expect(await letter(nulByte!)).toEqual({ code: 'WHARF_ERR_NOT_JSON', reason: 'body is not JSON: Unexpected token \'\uFFFD\', "\uFFFD" is not valid JSON' });
      expect(after!.status).toBe('stored');
      expect(await eventCount()).toBe(before + 1);

      // An AMQP message-id is the producer's: one with NUL is still stored, and once.
      const id = { id: 'amqp\u0000id' };
      const [first] = await accept([message('{"event_type":"broker.id","data":{}}', id)]);
      const [again] = await accept([message('{"event_type":"broker.id","data":{}}', id)]);
      expect(first!.status).toBe('stored');
      expect(again).toEqual({ status: 'duplicate', event_id: (first as { event_id: string }).event_id });
      const [poison] = await accept([message('\u0000', id)]);
      expect((await letter(poison!)).code).toBe('WHARF_ERR_NOT_JSON');
      expect((await t.api('GET', '/events')).status).toBe(200);
    });
  });
});
