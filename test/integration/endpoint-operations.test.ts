/**
 * Endpoint operations beyond create/read: zero-downtime secret rotation (both signature schemes),
 * bulk onboarding (all or nothing), and batch retry of failed and discarded deliveries.
 */
import { Webhook } from 'standardwebhooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifyConvoySignature } from '../../src/sources/verifiers/convoy.ts';
import { startTestApp, type TestApp } from '../harness/app.ts';
import { startReceiver, type Receiver } from '../harness/receiver.ts';
import { eventually } from './connectors/conformance.ts';

describe('endpoint operations', () => {
  let t: TestApp;
  let rx: Receiver;
  beforeAll(async () => {
    rx = await startReceiver();
    t = await startTestApp({
      projects: [
        { id: 'default', retry: { strategy: 'linear', duration: 1, retry_count: 0 } },
        { id: 'sw', signature: { scheme: 'standard-webhooks' }, retry: { strategy: 'linear', duration: 1, retry_count: 0 } },
        { id: 'brk', retry: { strategy: 'linear', duration: 1, retry_count: 0 }, breaker: { consecutive_failures: 3, failure_rate: 0 } },
        { id: 'sm', retry: { strategy: 'linear', duration: 1, retry_count: 1 }, breaker: { consecutive_failures: 3, failure_rate: 0 } },
        // Only the failure-rate rule: trips at 50 % of at least 4 attempts in 60 s.
        { id: 'rate', retry: { strategy: 'linear', duration: 1, retry_count: 0 }, breaker: { consecutive_failures: 0, failure_rate: 50, minimum_requests: 4, window_seconds: 60 } },
      ],
    });
  });
  afterAll(async () => {
    await t?.stop();
    await rx?.close();
  });

  const endpoint = async (path: string, project = 'default', extra: Record<string, unknown> = {}) => {
    const res = await t.api('POST', '/endpoints', { name: path, url: `${rx.url}/${path}`, ...extra }, project);
    expect(res.status, res.text).toBe(201);
    return { id: res.body.data.uid as string, secret: res.body.data.secrets[0].value as string };
  };
  const send = async (endpointId: string, path: string, project = 'default', data: unknown = { n: Math.random() }) => {
    const before = rx.requests.filter((r) => r.path === `/${path}`).length;
    const res = await t.api('POST', '/events', { endpoint_id: endpointId, event_type: 'op.test', data }, project);
    expect(res.status, res.text).toBe(201);
    await eventually(async () => rx.requests.filter((r) => r.path === `/${path}`).length, (n) => n > before, 15_000, 'a delivery');
    return rx.requests.filter((r) => r.path === `/${path}`).at(-1)!;
  };
  const now = () => Math.floor(Date.now() / 1000);
  const convoyOk = (header: string, body: Buffer, secret: string) =>
    verifyConvoySignature(header, body, { secrets: [secret], hash: 'SHA256', encoding: 'hex', advanced: true, toleranceSeconds: 300, now: now() }).ok;

  it('expire_secret: both secrets sign until the old one expires, then only the new one (Convoy advanced)', async () => {
    const { id, secret: old } = await endpoint('rotate');
    const first = await send(id, 'rotate');
    expect(String(first.headers['x-convoy-signature']).match(/v1=/g)).toHaveLength(1);

    const rotated = await t.api('PUT', `/endpoints/${id}/expire_secret`, { expiration: 2 });
    expect(rotated.status, rotated.text).toBe(200);
    const fresh = rotated.body.data.secrets[0].value as string;
    expect(fresh).toBeTruthy();
    expect(fresh).not.toBe(old);
    expect(rotated.body.data.secrets).toHaveLength(2);
    expect(rotated.body.data.secrets[1].value).toBeUndefined(); // only the new one, and only now
    expect((await t.api('GET', `/endpoints/${id}`)).text).not.toContain(fresh);

    const during = await send(id, 'rotate');
    const header = String(during.headers['x-convoy-signature']);
    expect(header.match(/v1=/g)).toHaveLength(2);
    expect(convoyOk(header, during.body, old)).toBe(true);
    expect(convoyOk(header, during.body, fresh)).toBe(true);

    await new Promise((r) => setTimeout(r, 2_500));
    const after = await send(id, 'rotate');
    const last = String(after.headers['x-convoy-signature']);
    expect(last.match(/v1=/g)).toHaveLength(1);
    expect(convoyOk(last, after.body, fresh)).toBe(true);
    expect(convoyOk(last, after.body, old)).toBe(false);
  });

  it('expire_secret: Standard Webhooks deliveries verify with either secret while both live; a given secret is used', async () => {
    const { id, secret: old } = await endpoint('rotate-sw', 'sw');
    const chosen = `whsec_${Buffer.from('a-chosen-rotation-secret-32bytes').toString('base64')}`;
    const rotated = await t.api('PUT', `/endpoints/${id}/expire_secret`, { expiration: 60, secret: chosen }, 'sw');
    expect(rotated.status, rotated.text).toBe(200);
    expect(rotated.body.data.secrets[0].value).toBe(chosen);
    const got = await send(id, 'rotate-sw', 'sw');
    const headers = Object.fromEntries(Object.entries(got.headers).map(([k, v]) => [k, String(v)]));
    expect(headers['webhook-signature']!.split(' ')).toHaveLength(2);
    for (const secret of [old, chosen]) expect(() => new Webhook(secret).verify(got.body.toString(), headers)).not.toThrow();
  });

  it('expire_secret refuses what it cannot use', async () => {
    const { id } = await endpoint('rotate-bad');
    const cases: [unknown, string][] = [
      [{ expiration: 7 * 86_400 + 1 }, 'expiration: must be an integer from 0 to 604800'],
      [{ expiration: 'soon' }, 'expiration: must be an integer'],
      [{ secret: 'x'.repeat(1025) }, 'secret: must be at most 1024 characters'],
      [{ colour: 'red' }, 'colour: unknown field'],
    ];
    for (const [body, message] of cases) {
      const res = await t.api('PUT', `/endpoints/${id}/expire_secret`, body);
      expect(res.status).toBe(400);
      expect(res.body.message).toContain(message);
    }
    expect((await t.api('PUT', '/endpoints/nope/expire_secret', {})).status).toBe(404);
  });

  it('bulk: creates every endpoint with its subscriptions in one go, or none with per-item errors', async () => {
    const ok = await t.api('POST', '/endpoints/bulk', {
      endpoints: [
        { name: 'b1', url: `${rx.url}/b1`, owner_id: 'tenant-9', subscriptions: [{ filter_config: { event_types: ['a.*'] } }] },
        { name: 'b2', url: `${rx.url}/b2`, owner_id: 'tenant-9' },
      ],
    });
    expect(ok.status, ok.text).toBe(201);
    expect(ok.body.data.content).toHaveLength(2);
    expect(ok.body.data.content.every((e: { secrets: { value?: string }[] }) => typeof e.secrets[0]!.value === 'string')).toBe(true);
    const subs = await t.api('GET', `/subscriptions?endpoint_id=${ok.body.data.content[0].uid}`);
    expect(subs.body.data.content.map((s: { filter_config: { event_types: string[] } }) => s.filter_config.event_types)).toEqual([['a.*']]);

    const before = (await t.api('GET', '/endpoints?per_page=100')).body.data.content.length;
    const bad = await t.api('POST', '/endpoints/bulk', {
      endpoints: [
        { name: 'fine', url: `${rx.url}/fine` },
        { name: 'no-url' },
        { name: 'bad-sub', url: `${rx.url}/x`, subscriptions: [{ filter_config: { event_types: [] } }] },
      ],
    });
    expect(bad.status).toBe(400);
    expect(bad.body.data.errors).toEqual([
      { index: 1, field: 'endpoints[1].url', message: 'endpoints[1]: url: is required' },
      {
        index: 2,
        field: 'endpoints[2].subscriptions[0].filter_config.event_types',
        message: 'endpoints[2]: subscriptions[0].filter_config.event_types: must name at least one event type (or "*")',
      },
    ]);
    expect((await t.api('GET', '/endpoints?per_page=100')).body.data.content.length).toBe(before);
  });

  it('batchretry: retries the failed and discarded deliveries that match, in the background, and says how many', async () => {
    const { id } = await endpoint('flaky');
    rx.answer((r) => (r.path === '/flaky' ? { status: 500 } : { status: 200 }));
    try {
      for (let i = 0; i < 3; i++) await t.api('POST', '/events', { endpoint_id: id, event_type: 'flaky.one', data: { i } });
      const statuses = async () =>
        (await t.api('GET', `/eventdeliveries?endpoint_id=${id}&per_page=100`)).body.data.content.map((d: { status: string }) => d.status).sort();
      await eventually(statuses, (s) => s.length === 3 && s.every((x: string) => x === 'Failure'), 20_000, 'three failures');
      // A paused endpoint's event is discarded; it is retried too once the endpoint is back.
      await t.api('PUT', `/endpoints/${id}/pause`);
      await t.api('POST', '/events', { endpoint_id: id, event_type: 'flaky.two', data: { i: 3 } });
      await t.api('PUT', `/endpoints/${id}/pause`);
      expect(await statuses()).toEqual(['Discarded', 'Failure', 'Failure', 'Failure']);
    } finally {
      rx.answer(() => ({ status: 200 }));
    }
    const only = await t.api('POST', '/eventdeliveries/batchretry', { endpoint_id: id, event_type: 'flaky.two' });
    expect(only.status, only.text).toBe(200);
    expect(only.body.data.queued).toBe(1);
    const rows = async () => (await t.api('GET', `/eventdeliveries?endpoint_id=${id}&per_page=100`)).body.data.content as { status: string; event_type: string }[];
    await eventually(rows, (r) => r.find((d) => d.event_type === 'flaky.two')?.status === 'Success', 20_000, 'the discarded one retried');
    expect((await rows()).filter((d) => d.status === 'Failure')).toHaveLength(3); // the filter held
    const all = await t.api('POST', '/eventdeliveries/batchretry', { endpoint_id: id, status: 'failure,discarded' });
    expect(all.body.data.queued).toBe(3);
    await eventually(
      async () => (await t.api('GET', `/eventdeliveries?endpoint_id=${id}&per_page=100`)).body.data.content.map((d: { status: string }) => d.status),
      (s) => s.length === 4 && s.every((x: string) => x === 'Success'),
      30_000,
      'every delivery retried to success',
    );
    expect((await t.api('POST', '/eventdeliveries/batchretry', { status: 'scheduled' })).status).toBe(400);
    expect((await t.api('POST', '/eventdeliveries/batchretry', { start_date: 'yesterday' })).status).toBe(400);
  });

  it('a success on a pending endpoint makes it active, though the failure rate that tripped it is still in the window', async () => {
    rx.answer((r) => (r.path === '/rated' ? { status: 500 } : { status: 200 }));
    const { id } = await endpoint('rated', 'rate', { skip_ping_validation: true });
    const status = async () => (await t.api('GET', `/endpoints/${id}`, undefined, 'rate')).body.data.status as string;
    const fail4 = async (tag: string) => {
      for (let i = 0; i < 4; i++) await t.api('POST', '/events', { endpoint_id: id, event_type: `rated.${tag}`, data: { i } }, 'rate');
      await eventually(status, (s) => s === 'inactive', 15_000, 'the failure-rate rule to trip');
    };
    await fail4('one');
    rx.answer(() => ({ status: 200 }));
    // A resend: pending, then its success makes the endpoint active, where the failure-rate rule
    // (4 failures of 5 attempts in the window) used to trip it again at once.
    const failed = (await t.api('GET', `/eventdeliveries?endpoint_id=${id}&status=failure`, undefined, 'rate')).body.data.content;
    expect(failed.length).toBeGreaterThanOrEqual(1);
    expect((await t.api('PUT', `/eventdeliveries/${failed[0].id}/resend`, undefined, 'rate')).status).toBeLessThan(300);
    await eventually(status, (s) => s === 'active', 15_000, 'active after a successful resend');
    // It stays active: the next event goes out and nothing trips it.
    await send(id, 'rated', 'rate');
    expect(await status()).toBe('active');

    // The same through a batch retry.
    rx.answer((r) => (r.path === '/rated' ? { status: 500 } : { status: 200 }));
    await fail4('two');
    rx.answer(() => ({ status: 200 }));
    expect((await t.api('POST', '/eventdeliveries/batchretry', { endpoint_id: id }, 'rate')).status).toBeLessThan(300);
    await eventually(status, (s) => s === 'active', 15_000, 'active after a successful batch retry');
    await send(id, 'rated', 'rate');
    expect(await status()).toBe('active');
  });

  it('410 Gone disables at once; resending a discarded delivery makes it pending, then active or inactive by the answer', async () => {
    const { id } = await endpoint('gone');
    const status = async () => (await t.api('GET', `/endpoints/${id}`)).body.data.status as string;
    const deliveries = async () =>
      (await t.api('GET', `/eventdeliveries?endpoint_id=${id}&per_page=100`)).body.data.content as { uid: string; status: string }[];
    rx.answer((r) => (r.path === '/gone' ? { status: 410 } : { status: 200 }));
    try {
      await send(id, 'gone');
      await eventually(status, (s) => s === 'inactive', 10_000, 'inactive after 410');
      // While inactive, new events are kept as discarded deliveries and nothing is sent.
      const before = rx.requests.filter((r) => r.path === '/gone').length;
      await t.api('POST', '/events', { endpoint_id: id, event_type: 'op.test', data: { late: true } });
      await eventually(deliveries, (d) => d.some((x) => x.status === 'Discarded'), 10_000, 'a discarded delivery');
      expect(rx.requests.filter((r) => r.path === '/gone').length).toBe(before);

      // Still gone: the resend makes it pending, the failure makes it inactive again.
      const discarded = (await deliveries()).find((d) => d.status === 'Discarded')!;
      expect((await t.api('PUT', `/eventdeliveries/${discarded.uid}/resend`)).status).toBe(200);
      await eventually(status, (s) => s === 'inactive', 10_000, 'inactive again');
      expect(rx.requests.filter((r) => r.path === '/gone').length).toBe(before + 1);
    } finally {
      rx.answer(() => ({ status: 200 }));
    }
    // Back: the resend succeeds and the endpoint is active.
    const failed = (await deliveries()).find((d) => d.status === 'Failure')!;
    expect((await t.api('PUT', `/eventdeliveries/${failed.uid}/resend`)).status).toBe(200);
    expect(['pending', 'active']).toContain(await status()); // pending until the worker has its answer
    await eventually(status, (s) => s === 'active', 10_000, 'active after a success');
  });

  it('the circuit breaker disables an endpoint after the project\'s consecutive failures; activate starts afresh', async () => {
    const { id } = await endpoint('breaker', 'brk');
    const status = async () => (await t.api('GET', `/endpoints/${id}`, undefined, 'brk')).body.data.status as string;
    rx.answer((r) => (r.path === '/breaker' ? { status: 500 } : { status: 200 }));
    try {
      for (let i = 0; i < 2; i++) await send(id, 'breaker', 'brk');
      await new Promise((r) => setTimeout(r, 300));
      expect(await status()).toBe('active'); // two failures: below the threshold
      await send(id, 'breaker', 'brk');
      await eventually(status, (s) => s === 'inactive', 10_000, 'inactive after the third failure');
      const before = rx.requests.filter((r) => r.path === '/breaker').length;
      await t.api('POST', '/events', { endpoint_id: id, event_type: 'op.test', data: {} }, 'brk');
      await new Promise((r) => setTimeout(r, 700));
      expect(rx.requests.filter((r) => r.path === '/breaker').length).toBe(before);

      // Activated, the counters start over: one more failure does not disable it again.
      expect((await t.api('POST', `/endpoints/${id}/activate`, undefined, 'brk')).status).toBe(202);
      await send(id, 'breaker', 'brk');
      await new Promise((r) => setTimeout(r, 300));
      expect(await status()).toBe('active');
    } finally {
      rx.answer(() => ({ status: 200 }));
    }
  });

  it('the state machine end to end: 429 Retry-After waited out, hangs trip the breaker, inactive and paused discard, batch retry brings it back', async () => {
    const { id } = await endpoint('sm', 'sm', { http_timeout: 1 });
    const api = (method: string, path: string, body?: unknown) => t.api(method, path, body, 'sm');
    const status = async () => (await api('GET', `/endpoints/${id}`)).body.data.status as string;
    const deliveryOf = async (eventId: string) => (await api('GET', `/eventdeliveries?event_id=${eventId}`)).body.data.content[0] as { uid: string; status: string };
    const settled = (eventId: string, wanted: string) => eventually(() => deliveryOf(eventId), (d) => d?.status === wanted, 15_000, `delivery ${wanted}`);
    const event = async () => (await api('POST', '/events', { endpoint_id: id, event_type: 'sm.test', data: { at: Date.now() } })).body.data.uid as string;
    const hits = () => rx.requests.filter((r) => r.path === '/sm');
    let mode: 'ok' | 'hang' | 'busy' = 'busy';
    rx.answer((r) => {
      if (r.path !== '/sm') return { status: 200 };
      if (mode === 'hang') return { status: 200, delayMs: 2_500 };
      if (mode === 'busy') {
        mode = 'ok';
        return { status: 429, headers: { 'retry-after': '2' } };
      }
      return { status: 200 };
    });
    try {
      // 429 with Retry-After: 2 — the retry waits 2 s (the schedule alone says 1 s) and succeeds.
      const first = await event();
      await settled(first, 'Success');
      const [busy, ok] = hits().slice(-2);
      expect(ok!.at - busy!.at).toBeGreaterThanOrEqual(1_900);
      expect(await status()).toBe('active');

      // An endpoint that hangs past http_timeout fails; the third failure in a row disables it.
      mode = 'hang';
      const hung = await event();
      await settled(hung, 'Failure'); // two timed-out attempts
      const attempts = (await api('GET', `/eventdeliveries/${(await deliveryOf(hung)).uid}/deliveryattempts`)).body.data;
      expect(attempts.map((a: { error_code: string }) => a.error_code)).toEqual(['WHARF_ERR_TIMEOUT', 'WHARF_ERR_TIMEOUT']);
      expect(await status()).toBe('active');
      const third = await event();
      await eventually(status, (s) => s === 'inactive', 15_000, 'inactive after the third failure');
      await settled(third, 'Discarded'); // its retry finds the endpoint disabled

      // While inactive, new deliveries are discarded without a request.
      mode = 'ok';
      const sent = hits().length;
      const whileInactive = await event();
      await settled(whileInactive, 'Discarded');
      expect(hits().length).toBe(sent);

      // Batch retry: the endpoint is tried again (pending) and every discarded delivery goes out.
      const retried = await api('POST', '/eventdeliveries/batchretry', { endpoint_id: id, status: 'discarded' });
      expect(retried.body.data.queued).toBe(2);
      await eventually(status, (s) => s === 'active', 15_000, 'active after the retried deliveries succeed');
      await settled(third, 'Success');
      await settled(whileInactive, 'Success');

      // Paused discards too, until it is unpaused.
      expect((await api('PUT', `/endpoints/${id}/pause`)).body.data.status).toBe('paused');
      const whilePaused = await event();
      await settled(whilePaused, 'Discarded');
      expect((await api('PUT', `/endpoints/${id}/pause`)).body.data.status).toBe('active');
      const after = await event();
      await settled(after, 'Success');
    } finally {
      rx.answer(() => ({ status: 200 }));
    }
  }, 60_000);
});
