/**
 * One endpoint that never answers must not hold back anyone else (issue 12, item 4): every
 * delivery is sent and recorded on its own, an endpoint has at most `endpoint_concurrency`
 * deliveries in flight, and a project at most `project_concurrency`, so a hung receiver keeps to
 * its own share and a healthy endpoint's deliveries arrive in well under a second.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../../harness/app.ts';
import { startReceiver, type Receiver } from '../../harness/receiver.ts';
import { heldBack } from '../../harness/deliveries.ts';

const HANG_MS = 25_000;

async function endpoint(t: TestApp, project: string, name: string, url: string): Promise<string> {
  const res = await t.api('POST', '/endpoints', { name, url, http_timeout: 30, skip_ping_validation: true }, project);
  expect(res.status, res.text).toBe(201);
  return res.body.data.uid as string;
}

async function post(t: TestApp, project: string, endpointId: string, n: number, tag: string): Promise<Map<number, number>> {
  const sentAt = new Map<number, number>();
  for (let i = 0; i < n; i++) {
    sentAt.set(i, Date.now());
    const res = await t.api('POST', '/events', { endpoint_id: endpointId, event_type: 'isolation.test', data: { tag, i } }, project);
    expect(res.status, res.text).toBe(201);
  }
  return sentAt;
}

/** Milliseconds from each POST to its arrival at the receiver. */
function latencies(rx: Receiver, sentAt: Map<number, number>): number[] {
  return rx.requests.map((r) => {
    // The body is the event's data, as Convoy sends it.
    const { i } = JSON.parse(r.body.toString()) as { i: number };
    return r.at - sentAt.get(i)!;
  });
}

describe('dispatch isolation', () => {
  const cleanup: (() => Promise<void>)[] = [];
  afterEach(async () => {
    // Receivers first: closing the hung one ends its requests, so Wharf's stop does not wait them out.
    for (const c of cleanup.splice(0).reverse()) await c();
  });

  it('keeps a hung endpoint to its own share: a healthy endpoint is served in under a second', async () => {
    const t = await startTestApp({ dispatch: { batch_size: 10, max_in_flight: 16, endpoint_concurrency: 4 } });
    cleanup.push(() => t.stop());
    const hung = await startReceiver();
    const healthy = await startReceiver();
    cleanup.push(() => healthy.close(), () => hung.close());
    hung.answer(() => ({ status: 200, delayMs: HANG_MS }));

    const slow = await endpoint(t, 'default', 'hung', `${hung.url}/hook`);
    const fast = await endpoint(t, 'default', 'healthy', `${healthy.url}/hook`);
    await post(t, 'default', slow, 12, 'hung');
    // The hung endpoint takes its four slots and no more, however many deliveries wait for it.
    await expect.poll(() => hung.requests.length, { timeout: 10_000 }).toBe(4);

    const sentAt = await post(t, 'default', fast, 5, 'healthy');
    await expect.poll(() => healthy.requests.length, { timeout: 10_000 }).toBe(5);
    expect(Math.max(...latencies(healthy, sentAt))).toBeLessThan(1_000);
    expect(hung.requests.length).toBe(4);

    // The healthy deliveries were recorded as soon as they were answered, not with the hung batch
    // (25 s away): a record follows its answer by a moment, which a loaded machine stretches.
    const recorded = async () => (await t.api('GET', `/eventdeliveries?endpoint_id=${fast}&status=success`)).body.data.content;
    await expect.poll(recorded, { timeout: 5_000 }).toHaveLength(5);

    // The hung endpoint's queued deliveries waited a second for its share, then went back as the
    // same attempt rather than hold their slots for its 25 s.
    await expect.poll(() => heldBack(t, 'endpoint_share'), { timeout: 10_000 }).toBeGreaterThan(0);
    expect(hung.requests.length).toBe(4);
  });

  it("keeps one project's hung endpoints to the project's share: another project is served", async () => {
    const t = await startTestApp({
      projects: [{ id: 'noisy', name: 'Noisy' }, { id: 'quiet', name: 'Quiet' }],
      dispatch: { batch_size: 20, max_in_flight: 12, endpoint_concurrency: 4, project_concurrency: 6 },
    });
    cleanup.push(() => t.stop());
    const hung = await startReceiver();
    const healthy = await startReceiver();
    cleanup.push(() => healthy.close(), () => hung.close());
    hung.answer(() => ({ status: 200, delayMs: HANG_MS }));

    // Three endpoints of one tenant, all hanging: 3 × 4 would be every slot without the project's share.
    for (const name of ['a', 'b', 'c']) {
      const id = await endpoint(t, 'noisy', name, `${hung.url}/${name}`);
      await post(t, 'noisy', id, 6, name);
    }
    await expect.poll(() => hung.requests.length, { timeout: 10_000 }).toBe(6);

    const fast = await endpoint(t, 'quiet', 'healthy', `${healthy.url}/hook`);
    const sentAt = await post(t, 'quiet', fast, 5, 'quiet');
    await expect.poll(() => healthy.requests.length, { timeout: 10_000 }).toBe(5);
    expect(Math.max(...latencies(healthy, sentAt))).toBeLessThan(1_000);
    // Held-back deliveries wait as the same attempt: none of them was counted as tried.
    expect(hung.requests.length).toBe(6);
    const waiting = await t.api('GET', '/eventdeliveries?status=scheduled&per_page=100', undefined, 'noisy');
    const rows = waiting.body.data.content as { attempts: number }[];
    expect(rows).toHaveLength(18);
    expect(rows.map((d) => d.attempts)).toEqual(Array(18).fill(0));
  });
});
