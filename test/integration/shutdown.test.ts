import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { startReceiver, type Receiver } from '../harness/receiver.ts';
import { startTestApp, type TestApp } from '../harness/app.ts';

describe('graceful shutdown', () => {
  let t: TestApp;
  let rx: Receiver;

  beforeAll(async () => {
    rx = await startReceiver();
    t = await startTestApp({ kind: 'postgres' });
  });
  afterAll(async () => {
    await t?.stop();
    await rx?.close();
  });

  it('finishes and records a delivery that is in flight when stop is called', async () => {
    rx.answer(() => ({ status: 200, body: 'slow but fine', delayMs: 1_500 }));
    const ep = await t.api('POST', '/endpoints', { name: 'slow', url: `${rx.url}/slow` });
    const ev = await t.api('POST', '/events', { endpoint_id: ep.body.data.uid, event_type: 'x', data: { n: 1 } });
    expect(ev.status).toBe(201);
    await expect.poll(() => rx.requests.length, { timeout: 10_000 }).toBe(1);

    // The receiver is still holding the request: stop must wait for it and record the answer.
    await t.app.stop();
    const client = new pg.Client({ connectionString: t.db.url });
    await client.connect();
    try {
      const { rows } = await client.query(
        `SELECT d.status, d.attempts, a.status_code, a.response_body FROM deliveries d
         JOIN attempts a ON a.delivery_id = d.id WHERE d.event_id = $1`,
        [ev.body.data.uid],
      );
      expect(rows).toEqual([{ status: 'success', attempts: 1, status_code: 200, response_body: 'slow but fine' }]);
    } finally {
      await client.end();
    }
  });
});
