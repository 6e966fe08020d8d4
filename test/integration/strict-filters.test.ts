/**
 * A filter that cannot be read is a 400 naming it, never a quietly wider operation (issue 12):
 * `batchretry` with a number or an object where a string belongs used to retry every failed
 * delivery of the project; list filters given twice used to be dropped.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { startTestApp, type TestApp } from '../harness/app.ts';

describe('strict filters', () => {
  let t: TestApp;
  let failed = '';
  beforeAll(async () => {
    t = await startTestApp({ projects: [{ id: 'default', endpoints: [{ id: 'ep', url: 'http://127.0.0.1:9/' }], retry: { retry_count: 0 } }] });
    const ev = await t.api('POST', '/events', { endpoint_id: 'ep', event_type: 'strict.test', data: {} });
    expect(ev.status).toBe(201);
    // The endpoint refuses connections and retry_count is 0: one attempt, then failure.
    await vi.waitFor(
      async () => {
        const list = (await t.api('GET', '/eventdeliveries?status=failure')).body.data.content;
        if (list.length !== 1) throw new Error('not failed yet');
        failed = list[0].id;
      },
      { timeout: 15_000, interval: 200 },
    );
  });
  afterAll(async () => t?.stop());

  it.each([
    [{ endpoint_id: 5 }, 'endpoint_id'],
    [{ endpoint_id: { $ne: 'x' } }, 'endpoint_id'],
    [{ event_type: ['a', 'b'] }, 'event_type'],
    [{ status: { $ne: 1 } }, 'status'],
    [{ status: [1] }, 'status'],
    [{ start_date: 5 }, 'start_date'],
    // Each of these named nothing, so it meant "every endpoint" (or every status, or no filter).
    [{ endpoint_id: null }, 'endpoint_id'],
    [{ endpoint_id: [] }, 'endpoint_id'],
    [{ endpoint_id: ',' }, 'endpoint_id'],
    [{ event_type: null }, 'event_type'],
    [{ status: [] }, 'status'],
    [{ endpoint_id: ['ep', 7] }, 'endpoint_id'],
    // A key that is no filter of deliveries (a typo, another list's filter) was ignored.
    [{ endpointid: 'ep' }, 'endpointid'],
    [{ idempotency_key: 'k' }, 'idempotency_key'],
  ])('batchretry refuses %j naming the field, and retries nothing', async (body, field) => {
    const res = await t.api('POST', '/eventdeliveries/batchretry', body);
    expect(res.status, res.text).toBe(400);
    expect(res.body.data.field).toBe(field);
    expect((await t.api('GET', `/eventdeliveries/${failed}`)).body.data.status).toBe('Failure');
  });

  it('batchretry reads the same mistakes from the query string', async () => {
    for (const [query, field] of [['endpointId=,', 'endpoint_id'], ['status=,', 'status'], ['endpoint=ep', 'endpoint']]) {
      const res = await t.api('POST', `/eventdeliveries/batchretry?${query}`, {});
      expect(res.status, query).toBe(400);
      expect(res.body.data.field).toBe(field);
    }
    expect((await t.api('GET', `/eventdeliveries/${failed}`)).body.data.status).toBe('Failure');
  });

  it('batchreplay refuses a key that is no filter of events, and replays nothing', async () => {
    const res = await t.api('POST', '/events/batchreplay', { eventtype: 'strict.test' });
    expect(res.status, res.text).toBe(400);
    expect(res.body.data.field).toBe('eventtype');
    const empty = await t.api('POST', '/events/batchreplay', { source_id: [] });
    expect(empty.status, empty.text).toBe(400);
    expect(empty.body.data.field).toBe('source_id');
    expect((await t.api('GET', `/eventdeliveries/${failed}`)).body.data.status).toBe('Failure');
  });

  it('batchretry still takes good filters, and paging parameters are ignored', async () => {
    const none = await t.api('POST', '/eventdeliveries/batchretry?perPage=20&direction=next', { endpoint_id: ['other'], status: 'failure' });
    expect(none.status, none.text).toBe(200);
    expect(none.body.data.queued).toBe(0);
    const one = await t.api('POST', '/eventdeliveries/batchretry', { endpoint_id: 'ep', event_type: '' });
    expect(one.status, one.text).toBe(200);
    expect(one.body.data.queued).toBe(1);
  });

  it('batchretry refuses a body that is not an object', async () => {
    const res = await t.request('POST', '/api/v1/projects/default/eventdeliveries/batchretry', {
      raw: '[1]',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${t.apiKey}` },
    });
    expect(res.status).toBe(400);
  });

  it("a list filter given twice means any of them (Convoy's endpointId=a&endpointId=b), never none of them", async () => {
    const both = await t.api('GET', '/eventdeliveries?endpoint_id=ep&endpoint_id=other');
    expect(both.status, both.text).toBe(200);
    expect(both.body.data.content).toHaveLength(1);
    expect((await t.api('GET', '/eventdeliveries?endpointId=other')).body.data.content).toHaveLength(0);
    // Given once, or empty (unset, as Convoy's clients send it), it works.
    expect((await t.api('GET', '/eventdeliveries?endpoint_id=ep')).body.data.content).toHaveLength(1);
    expect((await t.api('GET', '/eventdeliveries?endpoint_id=')).body.data.content).toHaveLength(1);
    // A parameter Wharf cannot honour is refused, naming it.
    const sub = await t.api('GET', '/eventdeliveries?subscriptionId=s1');
    expect(sub.status).toBe(400);
    expect(sub.body.data.field).toBe('subscription_id');
  });
});
