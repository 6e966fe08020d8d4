/** The egress guard as a user meets it: deliveries to addresses the config does not allow fail. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../harness/app.ts';
import { startReceiver, type Receiver } from '../harness/receiver.ts';
import { eventually } from './connectors/conformance.ts';

describe('egress guard', () => {
  let t: TestApp;
  let rx: Receiver;
  beforeAll(async () => {
    rx = await startReceiver();
    // Loopback is blocked by default; the project's retries are off so the failure is final.
    t = await startTestApp({ egress: { allow: [], block: [] }, projects: [{ id: 'default', retry: { strategy: 'linear', duration: 1, retry_count: 0 } }] });
  });
  afterAll(async () => {
    await t?.stop();
    await rx?.close();
  });

  it('refuses a delivery to loopback (by IP and by name) with WHARF_ERR_EGRESS_BLOCKED, and sends nothing', async () => {
    const port = new URL(rx.url).port;
    for (const host of ['127.0.0.1', 'localhost']) {
      // The reachability ping meets the guard first: the endpoint is refused at save, naming why.
      const refused = await t.api('POST', '/endpoints', { name: host, url: `http://${host}:${port}/hook` });
      expect(refused.status).toBe(400);
      expect(refused.body.data.field).toBe('url');
      expect(refused.body.message).toMatch(/loopback.*egress\.allow/);
      const ep = await t.api('POST', '/endpoints', { name: host, url: `http://${host}:${port}/hook`, skip_ping_validation: true });
      expect(ep.status, ep.text).toBe(201);
      const ev = await t.api('POST', '/events', { endpoint_id: ep.body.data.uid, event_type: 'egress.test', data: {} });
      expect(ev.status).toBe(201);
      const delivery = await eventually(
        async () => (await t.api('GET', `/eventdeliveries?endpoint_id=${ep.body.data.uid}`)).body.data.content[0],
        (d) => d?.status === 'Failure',
        15_000,
        `the ${host} delivery to fail`,
      );
      const attempts = await t.api('GET', `/eventdeliveries/${delivery.uid}/deliveryattempts`);
      expect(attempts.body.data[0].error_code).toBe('WHARF_ERR_EGRESS_BLOCKED');
      expect(attempts.body.data[0].error).toMatch(/loopback/);
    }
    expect(rx.requests).toHaveLength(0);
    expect(rx.pings).toHaveLength(0);
  });
});
