/**
 * Convoy's retry_config per subscription (issue 13): the subscription that routed a delivery
 * decides its retries over the project's `retry`; answered back in Convoy's shape.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../harness/app.ts';
import { startReceiver, type Receiver } from '../harness/receiver.ts';

describe('retry_config on subscriptions', () => {
  let t: TestApp;
  let rx: Receiver;
  beforeAll(async () => {
    rx = await startReceiver();
    rx.answer(() => ({ status: 500, body: 'down' }));
    t = await startTestApp({
      projects: [
        {
          id: 'default',
          // The project allows three retries; the subscriptions below say otherwise.
          retry: { strategy: 'linear', duration: 1, retry_count: 3 },
          endpoints: [{ id: 'declared', url: 'https://declared.example/' }],
          subscriptions: [{ id: 'from-yaml', endpoint_id: 'declared', retry_config: { type: 'exponential', duration: '2m', retry_count: 4 } }],
        },
      ],
    });
  });
  afterAll(async () => {
    await t?.stop();
    await rx?.close();
  });

  const endpoint = async (path: string): Promise<string> => {
    const res = await t.api('POST', '/endpoints', { name: path, url: `${rx.url}${path}`, skip_ping_validation: true });
    expect(res.status, res.text).toBe(201);
    return res.body.data.uid;
  };

  /** Sends one event to the endpoint and waits for its delivery to fail for good. */
  const failedDelivery = async (endpointId: string) => {
    const ev = await t.api('POST', '/events', { endpoint_id: endpointId, event_type: 'order.created', data: { n: 1 } });
    expect(ev.status, ev.text).toBe(201);
    let delivery: { uid: string; status: string; attempts: number } | undefined;
    await expect
      .poll(
        async () => {
          delivery = (await t.api('GET', `/eventdeliveries?eventId=${ev.body.data.uid}`)).body.data.content[0];
          return delivery?.status;
        },
        { timeout: 30_000, interval: 250 },
      )
      .toBe('Failure');
    return delivery!;
  };

  it("gives a delivery the attempts of the subscription that routed it, not the project's", async () => {
    const limited = await endpoint('/limited');
    const sub = await t.api('POST', '/subscriptions', {
      name: 'one retry',
      endpoint_id: limited,
      filter_config: { event_types: ['order.*'] },
      retry_config: { type: 'linear', duration: '1s', retry_count: 1 },
    });
    expect(sub.status, sub.text).toBe(201);
    expect(sub.body.data.retry_config).toEqual({ type: 'linear', duration: 1, retry_count: 1 });

    const plain = await endpoint('/plain');
    const [one, four] = await Promise.all([failedDelivery(limited), failedDelivery(plain)]);
    expect(one.attempts).toBe(2); // the first attempt and the subscription's one retry
    expect(four.attempts).toBe(4); // the project's three retries
    expect(rx.requests.filter((r) => r.path === '/limited')).toHaveLength(2);
  });

  it('keeps the settings a delivery began with when the subscription changes later', async () => {
    const ep = await endpoint('/kept');
    const sub = await t.api('POST', '/subscriptions', { name: 'kept', endpoint_id: ep, retry_config: { retry_count: 0 } });
    expect(sub.status, sub.text).toBe(201);
    const ev = await t.api('POST', '/events', { endpoint_id: ep, event_type: 'order.created', data: {} });
    expect(ev.status, ev.text).toBe(201);
    const changed = await t.api('PUT', `/subscriptions/${sub.body.data.uid}`, { retry_config: { retry_count: 2 } });
    expect(changed.status, changed.text).toBe(202);
    expect(changed.body.data.retry_config).toEqual({ retry_count: 2 });
    let d: { status: string; attempts: number } | undefined;
    await expect
      .poll(async () => {
        d = (await t.api('GET', `/eventdeliveries?eventId=${ev.body.data.uid}`)).body.data.content[0];
        return d?.status;
      }, { timeout: 20_000, interval: 250 })
      .toBe('Failure');
    expect(d!.attempts).toBe(1);
  });

  it('answers retry_config in the subscription, keeps it on an update that leaves it out, and clears it with null', async () => {
    const ep = await endpoint('/answers');
    const made = await t.api('POST', '/subscriptions', {
      name: 'answers',
      endpoint_id: ep,
      retry_config: { type: 'exponential', duration: '1h3m', retry_count: 5 },
    });
    expect(made.status, made.text).toBe(201);
    const id = made.body.data.uid;
    expect(made.body.data.retry_config).toEqual({ type: 'exponential', duration: 3780, retry_count: 5 });
    const renamed = await t.api('PUT', `/subscriptions/${id}`, { name: 'renamed' });
    expect(renamed.body.data.retry_config).toEqual({ type: 'exponential', duration: 3780, retry_count: 5 });
    // interval_seconds, Convoy's other spelling of the wait.
    const interval = await t.api('PUT', `/subscriptions/${id}`, { retry_config: { interval_seconds: 45 } });
    expect(interval.body.data.retry_config).toEqual({ duration: 45 });
    const cleared = await t.api('PUT', `/subscriptions/${id}`, { retry_config: null });
    expect(cleared.body.data.retry_config).toBeNull();
    expect((await t.api('GET', `/subscriptions/${id}`)).body.data.retry_config).toBeNull();
    // Go's zero values (type "", duration "") are absent; retry_count 0 is no retries.
    const zero = await t.api('POST', '/subscriptions', { name: 'zero', endpoint_id: ep, retry_config: { type: '', duration: '', retry_count: 0 } });
    expect(zero.status, zero.text).toBe(201);
    expect(zero.body.data.retry_config).toEqual({ retry_count: 0 });
    // From YAML too.
    expect((await t.api('GET', '/subscriptions/from-yaml')).body.data.retry_config).toEqual({ type: 'exponential', duration: 120, retry_count: 4 });
  });

  it.each([
    [{ retry_count: 51 }, 'retry_config.retry_count', 'must be an integer from 0 to 50'],
    [{ retry_count: -1 }, 'retry_config.retry_count', 'must be an integer from 0 to 50'],
    [{ retry_count: 'many' }, 'retry_config.retry_count', 'must be an integer from 0 to 50'],
    [{ type: 'fibonacci' }, 'retry_config.type', 'must be one of linear, exponential'],
    [{ duration: '10 parsecs' }, 'retry_config.duration', 'must be whole seconds from 1 to 86400'],
    [{ duration: '500ms' }, 'retry_config.duration', 'must be whole seconds from 1 to 86400'],
    [{ duration: '25h' }, 'retry_config.duration', 'must be whole seconds from 1 to 86400'],
    [{ duration: 0 }, 'retry_config.duration', 'must be whole seconds from 1 to 86400'],
    [{ interval_seconds: 1.5 }, 'retry_config.interval_seconds', 'must be an integer from 1 to 86400'],
    [{ duration: '10s', interval_seconds: 20 }, 'retry_config.interval_seconds', 'says 20 s where duration says 10 s'],
    [{ retry_count: 1, backoff: 2 }, 'retry_config.backoff', ''],
    ['1s', 'retry_config', 'must be a mapping'],
  ])('refuses retry_config %j, naming %s', async (retryConfig, field, message) => {
    const ep = await endpoint('/refused');
    const res = await t.api('POST', '/subscriptions', { name: 'bad', endpoint_id: ep, retry_config: retryConfig });
    expect(res.status, res.text).toBe(400);
    expect(res.text).toContain(field);
    expect(res.text).toContain(message);
  });
});
