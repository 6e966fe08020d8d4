/**
 * How an endpoint takes its deliveries: a rate limit held across two Wharf processes sharing the
 * database, and form-encoded bodies signed as sent.
 */
import type { ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifyConvoySignature } from '../../src/sources/verifiers/convoy.ts';
import { startTestApp, type TestApp } from '../harness/app.ts';
import { startReceiver, type Receiver } from '../harness/receiver.ts';
import { eventually } from './connectors/conformance.ts';
import { startDispatchProcess } from '../harness/processes.ts';

describe('endpoint delivery settings', () => {
  let t: TestApp;
  let rx: Receiver;
  let second: ChildProcess | null = null;
  beforeAll(async () => {
    rx = await startReceiver();
    // Small batches, so both processes take part in the burst.
    t = await startTestApp({ dispatch: { batch_size: 4 } });
    second = await startDispatchProcess(t.configFile);
  });
  afterAll(async () => {
    if (second && second.exitCode === null) {
      const exited = new Promise((r) => second!.once('exit', r));
      second.kill('SIGTERM');
      await exited;
    }
    await t?.stop();
    await rx?.close();
  });

  it('holds an endpoint to rate_limit per rate_limit_duration across two worker processes, without spending retries', async () => {
    const ep = await t.api('POST', '/endpoints', { name: 'limited', url: `${rx.url}/limited`, rate_limit: 5, rate_limit_duration: 2 });
    expect(ep.status, ep.text).toBe(201);
    expect(ep.body.data).toMatchObject({ rate_limit: 5, rate_limit_duration: 2 });
    const id = ep.body.data.uid as string;
    const burst = await Promise.all(
      Array.from({ length: 20 }, (_, i) => t.api('POST', '/events', { endpoint_id: id, event_type: 'limited.burst', data: { i } })),
    );
    expect(burst.every((r) => r.status === 201)).toBe(true);
    const arrivals = () => rx.requests.filter((r) => r.path === '/limited').map((r) => r.at);
    await eventually(async () => arrivals().length, (n) => n === 20, 30_000, '20 deliveries');
    const at = arrivals().sort((a, b) => a - b);
    // Any 1.5 s (the 2 s window less up to 500 ms from grant to arrival, on a loaded machine)
    // holds at most 5 arrivals; a limit per process would let 10 through.
    for (const start of at) expect(at.filter((x) => x >= start && x < start + 1_500).length).toBeLessThanOrEqual(5);
    expect(at.at(-1)! - at[0]!).toBeGreaterThanOrEqual(5_500); // 20 at 5 per 2 s takes three more windows
    // Each outcome is recorded just after its answer arrives: wait for the last to be written.
    const deliveries = async () => (await t.api('GET', `/eventdeliveries?endpoint_id=${id}&per_page=100`)).body.data.content as { attempts: number; status: string }[];
    await eventually(deliveries, (list) => list.every((d) => d.status === 'Success'), 10_000, 'every outcome recorded');
    expect((await deliveries()).map((d) => d.attempts)).toEqual(Array(20).fill(1));
  });

  it('sends form-encoded bodies in bracket notation, signed over the bytes sent', async () => {
    const ep = await t.api('POST', '/endpoints', { name: 'form', url: `${rx.url}/form`, content_type: 'application/x-www-form-urlencoded' });
    expect(ep.status, ep.text).toBe(201);
    const secret = ep.body.data.secrets[0].value as string;
    const data = { order: { id: 7, note: 'a b&c' }, items: ['x', 'y'], paid: true };
    await t.api('POST', '/events', { endpoint_id: ep.body.data.uid, event_type: 'form.test', data });
    const got = await eventually(async () => rx.requests.find((r) => r.path === '/form'), (r) => r !== undefined, 15_000, 'the form delivery');
    expect(got!.headers['content-type']).toBe('application/x-www-form-urlencoded');
    const params = new URLSearchParams(got!.body.toString());
    expect([...params]).toEqual([
      ['order[id]', '7'],
      ['order[note]', 'a b&c'],
      ['items[0]', 'x'],
      ['items[1]', 'y'],
      ['paid', 'true'],
    ]);
    const check = verifyConvoySignature(String(got!.headers['x-convoy-signature']), got!.body, {
      secrets: [secret],
      hash: 'SHA256',
      encoding: 'hex',
      advanced: true,
      toleranceSeconds: 300,
    });
    expect(check).toEqual({ ok: true });
    expect((await t.api('POST', '/endpoints', { name: 'x', url: `${rx.url}/x`, content_type: 'text/xml' })).status).toBe(400);
  });
});
