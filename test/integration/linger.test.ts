import { afterEach, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../harness/app.ts';
import { startDispatchProcess } from '../harness/processes.ts';
import { startReceiver, type Receiver } from '../harness/receiver.ts';

/** Transactions that stored the project's events: each has its own now(), so one created_at each. */
const transactions = async (t: TestApp): Promise<{ events: number; txns: number }> => {
  const { rows } = await t.app.pool.query<{ events: string; txns: string }>(
    `SELECT count(*) AS events, count(DISTINCT created_at) AS txns FROM events WHERE project_id = 'default'`,
  );
  return { events: Number(rows[0]!.events), txns: Number(rows[0]!.txns) };
};

describe('lingers (ingest.linger_ms, dispatch.record_linger_ms)', () => {
  let t: TestApp | undefined;
  let rx: Receiver | undefined;
  afterEach(async () => {
    await t?.stop();
    await rx?.close();
    t = undefined;
    rx = undefined;
  });

  /** An app with one endpoint at a local receiver; events go to it. */
  const start = async (
    lingerMs: number,
    recordLingerMs = 25,
    dispatch: Record<string, unknown> = {},
  ): Promise<{ app: TestApp; post: (n: number) => Promise<{ status: number }> }> => {
    rx = await startReceiver();
    // dispatch.linger_ms 0: the recorder keeps to its own linger, not to the fetch's.
    const app = await startTestApp({ ingest: { linger_ms: lingerMs }, dispatch: { linger_ms: 0, record_linger_ms: recordLingerMs, ...dispatch } });
    t = app;
    const ep = await app.api('POST', '/endpoints', { name: 'linger', url: `${rx.url}/linger` });
    expect(ep.status).toBe(201);
    const endpointId = (ep.body.data as { uid: string }).uid;
    return { app, post: (n) => app.api('POST', '/events', { endpoint_id: endpointId, event_type: 'linger.test', data: { n } }) };
  };

  it('commits events that arrive densely in a few shared transactions', async () => {
    const { app, post } = await start(300);
    // 60 requests about 2 ms apart (more on a loaded machine), far denser than two per 300 ms;
    // the first 20 only bring the gateway's gap meter up to speed after its idle start.
    const answers: Promise<{ status: number }>[] = [];
    let firstAt = 0;
    for (let i = 0; i < 60; i++) {
      if (i === 20) firstAt = performance.now();
      answers.push(post(i));
      await new Promise((r) => setTimeout(r, 2));
    }
    // How long the last 40 took to send: ~100 ms here, seconds on a machine busy with other suites.
    const spanMs = performance.now() - firstAt;
    expect((await Promise.all(answers)).map((a) => a.status)).toEqual(Array(60).fill(201));
    expect((await transactions(app)).events).toBe(60);
    const { rows } = await app.app.pool.query<{ txns: string }>(
      `SELECT count(DISTINCT created_at) AS txns FROM events WHERE project_id = 'default' AND (data::jsonb ->> 'n')::int >= 20`,
    );
    // Without the linger the last 40 find a free slot within a few ms and take 15-40
    // transactions; with it, a transaction waits up to 300 ms and takes what came meanwhile, so
    // they share one transaction per 300 ms of their sending, and a partial one at each end.
    expect(Number(rows[0]!.txns), `sent over ${Math.round(spanMs)} ms`).toBeLessThanOrEqual(Math.max(6, Math.ceil(spanMs / 300) + 2));
  });

  it('does not hold back events on a quiet gateway', async () => {
    const { app, post } = await start(1000);
    const took: number[] = [];
    for (let i = 0; i < 5; i++) {
      const t0 = performance.now();
      expect((await post(i)).status).toBe(201);
      took.push(performance.now() - t0);
      await new Promise((r) => setTimeout(r, 600));
    }
    // Events 600 ms apart are not two per second: none waits for company (waiting would take 1 s).
    expect(Math.max(...took)).toBeLessThan(800);
    expect(await transactions(app)).toEqual({ events: 5, txns: 5 });
  });

  it('records the answers of densely sent deliveries in a few shared transactions', async () => {
    const { app, post } = await start(0, 200);
    // 60 events about 2 ms apart; the first 20 only bring the recorder's gap meter up to speed
    // after its idle start (until it finds the answers dense, each is written as the previous
    // write ends, which a fast recorder makes one transaction each).
    const answers: Promise<{ status: number }>[] = [];
    for (let i = 0; i < 60; i++) {
      answers.push(post(i));
      await new Promise((r) => setTimeout(r, 2));
    }
    expect((await Promise.all(answers)).map((a) => a.status)).toEqual(Array(60).fill(201));
    await expect.poll(() => rx!.requests.filter((r) => r.path === '/linger').length, { timeout: 15_000 }).toBe(60);
    const count = async () =>
      (
        await app.app.pool.query<{ attempts: string; txns: string }>(
          `SELECT count(*) AS attempts, count(DISTINCT a.created_at) AS txns FROM attempts a
           JOIN deliveries d ON d.id = a.delivery_id JOIN events e ON e.project_id = d.project_id AND e.id = d.event_id
           WHERE (e.data::jsonb ->> 'n')::int >= 20`,
        )
      ).rows[0]!;
    await expect.poll(async () => Number((await count()).attempts), { timeout: 10_000 }).toBe(40);
    // Each ingest transaction's deliveries are sent as it commits, so the answers come as spread
    // out as the posts. With a 200 ms linger the last 40 share one transaction per 200 ms of them,
    // and a partial one at each end (1 here, over 82-84 ms); without it (record_linger_ms 0) each
    // is written as soon as the previous write ended (10-15). The bound follows their spread,
    // which a loaded machine widens.
    const at = rx!.requests.filter((r) => r.path === '/linger' && (JSON.parse(r.body.toString()) as { n: number }).n >= 20).map((r) => r.at);
    const spanMs = Math.max(...at) - Math.min(...at);
    expect(Number((await count()).txns), `answers over ${spanMs} ms`).toBeLessThanOrEqual(Math.ceil(spanMs / 200) + 2);
  });

  it('never lets answers waiting to be recorded fill max_in_flight', async () => {
    // A delivery counts against max_in_flight until its outcome is recorded. Here 10 may be in
    // flight and the recorder may wait a whole second for company. Bursts of 8 events posted at
    // once are all handed over (no pg-boss job, whose outcome would end the wait) and answered
    // within milliseconds. A recorder that waited its linger out would hold a burst's answers for
    // that second, and max_in_flight with them (from the second burst on, the meter finds answers
    // dense from the first). With half of max_in_flight (5) waiting it writes at once, so at most
    // 4 of a burst wait the whole second.
    const { app, post } = await start(0, 1000, { max_in_flight: 10 });
    const recordedAt = async (ids: string[]) =>
      (
        await app.app.pool.query<{ id: string; at: number }>(
          `SELECT delivery_id::text AS id, (extract(epoch FROM created_at) * 1000)::float8 AS at FROM attempts WHERE delivery_id::text = ANY($1)`,
          [ids],
        )
      ).rows;
    for (let burst = 0; burst < 3; burst++) {
      const before = rx!.requests.length;
      expect((await Promise.all(Array.from({ length: 8 }, (_, i) => post(burst * 8 + i)))).map((a) => a.status)).toEqual(Array(8).fill(201));
      await expect.poll(() => rx!.requests.length - before, { timeout: 10_000, interval: 20 }).toBe(8);
      const arrived = new Map(rx!.requests.slice(before).map((r) => [String(r.headers['x-wharf-delivery-id']), r.at]));
      await expect.poll(async () => (await recordedAt([...arrived.keys()])).length, { timeout: 10_000 }).toBe(8);
      // From each answer (its arrival at the receiver, a little before) to its outcome's transaction.
      const waited = (await recordedAt([...arrived.keys()])).map((r) => Math.round(r.at - arrived.get(r.id)!));
      expect(waited.filter((ms) => ms >= 700).length, `burst ${burst}: ${waited.join(', ')} ms`).toBeLessThan(5);
    }
  });

  it('ends pg-boss jobs after the fetch\'s linger, not the recorder\'s', async () => {
    // The API alone here, so every delivery is a pg-boss job; a dispatch process started after
    // the events drains them. endpoint_concurrency 8: pg-boss lets one job of up to 8 deliveries
    // be active for the endpoint at a time, and a job ends when its outcomes are recorded. Waiting
    // the recorder's 1 s for company, 60 deliveries would take 7 or more of those seconds; a job's
    // outcomes wait the fetch's 5 ms.
    rx = await startReceiver();
    t = await startTestApp({ role: 'api', dispatch: { linger_ms: 5, record_linger_ms: 1000, endpoint_concurrency: 8 } });
    const ep = await t.api('POST', '/endpoints', { name: 'drain', url: `${rx.url}/drain`, skip_ping_validation: true });
    expect(ep.status, ep.text).toBe(201);
    for (let i = 0; i < 60; i++) {
      const res = await t.api('POST', '/events', { endpoint_id: ep.body.data.uid, event_type: 'drain.test', data: { n: i } });
      expect(res.status, res.text).toBe(201);
    }
    const dispatcher = await startDispatchProcess(t.configFile);
    try {
      await expect.poll(() => rx!.requests.filter((r) => r.path === '/drain').length, { timeout: 30_000, interval: 50 }).toBe(60);
      const at = rx!.requests.filter((r) => r.path === '/drain').map((r) => r.at);
      expect(Math.max(...at) - Math.min(...at)).toBeLessThan(4_000);
    } finally {
      const exited = new Promise((r) => dispatcher.once('exit', r));
      dispatcher.kill('SIGTERM');
      await exited;
    }
  });
});
