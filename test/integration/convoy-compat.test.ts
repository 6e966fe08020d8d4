/**
 * Convoy's clients unchanged (issue 13, first part): the zero values convoy-go always sends, an
 * empty JSON body where a body is optional, and the success codes `docs/v3/openapi3.yaml` names
 * for each operation, which generated SDKs check strictly.
 */
import { createHmac } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../harness/app.ts';
import { startReceiver, type Receiver } from '../harness/receiver.ts';

describe('Convoy client compatibility', () => {
  let t: TestApp;
  let rx: Receiver;
  let endpointId = '';
  beforeAll(async () => {
    rx = await startReceiver();
    t = await startTestApp({ projects: [{ id: 'default', retry: { strategy: 'linear', duration: 1, retry_count: 0 } }] });
    const ep = await t.api('POST', '/endpoints', { name: 'compat', url: `${rx.url}/compat`, owner_id: 'acme' });
    expect(ep.status, ep.text).toBe(201);
    endpointId = ep.body.data.uid;
  });
  afterAll(async () => {
    await t?.stop();
    await rx?.close();
  });

  /** A request exactly as convoy-go's client sends one: JSON content type, the body as given (maybe empty). */
  const raw = (method: string, path: string, body = '') =>
    t.request(method, `/api/v1/projects/default${path}`, {
      raw: body,
      headers: { 'content-type': 'application/json', authorization: `Bearer ${t.apiKey}` },
    });

  it("creates an endpoint from convoy-go's CreateEndpointRequest as it is sent", async () => {
    // endpoint.go: advanced_signatures is a *bool sent as null, is_disabled always sent,
    // authentication nested per type.
    const body = {
      name: 'from-go',
      url: `${rx.url}/go`,
      owner_id: 'acme',
      slack_webhook_url: 'https://hooks.slack.example/services/x',
      description: 'made by convoy-go',
      advanced_signatures: null,
      is_disabled: false,
      authentication: { type: 'api_key', api_key: { header_value: 'go-key-value', header_name: 'X-Go-Key' } },
      http_timeout: 15,
      rate_limit: 100,
      rate_limit_duration: 60,
    };
    const res = await raw('POST', '/endpoints', JSON.stringify(body));
    expect(res.status, res.text).toBe(201);
    expect(res.body.data).toMatchObject({
      name: 'from-go',
      status: 'active',
      advanced_signatures: true,
      http_timeout: 15,
      authentication: { type: 'api_key', api_key: { header_name: 'X-Go-Key', header_value: '********' } },
    });
    // is_disabled: true makes an inactive endpoint, at creation and by an update.
    const off = await raw('POST', '/endpoints', JSON.stringify({ ...body, name: 'off', is_disabled: true }));
    expect(off.status, off.text).toBe(201);
    expect(off.body.data.status).toBe('inactive');
    const turnedOff = await t.api('PUT', `/endpoints/${res.body.data.uid}`, { is_disabled: true });
    expect(turnedOff.status, turnedOff.text).toBe(202);
    expect(turnedOff.body.data.status).toBe('inactive');
    expect((await t.api('POST', `/endpoints/${res.body.data.uid}/activate`)).body.data.status).toBe('active');
  });

  it("takes convoy-go's zero values on an event: an empty idempotency_key and null custom_headers", async () => {
    const body = JSON.stringify({ endpoint_id: endpointId, event_type: 'compat.created', data: { n: 1 }, custom_headers: null, idempotency_key: '' });
    const first = await raw('POST', '/events', body);
    expect(first.status, first.text).toBe(201);
    // An empty key is no key: the same body again is a new event, not a duplicate.
    const second = await raw('POST', '/events', body);
    expect(second.status, second.text).toBe(201);
    expect(second.body.data.duplicate).toBe(false);
    expect(second.body.data.uid).not.toBe(first.body.data.uid);
  });

  it('POST /events with owner_id instead of endpoint_id reaches every endpoint of the owner', async () => {
    const other = await t.api('POST', '/endpoints', { name: 'acme-2', url: `${rx.url}/acme-2`, owner_id: 'acme' });
    expect(other.status, other.text).toBe(201);
    const res = await t.api('POST', '/events', { owner_id: 'acme', event_type: 'compat.owner', data: { o: 1 } });
    expect(res.status, res.text).toBe(201);
    expect(res.body.data.deliveries).toBeGreaterThanOrEqual(2);
    expect(res.body.data.owner_id).toBe('acme');
    const nobody = await t.api('POST', '/events', { owner_id: 'nobody', event_type: 'compat.owner', data: {} });
    expect(nobody.status).toBe(404);
    expect(nobody.body.data.field).toBe('owner_id');
    await t.api('DELETE', `/endpoints/${other.body.data.uid}`);
  });

  it('answers a repeated idempotency_key with 201, as the spec says, marking it a duplicate', async () => {
    const body = { endpoint_id: endpointId, event_type: 'compat.keyed', data: {}, idempotency_key: 'compat-1' };
    const first = await t.api('POST', '/events', body);
    const again = await t.api('POST', '/events', body);
    expect([first.status, again.status]).toEqual([201, 201]);
    expect(again.body.data).toMatchObject({ uid: first.body.data.uid, duplicate: true });
  });

  it('takes an empty JSON body where the body is optional, with the codes of openapi3.yaml', async () => {
    const paused = await raw('PUT', `/endpoints/${endpointId}/pause`);
    expect(paused.status, paused.text).toBe(202);
    expect(paused.body.data.status).toBe('paused');
    const activated = await raw('POST', `/endpoints/${endpointId}/activate`);
    expect(activated.status, activated.text).toBe(202);
    expect(activated.body.data.status).toBe('active');
    const retried = await raw('POST', '/eventdeliveries/batchretry');
    expect(retried.status, retried.text).toBe(200);
    // The events above were delivered: resend one of them.
    const succeeded = async () => (await t.api('GET', `/eventdeliveries?endpoint_id=${endpointId}&status=success`)).body.data.content;
    await expect.poll(async () => (await succeeded()).length, { timeout: 10_000 }).toBeGreaterThanOrEqual(1);
    const resent = await raw('PUT', `/eventdeliveries/${(await succeeded())[0].uid}/resend`);
    expect(resent.status, resent.text).toBe(200);
    // A body that is there must still be JSON.
    expect((await raw('POST', '/events', '{not json')).status).toBe(400);
  });

  it('generates a secret for expire_secret with "secret": "", answering 200', async () => {
    const rotated = await t.api('PUT', `/endpoints/${endpointId}/expire_secret`, { expiration: 60, secret: '' });
    expect(rotated.status, rotated.text).toBe(200);
    expect(rotated.body.data.secrets[0].value).toMatch(/^.{16,}$/);
  });

  it('takes an empty owner_id beside endpoints on a portal link', async () => {
    const link = await t.api('POST', '/portal-links', { name: 'compat', owner_id: '', endpoints: [endpointId] });
    expect(link.status, link.text).toBe(201);
  });

  it('answers PUT on subscriptions and sources with 202', async () => {
    // subscription.go sends alert_config and retry_config as null when unset.
    const sub = await t.api('POST', '/subscriptions', {
      name: 'compat',
      endpoint_id: endpointId,
      source_id: '',
      alert_config: null,
      retry_config: null,
      filter_config: { event_types: ['*'], filter: { body: null, headers: null } },
    });
    const withConfigs = await t.api('POST', '/subscriptions', {
      name: 'compat-cfg',
      endpoint_id: endpointId,
      alert_config: { count: 10, threshold: '1h' },
      retry_config: { type: 'linear', duration: '10s', retry_count: 3 },
    });
    expect(withConfigs.status, withConfigs.text).toBe(201);
    expect((await t.api('POST', '/subscriptions', { name: 'bad', endpoint_id: endpointId, retry_config: { type: 'random' } })).body.data.field).toBe('retry_config.type');
    expect(sub.status, sub.text).toBe(201);
    expect((await t.api('PUT', `/subscriptions/${sub.body.data.uid}`, { name: 'compat-2' })).status).toBe(202);
    const source = await t.api('POST', '/sources', { name: 'compat', type: 'http', event_type: 'compat.in', http: { verifier: { type: 'none' } } });
    expect(source.status, source.text).toBe(201);
    const { uid, status: _s, url: _u, project_id: _p, from_config: _f, created_at: _c, updated_at: _up, ...definition } = source.body.data;
    expect((await t.api('PUT', `/sources/${uid}`, { ...definition, name: 'compat-2' })).status).toBe(202);
  });

  it("answers in Convoy's shapes: attempts with http_status and status, test_filter's verdict as data, paginated lists", async () => {
    const ev = await t.api('POST', '/events', { endpoint_id: endpointId, event_type: 'compat.shape', data: {} });
    expect(ev.status, ev.text).toBe(201);
    const delivery = async () => (await t.api('GET', `/eventdeliveries?eventId=${ev.body.data.uid}`)).body.data.content[0];
    await expect.poll(async () => (await delivery())?.status, { timeout: 10_000 }).toBe('Success');
    const d = await delivery();
    const attempts = await t.api('GET', `/eventdeliveries/${d.uid}/deliveryattempts`);
    expect(attempts.status).toBe(200);
    // project_id and endpoint_id are the delivery's: the attempt's row does not store them again (migration 020).
    expect(attempts.body.data[0]).toMatchObject({ http_status: '200 OK', status: true, msg_id: d.uid, method: 'POST', project_id: d.project_id, endpoint_id: endpointId });
    expect(d.project_id).toEqual(expect.any(String));
    // The view of every attempt answers them from the delivery too (migration 023), wherever the attempt is kept.
    const { rows: stored } = await t.app.pool.query('SELECT project_id, endpoint_id FROM attempts WHERE id = $1', [attempts.body.data[0].uid]);
    expect(stored).toEqual([{ project_id: d.project_id, endpoint_id: endpointId }]);
    const one = await t.api('GET', `/eventdeliveries/${d.uid}/deliveryattempts/${attempts.body.data[0].uid}`);
    expect(one.status, one.text).toBe(200);
    expect(one.body.data.uid).toBe(attempts.body.data[0].uid);
    expect((await t.api('GET', `/eventdeliveries/${d.uid}/deliveryattempts/${ev.body.data.uid}`)).status).toBe(404);

    const verdict = await t.api('POST', '/subscriptions/test_filter', { request: { body: { a: 1 } }, schema: { body: { a: 1 } } });
    expect(verdict.body).toMatchObject({ status: true, data: true });

    for (const list of ['/sources', '/subscriptions', '/endpoints', '/events']) {
      const res = await t.api('GET', list);
      expect(res.body.data.pagination, list).toMatchObject({ has_next_page: false, has_prev_page: false, prev_page_cursor: '' });
    }
  });

  describe("Convoy's operations Wharf lacked", () => {
    const hits = (path: string) => rx.requests.filter((r) => r.path === path).length;

    it('replays one event, and a batch of events by the list filters', async () => {
      const ep = await t.api('POST', '/endpoints', { name: 'replay', url: `${rx.url}/replay`, skip_ping_validation: true });
      const ev = await t.api('POST', '/events', { endpoint_id: ep.body.data.uid, event_type: 'compat.replay', data: { r: 1 } });
      await expect.poll(() => hits('/replay'), { timeout: 10_000 }).toBe(1);
      await expect
        .poll(async () => (await t.api('GET', `/eventdeliveries?eventId=${ev.body.data.uid}`)).body.data.content[0].status, { timeout: 10_000 })
        .toBe('Success');
      const replayed = await t.api('PUT', `/events/${ev.body.data.uid}/replay`);
      expect(replayed.status, replayed.text).toBe(200);
      expect(replayed.body.data.uid).toBe(ev.body.data.uid);
      await expect.poll(() => hits('/replay'), { timeout: 10_000 }).toBe(2);
      expect((await t.api('PUT', `/events/${endpointId}/replay`)).status).toBe(404);

      await expect
        .poll(async () => (await t.api('GET', `/eventdeliveries?eventId=${ev.body.data.uid}`)).body.data.content[0].status, { timeout: 10_000 })
        .toBe('Success');
      const batch = await t.request('POST', `/api/v1/projects/default/events/batchreplay?endpointId=${ep.body.data.uid}&startDate=2000-01-01T00:00:00`, {
        raw: '',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${t.apiKey}` },
      });
      expect(batch.status, batch.text).toBe(200);
      expect(batch.body.data).toMatchObject({ events: 1, queued: 1 });
      await expect.poll(() => hits('/replay'), { timeout: 10_000 }).toBe(3);
    });

    it('force-resends deliveries by id, counting what could not be', async () => {
      const ep = await t.api('POST', '/endpoints', { name: 'force', url: `${rx.url}/force`, skip_ping_validation: true });
      const ev = await t.api('POST', '/events', { endpoint_id: ep.body.data.uid, event_type: 'compat.force', data: {} });
      const delivery = async () => (await t.api('GET', `/eventdeliveries?eventId=${ev.body.data.uid}`)).body.data.content[0];
      await expect.poll(async () => (await delivery()).status, { timeout: 10_000 }).toBe('Success');
      const res = await t.api('POST', '/eventdeliveries/forceresend', { ids: [(await delivery()).uid, ev.body.data.uid] });
      expect(res.status, res.text).toBe(200);
      expect(res.body.data).toEqual({ successes: 1, failures: 1 });
      await expect.poll(() => hits('/force'), { timeout: 10_000 }).toBe(2);
      expect((await t.api('POST', '/eventdeliveries/forceresend', { ids: [] })).status).toBe(400);
    });

    it('sends a dynamic event to a URL, making its endpoint once', async () => {
      const body = { url: `${rx.url}/dynamic`, event_type: 'compat.dynamic', event_types: ['compat.*'], data: { d: 1 } };
      const [a, b] = await Promise.all([t.api('POST', '/events/dynamic', body), t.api('POST', '/events/dynamic', body)]);
      expect([a.status, b.status], a.text).toEqual([201, 201]);
      expect(a.body.data.endpoint_id).toBe(b.body.data.endpoint_id);
      await expect.poll(() => hits('/dynamic'), { timeout: 10_000 }).toBe(2);
      const made = await t.api('GET', `/endpoints/${a.body.data.endpoint_id}`);
      expect(made.body.data).toMatchObject({ url: `${rx.url}/dynamic`, status: 'active' });
      const subs = await t.api('GET', `/subscriptions?endpointId=${a.body.data.endpoint_id}`);
      expect(subs.body.data.content.map((x: { filter_config: { event_types: string[] } }) => x.filter_config.event_types)).toEqual([['compat.*']]);
      expect((await t.api('POST', '/events/dynamic', { ...body, url: 'ftp://x.example/' })).status).toBe(400);
    });

    it("creates an HTTP source in Convoy's shape, verifies with it, and answers in it", async () => {
      const secret = 'convoy-source-hmac-secret';
      const body = {
        name: 'convoy-shaped',
        type: 'http',
        provider: '',
        is_disabled: false,
        verifier: { type: 'hmac', hmac: { header: 'X-Convoy-Sig', hash: 'SHA256', secret, encoding: 'hex' }, basic_auth: null, api_key: null },
        event_type_location: 'request.header.X-Event-Type',
        idempotency_keys: ['request.header.X-Delivery'],
      };
      const created = await raw('POST', '/sources', JSON.stringify(body));
      expect(created.status, created.text).toBe(201);
      expect(created.body.data).toMatchObject({
        type: 'http',
        provider: '',
        mask_id: expect.any(String),
        verifier: { type: 'hmac', hmac: { header: 'X-Convoy-Sig', hash: 'SHA256', secret: '********', encoding: 'hex' } },
      });
      const payload = JSON.stringify({ hello: 'convoy' });
      const sig = createHmac('sha256', secret).update(payload).digest('hex');
      const post = () =>
        t.request('POST', new URL(created.body.data.url).pathname, {
          raw: payload,
          headers: { 'content-type': 'application/json', 'x-convoy-sig': sig, 'x-event-type': 'invoice.paid', 'x-delivery': 'd-1' },
        });
      expect((await post()).status).toBe(200);
      expect((await post()).body.data.duplicate).toBe(true);
      const events = await t.api('GET', `/events?sourceId=${created.body.data.uid}`);
      expect(events.body.data.content.map((e: { event_type: string }) => e.event_type)).toEqual(['invoice.paid']);
      // The answer sent back keeps the secret; what Wharf cannot do is refused by name.
      const { uid, ...shown } = created.body.data;
      const update = { name: shown.name, type: 'http', verifier: shown.verifier, event_type_location: body.event_type_location, idempotency_keys: body.idempotency_keys };
      expect((await t.api('PUT', `/sources/${uid}`, update)).status).toBe(202);
      expect((await post()).body.data.duplicate).toBe(true);
      expect((await t.api('POST', '/sources', { ...body, name: 'x', body_function: 'return x' })).body.data.field).toBe('body_function');
      expect((await t.api('POST', '/sources', { ...body, name: 'y', provider: 'twitter' })).body.data.field).toBe('provider');
    });

    it('updates a portal link in place: the same URL shows the new scope', async () => {
      const created = await t.api('POST', '/portal-links', { name: 'mine', owner_id: 'acme', auth_type: 'static_token' });
      expect(created.status, created.text).toBe(201);
      expect(created.body.data.kind).toBe('long_lived');
      const updated = await t.api('PUT', `/portal-links/${created.body.data.uid}`, { name: 'renamed', owner_id: '', endpoints: [endpointId], can_manage_endpoint: true });
      expect(updated.status, updated.text).toBe(202);
      expect(updated.body.data).toMatchObject({ name: 'renamed', owner_id: '', endpoints: [endpointId], can_manage_endpoint: true, kind: 'long_lived' });
      expect((await t.api('PUT', `/portal-links/${endpointId}`, { name: 'x', owner_id: 'acme' })).status).toBe(404);
    });
  });
});

describe('project types', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp({
      projects: [
        { id: 'out', type: 'outgoing', endpoints: [{ id: 'ep', url: 'http://127.0.0.1:9/' }] },
        { id: 'in', type: 'incoming', endpoints: [{ id: 'ep', url: 'http://127.0.0.1:9/' }] },
        { id: 'both', endpoints: [{ id: 'ep', url: 'http://127.0.0.1:9/' }] },
      ],
    });
  });
  afterAll(async () => t?.stop());

  const event = { endpoint_id: 'ep', event_type: 'typed', data: {} };
  const httpSource = { name: 'hooks', type: 'http', event_type: 'hook', http: { verifier: { type: 'none' } } };

  it('an incoming project takes no REST events; an outgoing one no HTTP sources; one that names no type takes both', async () => {
    const refused = await t.api('POST', '/events', event, 'in');
    expect(refused.status, refused.text).toBe(403);
    expect(refused.body.message).toContain('"in" is an incoming project');
    expect((await t.api('POST', '/events/broadcast', event, 'in')).status).toBe(403);
    expect((await t.api('POST', '/sources', httpSource, 'in')).status).toBe(201);

    const noIngest = await t.api('POST', '/sources', httpSource, 'out');
    expect(noIngest.status, noIngest.text).toBe(403);
    expect(noIngest.body.data.field).toBe('type');
    expect((await t.api('POST', '/events', event, 'out')).status).toBe(201);

    expect((await t.api('POST', '/events', event, 'both')).status).toBe(201);
    expect((await t.api('POST', '/sources', httpSource, 'both')).status).toBe(201);
  });
});
