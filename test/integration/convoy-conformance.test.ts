/**
 * Wharf's answers against Convoy's OpenAPI schemas (issue 13). Every operation convoy-go uses (and
 * GetProject and UpdateProject, for a project's retention: issue 15) is called as convoy-go calls
 * it (JSON content type, an empty body where it sends none), and the whole answer (`status`, `message`, `data`) is validated against the operation's schema for its
 * success code in test/fixtures/convoy-openapi3-responses.yaml (vendored from Convoy, see its
 * header). Convoy's schemas allow fields they do not name, so Wharf's extra fields pass; types,
 * enums and nullability must hold. Where Wharf differs on purpose, EXCEPTIONS names the operation
 * and the field, and the test checks the difference is still there (a stale exception fails).
 */
import { readFileSync } from 'node:fs';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import pg from 'pg';
import { parse } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../harness/app.ts';
import { startReceiver, type Receiver } from '../harness/receiver.ts';

const SPEC = parse(readFileSync(new URL('../fixtures/convoy-openapi3-responses.yaml', import.meta.url), 'utf8')) as {
  paths: Record<string, Record<string, { responses: Record<string, { content: { 'application/json': { schema: unknown } } }> }>>;
  components: { schemas: Record<string, unknown> };
};
const PREFIX = '/v1/projects/{projectID}';

/**
 * OpenAPI 3.0's `nullable: true` as JSON Schema (`null` or the rest), and `$ref`s to
 * `#/components/schemas/X` as references to schemas registered under `X`.
 */
function jsonSchema(s: unknown): unknown {
  if (Array.isArray(s)) return s.map(jsonSchema);
  if (s === null || typeof s !== 'object') return s;
  const { nullable, ...rest } = s as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(rest)) {
    if (k === '$ref') out.$ref = (v as string).replace('#/components/schemas/', '');
    // Values of `properties`/`example` are names or data, not schemas, but converting them is harmless.
    else out[k] = jsonSchema(v);
  }
  return nullable === true ? { anyOf: [{ type: 'null' }, out] } : out;
}

const ajv = new Ajv({ strict: false, allErrors: true, validateFormats: false });
for (const [name, schema] of Object.entries(SPEC.components.schemas)) ajv.addSchema(jsonSchema(schema) as object, name);

/** "GET /endpoints/{endpointID}" → the validator of its success answer and the success code. */
const operations = new Map<string, { code: number; validate: ValidateFunction }>();
for (const [path, methods] of Object.entries(SPEC.paths)) {
  for (const [method, op] of Object.entries(methods)) {
    const [code, response] = Object.entries(op.responses)[0]!;
    operations.set(`${method.toUpperCase()} ${path.slice(PREFIX.length)}`, {
      code: Number(code),
      validate: ajv.compile(jsonSchema(response.content['application/json'].schema) as object),
    });
  }
}

/**
 * Where Wharf's answer differs from Convoy's schema on purpose (README "Where Wharf differs on
 * purpose"): the operation, the field (a JSON pointer into the answer) and why.
 */
const EXCEPTIONS: { op: string; at: string; why: string }[] = [
  {
    op: 'POST /events/batchreplay',
    at: '/data',
    why: 'Wharf replays a bounded batch and answers its counts {events, queued, more}, where Convoy answers a sentence',
  },
];

const tolerated = (op: string, e: ErrorObject): boolean =>
  EXCEPTIONS.some((x) => x.op === op && (e.instancePath === x.at || e.instancePath.startsWith(`${x.at}/`)));
const seenExceptions = new Set<(typeof EXCEPTIONS)[number]>();
const called = new Set<string>();

describe("Wharf's answers against Convoy's OpenAPI schemas", () => {
  let t: TestApp;
  let rx: Receiver;
  beforeAll(async () => {
    rx = await startReceiver();
    t = await startTestApp({
      projects: [{ id: 'default', retry: { strategy: 'linear', duration: 1, retry_count: 0 }, meta_events: { url: `${rx.url}/meta`, secret: 'meta-events-secret-0123456789abcdef' } }],
    });
  });
  afterAll(async () => {
    await t?.stop();
    await rx?.close();
  });

  /**
   * Calls one operation as convoy-go does and validates the answer. `op` is the spec's
   * "METHOD /path" (path under /v1/projects/{projectID}); `path` fills its parameters in;
   * `method` is where convoy-go calls it with another method than the spec's.
   */
  const call = async (op: string, path: string, body?: unknown, method = op.split(' ')[0]!): Promise<any> => {
    const spec = operations.get(op);
    if (!spec) throw new Error(`${op} is not in the vendored spec`);
    called.add(op);
    // convoy-go sends its JSON content type on every call, with an empty body where it has none.
    const empty = method === 'GET' || method === 'DELETE' ? undefined : '';
    const res = await t.request(method, `/api/v1/projects/default${path}`, {
      raw: body === undefined ? empty : JSON.stringify(body),
      headers: { 'content-type': 'application/json', authorization: `Bearer ${t.apiKey}` },
    });
    expect(res.status, `${op}: ${res.text}`).toBe(spec.code);
    spec.validate(res.body);
    const errors = (spec.validate.errors ?? []).filter((e) => {
      const x = EXCEPTIONS.find((x) => x.op === op && tolerated(op, e));
      if (x) seenExceptions.add(x);
      return !x;
    });
    // Soft: one run reports every operation that does not conform, not only the first.
    expect.soft(errors.map((e) => `${op} ${e.instancePath} ${e.message}`), JSON.stringify(res.body)).toEqual([]);
    return res.body.data;
  };

  let endpointId = '';
  let eventId = '';
  let deliveryId = '';

  it('endpoints', async () => {
    const made = await call('POST /endpoints', '/endpoints', {
      name: 'conformance',
      url: `${rx.url}/hook`,
      owner_id: 'acme',
      description: 'made as convoy-go makes it',
      advanced_signatures: null,
      is_disabled: false,
      authentication: { type: 'api_key', api_key: { header_name: 'X-Key', header_value: 'conformance-key' } },
      http_timeout: 10,
      rate_limit: 100,
      rate_limit_duration: 60,
    });
    endpointId = made.uid;
    await call('GET /endpoints', '/endpoints?ownerId=acme&perPage=5');
    await call('GET /endpoints/{endpointID}', `/endpoints/${endpointId}`);
    await call('PUT /endpoints/{endpointID}', `/endpoints/${endpointId}`, { name: 'conformance-2', url: `${rx.url}/hook` });
    await call('PUT /endpoints/{endpointID}/pause', `/endpoints/${endpointId}/pause`);
    await call('POST /endpoints/{endpointID}/activate', `/endpoints/${endpointId}/activate`);
    await call('PUT /endpoints/{endpointID}/expire_secret', `/endpoints/${endpointId}/expire_secret`, { expiration: 1, secret: '' });
    const spare = await call('POST /endpoints', '/endpoints', { name: 'spare', url: `${rx.url}/spare` });
    await call('DELETE /endpoints/{endpointID}', `/endpoints/${spare.uid}`);
  });

  it('events', async () => {
    const made = await call('POST /events', '/events', { endpoint_id: endpointId, event_type: 'order.created', data: { n: 1 }, custom_headers: null, idempotency_key: '' });
    eventId = made.uid;
    await call('POST /events/fanout', '/events/fanout', { owner_id: 'acme', event_type: 'order.fanned', data: { n: 2 }, custom_headers: null, idempotency_key: '' });
    await call('POST /events/broadcast', '/events/broadcast', { event_type: 'order.everyone', data: { n: 3 }, custom_headers: null, idempotency_key: '' });
    await call('POST /events/dynamic', '/events/dynamic', { url: `${rx.url}/dynamic`, event_type: 'order.dynamic', data: { n: 4 } });
    await call('GET /events', `/events?endpointId=${endpointId}&perPage=10`);
    await call('GET /events/{eventID}', `/events/${eventId}`);
    await call('PUT /events/{eventID}/replay', `/events/${eventId}/replay`);
    await call('POST /events/batchreplay', `/events/batchreplay?endpointId=${endpointId}`);
  });

  it('event deliveries and delivery attempts', async () => {
    // The replays of the test before run in the background (the batch-retry worker): the delivery
    // is at rest only once those jobs are done and it shows Success, else a resend may meet it
    // scheduled again (409).
    const replaysLeft = async (): Promise<number> => {
      const db = new pg.Client({ connectionString: t.db.url });
      await db.connect();
      try {
        return Number((await db.query(`SELECT count(*) AS n FROM pgboss.job WHERE name = 'wharf-batch-retry' AND state < 'completed'`)).rows[0].n);
      } finally {
        await db.end();
      }
    };
    await expect
      .poll(async () => [await replaysLeft(), (await t.api('GET', `/eventdeliveries?eventId=${eventId}`)).body.data.content[0]?.status], { timeout: 20_000, interval: 250 })
      .toEqual([0, 'Success']);
    const list = await call('GET /eventdeliveries', `/eventdeliveries?eventId=${eventId}&endpointId=${endpointId}`);
    deliveryId = list.content[0].uid;
    await call('GET /eventdeliveries/{eventDeliveryID}', `/eventdeliveries/${deliveryId}`);
    const attempts = await call('GET /eventdeliveries/{eventDeliveryID}/deliveryattempts', `/eventdeliveries/${deliveryId}/deliveryattempts`);
    await call('GET /eventdeliveries/{eventDeliveryID}/deliveryattempts/{deliveryAttemptID}', `/eventdeliveries/${deliveryId}/deliveryattempts/${attempts[0].uid}`);
    await call('PUT /eventdeliveries/{eventDeliveryID}/resend', `/eventdeliveries/${deliveryId}/resend`);
    await expect
      .poll(async () => (await t.api('GET', `/eventdeliveries/${deliveryId}`)).body.data.status, { timeout: 20_000, interval: 250 })
      .toBe('Success');
    // convoy-go's BatchResend posts an empty object, its filters in the query.
    await call('POST /eventdeliveries/batchretry', `/eventdeliveries/batchretry?endpointId=${endpointId}&status=Success`, {});
    await call('POST /eventdeliveries/forceresend', '/eventdeliveries/forceresend', { ids: [deliveryId] });
  });

  it('subscriptions', async () => {
    const made = await call('POST /subscriptions', '/subscriptions', {
      name: 'conformance',
      endpoint_id: endpointId,
      source_id: '',
      alert_config: null,
      retry_config: { type: 'linear', duration: '10s', retry_count: 2 },
      filter_config: { event_types: ['order.*'], filter: { body: {}, headers: {} } },
    });
    await call('GET /subscriptions', `/subscriptions?endpointId=${endpointId}`);
    await call('GET /subscriptions/{subscriptionID}', `/subscriptions/${made.uid}`);
    await call('PUT /subscriptions/{subscriptionID}', `/subscriptions/${made.uid}`, { name: 'conformance-2', endpoint_id: endpointId, source_id: '' });
    await call('POST /subscriptions/test_filter', '/subscriptions/test_filter', { request: { body: { n: 1 }, headers: {} }, schema: { body: { n: 1 }, headers: {} } });
    await call('DELETE /subscriptions/{subscriptionID}', `/subscriptions/${made.uid}`);
  });

  it('sources', async () => {
    const body = {
      name: 'conformance',
      type: 'http',
      provider: '',
      is_disabled: false,
      verifier: { type: 'hmac', hmac: { header: 'X-Sig', hash: 'SHA256', secret: 'conformance-source-secret', encoding: 'hex' }, basic_auth: null, api_key: null },
    };
    const made = await call('POST /sources', '/sources', body);
    await call('GET /sources', '/sources');
    await call('GET /sources/{sourceID}', `/sources/${made.uid}`);
    await call('PUT /sources/{sourceID}', `/sources/${made.uid}`, { ...body, name: 'conformance-2' });
    // convoy-go's Source.Update posts.
    const posted = await call('PUT /sources/{sourceID}', `/sources/${made.uid}`, { ...body, name: 'conformance-3' }, 'POST');
    expect(posted.name).toBe('conformance-3');
    await call('DELETE /sources/{sourceID}', `/sources/${made.uid}`);
  });

  it('portal links', async () => {
    const made = await call('POST /portal-links', '/portal-links', { name: 'conformance', endpoints: [endpointId], owner_id: '', can_manage_endpoint: false });
    await call('GET /portal-links', '/portal-links');
    await call('GET /portal-links/{portalLinkID}', `/portal-links/${made.uid}`);
    await call('PUT /portal-links/{portalLinkID}', `/portal-links/${made.uid}`, { name: 'conformance-2', endpoints: [endpointId], owner_id: '' });
    await call('PUT /portal-links/{portalLinkID}/revoke', `/portal-links/${made.uid}/revoke`);
  });

  it('meta events', async () => {
    // The pause and activate above changed the endpoint's state: meta events of the project.
    // Only one at rest (sent or failed) can be resent: wait for one.
    const atRest = async () => ((await t.api('GET', '/meta-events')).body.data.content as { uid: string; status: string }[]).find((m) => m.status !== 'Scheduled');
    await expect.poll(atRest, { timeout: 20_000, interval: 250 }).toBeDefined();
    const rested = (await atRest())!;
    await call('GET /meta-events', '/meta-events');
    await call('GET /meta-events/{metaEventID}', `/meta-events/${rested.uid}`);
    await call('PUT /meta-events/{metaEventID}/resend', `/meta-events/${rested.uid}/resend`);
  });

  it('the project (its retention)', async () => {
    await call('GET ', '');
    const set = await call('PUT ', '', { config: { retention: { events: '30d' } } });
    expect(set.config.retention_in_force.events).toBe('30d');
  });

  it('covered every operation of the vendored spec, and every exception still applies', () => {
    expect([...operations.keys()].filter((op) => !called.has(op))).toEqual([]);
    expect(EXCEPTIONS.filter((x) => !seenExceptions.has(x)).map((x) => `${x.op} ${x.at}`)).toEqual([]);
  });
});
