/**
 * A delivery held by a dispatcher that dies is attempted again within 30 s (issue 14, item 1,
 * prepared by issue 12's dispatcher): the dispatcher keeps the heartbeat of every job in hand, and
 * pg-boss's supervisor hands out again a job whose heartbeat went stale.
 */
import type { ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../../harness/app.ts';
import { startDispatchProcess } from '../../harness/processes.ts';
import { startReceiver, type Receiver } from '../../harness/receiver.ts';

describe('dispatcher crash', () => {
  let t: TestApp;
  let rx: Receiver;
  const children: ChildProcess[] = [];
  beforeAll(async () => {
    rx = await startReceiver();
    // The API alone in this process: deliveries are the child dispatchers' to make.
    t = await startTestApp({ role: 'api' });
  });
  afterAll(async () => {
    for (const c of children) {
      if (c.exitCode === null && c.signalCode === null) {
        const exited = new Promise((r) => c.once('exit', r));
        c.kill('SIGTERM');
        await exited;
      }
    }
    await rx?.close();
    await t?.stop();
  });

  it('attempts a delivery again within 30 s after the process sending it is killed', async () => {
    let first = true;
    rx.answer(() => {
      // The first request is held until the dispatcher sending it is gone.
      const hang = first;
      first = false;
      return hang ? { status: 200, delayMs: 60_000 } : { status: 200, body: 'ok' };
    });
    const ep = await t.api('POST', '/endpoints', { name: 'crash', url: `${rx.url}/crash`, skip_ping_validation: true });
    expect(ep.status, ep.text).toBe(201);
    const a = await startDispatchProcess(t.configFile);
    children.push(a);
    const ev = await t.api('POST', '/events', { endpoint_id: ep.body.data.uid, event_type: 'crash.test', data: { n: 1 } });
    expect(ev.status, ev.text).toBe(201);
    await expect.poll(() => rx.requests.length, { timeout: 15_000 }).toBe(1);

    const exited = new Promise((r) => a.once('exit', r));
    a.kill('SIGKILL');
    await exited;
    const killedAt = Date.now();
    children.push(await startDispatchProcess(t.configFile));

    await expect.poll(() => rx.requests.length, { timeout: 40_000, interval: 250 }).toBe(2);
    const again = rx.requests[1]!;
    expect(again.at - killedAt).toBeLessThan(30_000);
    // The same delivery, so a receiver can tell the repeat by its id.
    expect(again.headers['x-wharf-delivery-id']).toBe(rx.requests[0]!.headers['x-wharf-delivery-id']);
    const delivery = async () => (await t.api('GET', `/eventdeliveries?eventId=${ev.body.data.uid}`)).body.data.content[0];
    await expect.poll(async () => (await delivery()).status, { timeout: 10_000 }).toBe('Success');
    // The first attempt was never recorded: the one that counts is the repeat.
    expect((await delivery()).attempts).toBe(1);
  });
});
