/**
 * One pg-boss job carries up to MAX_DELIVERIES_PER_JOB deliveries of one endpoint (issue 15), and
 * no more than it sends at once (the endpoint's share of a job, below endpoint_concurrency 128):
 * how they are packed, that `endpoint_concurrency` still caps deliveries (not jobs) in flight, that
 * a job queued by an older Wharf (one delivery, `{d, a}`) is still delivered, and that a job handed
 * out again after part of it was recorded sends only the rest.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../../harness/app.ts';
import { countOpen, startReceiver } from '../../harness/receiver.ts';
import { endpoint, inputs, jobs } from '../../harness/deliveries.ts';
import { ingestInTransaction } from '../../../src/ingest/persist.ts';
import { withTransaction } from '../../../src/store/pool.ts';
import { DELIVERY_QUEUE, MAX_DELIVERIES_PER_JOB, endpointShares, enqueueDeliveries, insertJobs } from '../../../src/dispatch/queue.ts';
import { refKey } from '../../../src/store/endpoints.ts';
import { uuidv7 } from '../../../src/core/ids.ts';

/** Stores n events for the endpoint in one transaction (as one ingest group commit would). */
async function ingest(t: TestApp, endpointId: string, n: number, tag: string): Promise<void> {
  await withTransaction(t.app.pool, (db) => ingestInTransaction(t.app.boss, db, inputs(endpointId, n, tag)));
}

describe('packed delivery jobs', () => {
  const cleanup: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const c of cleanup.splice(0).reverse()) await c();
  });

  it('packs the deliveries of one endpoint due together into jobs of at most MAX_DELIVERIES_PER_JOB', async () => {
    // The API alone: nothing fetches the jobs, so they can be counted as they were queued.
    const t = await startTestApp({ role: 'api' });
    cleanup.push(() => t.stop());
    const a = await endpoint(t, 'a', 'http://127.0.0.1:9/a');
    const b = await endpoint(t, 'b', 'http://127.0.0.1:9/b');
    await withTransaction(t.app.pool, (db) => ingestInTransaction(t.app.boss, db, [...inputs(a, 43, 'a'), ...inputs(b, 5, 'b')]));

    const keyA = refKey({ project_id: 'default', endpoint_id: a });
    const keyB = refKey({ project_id: 'default', endpoint_id: b });
    expect(MAX_DELIVERIES_PER_JOB).toBe(8);
    const want = [...Array<string>(5).fill(`${keyA} 8`), `${keyA} 3`, `${keyB} 5`].sort();
    expect((await jobs(t)).map((j) => `${j.group_id} ${j.n}`).sort()).toEqual(want);

    // Deliveries due at different moments get jobs of their own, whatever their endpoint.
    await t.app.pool.query(`DELETE FROM pgboss.job WHERE name = $1`, [DELIVERY_QUEUE]);
    await withTransaction(t.app.pool, (db) =>
      enqueueDeliveries(t.app.boss, db, [
        { delivery_id: uuidv7(), attempt: 2, endpoint: keyA, delaySeconds: 30 },
        { delivery_id: uuidv7(), attempt: 3, endpoint: keyA, delaySeconds: 30 },
        { delivery_id: uuidv7(), attempt: 1, endpoint: keyA },
        { delivery_id: uuidv7(), attempt: 1, endpoint: keyB, delaySeconds: 30 },
      ]),
    );
    const { rows } = await t.app.pool.query<{ group_id: string; ds: [string, number][]; later: boolean }>(
      `SELECT group_id, data->'ds' AS ds, start_after > now() + interval '20 seconds' AS later FROM pgboss.job WHERE name = $1`,
      [DELIVERY_QUEUE],
    );
    expect(rows.map((r) => `${r.group_id === keyA ? 'a' : 'b'} ${r.ds.map(([, n]) => n).join(',')} ${r.later ? 'later' : 'now'}`).sort()).toEqual(['a 1 now', 'a 2,3 later', 'b 1 later']);
  });

  it('keeps endpoint_concurrency a cap on deliveries in flight, with jobs of many deliveries', async () => {
    // 48 → 16 jobs of the endpoint at once, each sending 3 of its deliveries at a time.
    expect(endpointShares(48)).toEqual({ jobs: 16, perJob: 3 });
    const t = await startTestApp({ dispatch: { endpoint_concurrency: 48 } });
    const rx = await startReceiver();
    cleanup.push(() => t.stop(), () => rx.close());
    const seen = countOpen(rx, 300);
    const ep = await endpoint(t, 'capped', `${rx.url}/capped`);
    // 200 deliveries in jobs of the share a job sends at once (3): without pg-boss's cap on jobs,
    // all 67 would go at once.
    await ingest(t, ep, 200, 'capped');
    expect((await jobs(t)).map((j) => j.n)).toEqual([...Array<number>(66).fill(3), 2]);
    await expect.poll(() => rx.requests.length, { timeout: 30_000 }).toBe(200);
    expect(seen.max()).toBeLessThanOrEqual(48);
    // The packed jobs did send side by side, towards the cap.
    expect(seen.max()).toBeGreaterThan(2 * MAX_DELIVERIES_PER_JOB);
    await expect.poll(async () => (await jobs(t)).length, { timeout: 5_000 }).toBe(0);
  });

  it('queues jobs of the share a job sends at once: below endpoint_concurrency 32, one delivery each', async () => {
    // Below 32, every job sends one delivery at a time and pg-boss lets endpoint_concurrency jobs run.
    expect(endpointShares(3)).toEqual({ jobs: 3, perJob: 1 });
    const t = await startTestApp({ dispatch: { endpoint_concurrency: 3 } });
    const rx = await startReceiver();
    cleanup.push(() => t.stop(), () => rx.close());
    const seen = countOpen(rx, 150);
    const ep = await endpoint(t, 'low', `${rx.url}/low`);
    // Two would-be jobs of 8 and one of 4 (ingested without a dispatcher's handoff): jobs of 8
    // would send one delivery of each at a time, three at once only while three jobs are left.
    await withTransaction(t.app.pool, async (db) => {
      await ingestInTransaction(t.app.boss, db, inputs(ep, 20, 'low'));
      const { rows } = await db.query<{ n: number }>(`SELECT jsonb_array_length(data->'ds') AS n FROM pgboss.job WHERE name = $1`, [DELIVERY_QUEUE]);
      expect(rows.map((r) => r.n)).toEqual(Array<number>(20).fill(1));
    });
    await expect.poll(() => rx.requests.length, { timeout: 20_000 }).toBe(20);
    expect(seen.max()).toBe(3);
    const successes = async () => (await t.api('GET', `/eventdeliveries?endpoint_id=${ep}&status=success&per_page=50`)).body.data.content.length;
    await expect.poll(successes, { timeout: 5_000 }).toBe(20);
    await expect.poll(async () => (await jobs(t)).length, { timeout: 5_000 }).toBe(0);
  });

  it('sends a job of more deliveries than endpoint_concurrency (an older Wharf\'s) a few at a time', async () => {
    const t = await startTestApp({ dispatch: { endpoint_concurrency: 3 } });
    const rx = await startReceiver();
    cleanup.push(() => t.stop(), () => rx.close());
    const seen = countOpen(rx, 150);
    const ep = await endpoint(t, 'low', `${rx.url}/low`);
    const group = refKey({ project_id: 'default', endpoint_id: ep });
    // Its deliveries' jobs replaced, in the same transaction, by two of MAX_DELIVERIES_PER_JOB.
    await withTransaction(t.app.pool, async (db) => {
      await ingestInTransaction(t.app.boss, db, inputs(ep, 16, 'big'));
      await db.query(`DELETE FROM pgboss.job WHERE name = $1`, [DELIVERY_QUEUE]);
      const { rows } = await db.query<{ id: string }>(`SELECT id FROM deliveries WHERE endpoint_id = $1 ORDER BY id`, [ep]);
      const ds = rows.map((r): [string, number] => [r.id, 1]);
      await insertJobs(t.app.boss, db, DELIVERY_QUEUE, [0, 8].map((i) => ({ data: { ds: ds.slice(i, i + MAX_DELIVERIES_PER_JOB) }, group })));
    });
    await expect.poll(() => rx.requests.length, { timeout: 20_000 }).toBe(16);
    // Two jobs, one delivery of each at a time.
    expect(seen.max()).toBe(2);
    await expect.poll(async () => (await jobs(t)).length, { timeout: 5_000 }).toBe(0);
  });

  it('delivers a job queued by an older Wharf, one delivery as {d, a}', async () => {
    const t = await startTestApp();
    const rx = await startReceiver();
    cleanup.push(() => t.stop(), () => rx.close());
    const ep = await endpoint(t, 'legacy', `${rx.url}/legacy`);
    // In one transaction, so the dispatcher only ever sees the old job: today's is replaced by it.
    const deliveryId = await withTransaction(t.app.pool, async (db) => {
      await ingestInTransaction(t.app.boss, db, inputs(ep, 1, 'legacy'));
      await db.query(`DELETE FROM pgboss.job WHERE name = $1`, [DELIVERY_QUEUE]);
      const { rows } = await db.query<{ id: string }>(`SELECT id FROM deliveries WHERE endpoint_id = $1`, [ep]);
      await insertJobs(t.app.boss, db, DELIVERY_QUEUE, [{ data: { d: rows[0]!.id, a: 1 }, group: refKey({ project_id: 'default', endpoint_id: ep }) }]);
      return rows[0]!.id;
    });
    await expect.poll(() => rx.requests.length, { timeout: 10_000 }).toBe(1);
    expect(rx.requests[0]!.headers['x-wharf-delivery-id']).toBe(deliveryId);
    const delivery = async () => (await t.api('GET', `/eventdeliveries/${deliveryId}`)).body.data;
    await expect.poll(async () => (await delivery()).status, { timeout: 5_000 }).toBe('Success');
    expect((await delivery()).attempts).toBe(1);
    await expect.poll(async () => (await jobs(t)).length, { timeout: 5_000 }).toBe(0);
  });

  it('records the rest of a job once when one of its deliveries is deleted while in flight, and keeps no attempt of it', async () => {
    const t = await startTestApp();
    const rx = await startReceiver();
    cleanup.push(() => t.stop(), () => rx.close());
    rx.answer(() => ({ status: 200, delayMs: 800 }));
    const ep = await endpoint(t, 'gone', `${rx.url}/gone`);
    await ingest(t, ep, 4, 'gone');
    await expect.poll(() => rx.requests.length, { timeout: 10_000 }).toBe(4);
    const goneId = rx.requests[0]!.headers['x-wharf-delivery-id'] as string;
    // As an endpoint's deletion or a purge would, while the answers are still on their way.
    expect((await t.app.pool.query('DELETE FROM deliveries WHERE id = $1', [goneId])).rowCount).toBe(1);

    // The job's states until it is gone: a record that failed would hand it back to pg-boss (retry).
    const states = new Set<string>();
    const watching = (async () => {
      for (const until = Date.now() + 15_000; Date.now() < until; await new Promise((r) => setTimeout(r, 25))) {
        const now = await jobs(t);
        for (const j of now) states.add(j.state);
        if (now.length === 0) return;
      }
    })();
    const success = async () => (await t.api('GET', `/eventdeliveries?endpoint_id=${ep}&status=success&per_page=50`)).body.data.content as { uid: string; attempts: number }[];
    await expect.poll(async () => (await success()).length, { timeout: 10_000 }).toBe(3);
    expect((await success()).map((d) => d.attempts)).toEqual([1, 1, 1]);
    // Recorded the first time: none of the three was sent again.
    expect(rx.requests).toHaveLength(4);
    const orphans = await t.app.pool.query('SELECT 1 FROM attempts WHERE delivery_id = $1', [goneId]);
    expect(orphans.rowCount).toBe(0);
    await watching;
    expect(await jobs(t)).toEqual([]);
    expect([...states]).toEqual(['active']);
  });

  it('sends only the deliveries not yet recorded when a half-recorded job is handed out again', async () => {
    const t = await startTestApp();
    const rx = await startReceiver();
    cleanup.push(() => t.stop(), () => rx.close());
    const ep = await endpoint(t, 'half', `${rx.url}/half`);
    // A job of 6 whose first 3 deliveries were recorded before its dispatcher died: what pg-boss
    // hands out again after the heartbeat went stale (the job is committed only in this state).
    const recorded = await withTransaction(t.app.pool, async (db) => {
      await ingestInTransaction(t.app.boss, db, inputs(ep, 6, 'half'));
      const { rows } = await db.query<{ id: string }>(
        `UPDATE deliveries SET status = 'success', attempts = 1, next_attempt_at = NULL
         WHERE id IN (SELECT id FROM deliveries WHERE endpoint_id = $1 ORDER BY id LIMIT 3) RETURNING id`,
        [ep],
      );
      return new Set(rows.map((r) => r.id));
    });
    expect((await jobs(t)).map((j) => j.n)).toEqual([6]);
    await expect.poll(() => rx.requests.length, { timeout: 10_000 }).toBe(3);
    const sent = rx.requests.map((r) => r.headers['x-wharf-delivery-id'] as string);
    expect(sent.filter((id) => recorded.has(id))).toEqual([]);
    await expect.poll(async () => (await jobs(t)).length, { timeout: 5_000 }).toBe(0);
    // The job ended with its last delivery's record, so every one is recorded by now.
    const ok = await t.api('GET', `/eventdeliveries?endpoint_id=${ep}&status=success&per_page=50`);
    expect(ok.body.data.content).toHaveLength(6);
    // Nothing more comes: the recorded ones stay sent once.
    await new Promise((r) => setTimeout(r, 500));
    expect(rx.requests).toHaveLength(3);
  });
});
