/**
 * Retention on the real database: the background task purges what is past its project's policy,
 * in batches; newer rows, events still being delivered and other projects stay; rows purged are
 * counted; a purged id answers 404 with the reason, in the API and the portal. Time is moved by
 * passing `now` to the purge rather than by waiting.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createMetrics } from '../../src/metrics.ts';
import { policiesOf, purgeRetention, type PurgeReport, type PurgedKind } from '../../src/store/retention.ts';
import { uuidv7, uuidv7Floor, uuidv7Time } from '../../src/core/ids.ts';
import { loadConfig } from '../../src/config/load.ts';
import { startTestApp, type TestApp } from '../harness/app.ts';
import { portalClient } from '../harness/portal.ts';
import { startReceiver, type Receiver } from '../harness/receiver.ts';

const DAY = 86_400_000;
const SHOP_RETENTION = { events: '30d', attempts: '7d', dead_letters: '30d', meta_events: '30d' };

/** A UUIDv7 made at `ms`, as Wharf would have made it then. */
const idAt = (ms: number): string => `${uuidv7Floor(ms).slice(0, 24)}${randomBytes(6).toString('hex')}`;

describe.each(['postgres', 'embedded'] as const)('retention on %s', (kind) => {
  let t: TestApp;
  let ok: Receiver;
  let down: Receiver;
  let oldEventId: string;

  beforeAll(async () => {
    [ok, down] = await Promise.all([startReceiver(), startReceiver()]);
    down.answer(() => ({ status: 500, body: 'down' }));
    t = await startTestApp({
      kind,
      projects: [
        {
          id: 'shop',
          retention: SHOP_RETENTION,
          // A failed delivery waits an hour for its next attempt: it stays pending through the test.
          retry: { strategy: 'linear', duration: 3600, retry_count: 3 },
          endpoints: [
            { id: 'ok', url: `${ok.url}/ok` },
            { id: 'down', url: `${down.url}/down` },
          ],
        },
        { id: 'other', endpoints: [{ id: 'ok', url: `${ok.url}/other` }] },
      ],
    });
    // An event from 40 days ago, for the app's own first pass (5 s after start) to find.
    oldEventId = idAt(Date.now() - 40 * DAY);
    await t.app.pool.query(
      `INSERT INTO events (id, project_id, event_type, message_type, endpoint_id, data, created_at)
       VALUES ($1, 'shop', 'old.thing', 'single', 'ok', '{}', now() - interval '40 days')`,
      [oldEventId],
    );
  });
  afterAll(async () => {
    await t?.stop();
    await Promise.all([ok?.close(), down?.close()]);
  });

  const count = async (sql: string, params: unknown[] = []): Promise<number> => Number((await t.app.pool.query<{ n: string }>(sql, params)).rows[0]!.n);
  const exists = async (table: string, id: string): Promise<boolean> => (await count(`SELECT count(*) AS n FROM ${table} WHERE id = $1`, [id])) === 1;
  const post = async (project: string, endpoint: string, type: string): Promise<string> => {
    const res = await t.api('POST', '/events', { endpoint_id: endpoint, event_type: type, data: { type } }, project);
    expect(res.status, res.text).toBe(201);
    return res.body.data.id as string;
  };
  /** The delivery of `eventId` once its status is one of `statuses`. */
  const deliveryOf = async (eventId: string, statuses: string[]): Promise<{ id: string; status: string }> =>
    vi.waitFor(
      async () => {
        const { rows } = await t.app.pool.query<{ id: string; status: string }>('SELECT id, status FROM deliveries WHERE event_id = $1', [eventId]);
        if (!rows[0] || !statuses.includes(rows[0].status)) throw new Error(`delivery of ${eventId} is ${rows[0]?.status ?? 'missing'}`);
        if ((await count('SELECT count(*) AS n FROM attempts WHERE delivery_id = $1', [rows[0].id])) === 0) throw new Error('no attempt yet');
        return rows[0];
      },
      { timeout: 20_000, interval: 100 },
    );
  /** A purge with the shop's policy measured from `now`; waits out the app's own pass if it holds the lock. */
  const purge = async (now: number, options: { batchSize?: number; onPurged?: (kind: PurgedKind, n: number) => void } = {}): Promise<PurgeReport> => {
    const { config } = loadConfig({ file: t.configFile, env: {} });
    return vi.waitFor(
      async () => {
        const report = await purgeRetention(t.app.pool, policiesOf(config), { now: new Date(now), batchSize: options.batchSize ?? 1000, pauseMs: 1, onPurged: options.onPurged });
        if (report === null) throw new Error('another purge holds the lock');
        return report;
      },
      { timeout: 10_000, interval: 50 },
    );
  };

  it('the background task purges old history and counts it in /metrics', async () => {
    await vi.waitFor(
      async () => {
        if (await exists('events', oldEventId)) throw new Error('the old event is still there');
      },
      { timeout: 20_000, interval: 200 },
    );
    const metrics = await t.operator('GET', '/metrics');
    expect(metrics.text).toMatch(/^wharf_retention_purged_rows_total\{kind="events"\} 1$/m);
    expect(metrics.text).toMatch(/^wharf_retention_purged_rows_total\{kind="dead_letters"\} 0$/m);
    expect(metrics.text).toMatch(/^wharf_retention_last_run_seconds \d/m);

    const gone = await t.api('GET', `/events/${oldEventId}`, undefined, 'shop');
    expect(gone.status).toBe(404);
    expect(gone.body).toMatchObject({
      status: false,
      message: `event "${oldEventId}" was purged by the project's retention policy (events, with their deliveries and attempts, older than 30d)`,
      data: { code: 'WHARF_ERR_PURGED' },
    });
    // Ids made since the cutoff, and projects without a policy, answer the usual 404.
    const recent = await t.api('GET', `/events/${uuidv7()}`, undefined, 'shop');
    expect(recent.status).toBe(404);
    expect(recent.body.data.code).toBe('WHARF_ERR_NOT_FOUND');
    const elsewhere = await t.api('GET', `/events/${idAt(Date.now() - 40 * DAY)}`, undefined, 'other');
    expect(elsewhere.body.data.code).toBe('WHARF_ERR_NOT_FOUND');
  });

  it('purges in batches what is past its age; newer rows, events still being delivered and other projects stay', async () => {
    // Older history: a failing delivery (pending: retried in an hour), five delivered events, and
    // the other project's three.
    const pendingEvent = await post('shop', 'down', 'order.pending');
    const pending = await deliveryOf(pendingEvent, ['retry']);
    const olderEvents = [];
    for (let i = 0; i < 5; i++) olderEvents.push(await post('shop', 'ok', 'order.paid'));
    const olderDeliveries = await Promise.all(olderEvents.map((e) => deliveryOf(e, ['success'])));
    const otherEvents = [];
    for (let i = 0; i < 3; i++) otherEvents.push(await post('other', 'ok', 'order.paid'));
    await Promise.all(otherEvents.map((e) => deliveryOf(e, ['success'])));
    const { rows: olderAttempts } = await t.app.pool.query<{ id: string }>('SELECT a.id FROM attempts a JOIN deliveries d ON d.id = a.delivery_id WHERE d.project_id = $1 ORDER BY a.id', ['shop']);
    expect(olderAttempts).toHaveLength(6);

    const letter = async (project: string): Promise<string> => {
      const id = uuidv7();
      await t.app.pool.query(
        `INSERT INTO dead_letters (id, project_id, source_id, source_type, broker_id, body, code, reason, received_at)
         VALUES ($1, $2, 'queue', 'rabbitmq', $3, '\\x7b7d', 'WHARF_ERR_INVALID', 'event_type is required', now())`,
        [id, project, randomBytes(8).toString('hex')],
      );
      return id;
    };
    const metaEvent = async (status: string): Promise<string> => {
      const id = uuidv7();
      await t.app.pool.query(
        `INSERT INTO meta_events (id, project_id, endpoint_id, target, url, event_type, body, status)
         VALUES ($1, 'shop', 'down', 'project', 'https://ops.example/hook', 'endpoint.failing', '{}', $2)`,
        [id, status],
      );
      return id;
    };
    const olderLetters = [await letter('shop'), await letter('shop')];
    const otherLetter = await letter('other');
    const sentAlert = await metaEvent('success');
    const scheduledAlert = await metaEvent('scheduled');

    const { rows: pendingAttempts } = await t.app.pool.query<{ id: string }>('SELECT id FROM attempts WHERE delivery_id = $1', [pending.id]);
    // Everything made from this millisecond on is "newer" (ids carry the millisecond they were made in).
    await vi.waitFor(() => expect(Date.now()).toBeGreaterThan(uuidv7Time(scheduledAlert)!), { timeout: 1000, interval: 5 });
    const mid = Date.now();
    const newerEvents = [await post('shop', 'ok', 'order.new'), await post('shop', 'ok', 'order.new')];
    await Promise.all(newerEvents.map((e) => deliveryOf(e, ['success'])));
    const newerLetter = await letter('shop');

    const before = {
      other: await count(`SELECT count(*) AS n FROM events e JOIN deliveries d ON d.event_id = e.id JOIN attempts a ON a.delivery_id = d.id WHERE e.project_id = 'other'`),
    };
    expect(before.other).toBe(3);

    // A week on: attempts made before `mid` are past 7d; no event is past 30d.
    const metrics = createMetrics();
    const calls: [PurgedKind, number][] = [];
    const week = await purge(mid + 7 * DAY, { batchSize: 4, onPurged: (kind, n) => { calls.push([kind, n]); metrics.retentionPurged(kind, n); } });
    expect(week.rows).toEqual({ events: 0, deliveries: 0, attempts: 6, dead_letters: 0, meta_events: 0 });
    expect(calls).toEqual([['attempts', 4], ['attempts', 2]]);
    expect(await count(`SELECT count(*) AS n FROM attempts a JOIN deliveries d ON d.id = a.delivery_id WHERE d.project_id = 'shop'`)).toBe(2);
    // The deliveries keep their counters and last status.
    expect((await t.app.pool.query('SELECT attempts, last_status_code FROM deliveries WHERE id = $1', [olderDeliveries[0]!.id])).rows[0]).toEqual({ attempts: 1, last_status_code: 200 });

    // A month on: the older events go in batches of two, with their deliveries; the pending one stays.
    calls.length = 0;
    const month = await purge(mid + 30 * DAY, { batchSize: 2, onPurged: (kind, n) => { calls.push([kind, n]); metrics.retentionPurged(kind, n); } });
    expect(month.rows).toEqual({ events: 5, deliveries: 5, attempts: 2, dead_letters: 2, meta_events: 1 });
    expect(calls.filter(([k]) => k === 'events').map(([, n]) => n)).toEqual([2, 2, 1]);
    expect(calls.filter(([k]) => k === 'deliveries').map(([, n]) => n)).toEqual([2, 2, 1]);
    for (const id of olderEvents) expect(await exists('events', id)).toBe(false);
    for (const d of olderDeliveries) expect(await exists('deliveries', d.id)).toBe(false);
    for (const id of [pendingEvent, ...newerEvents]) expect(await exists('events', id)).toBe(true);
    expect(await exists('deliveries', pending.id)).toBe(true);
    for (const id of olderLetters) expect(await exists('dead_letters', id)).toBe(false);
    expect(await exists('dead_letters', newerLetter)).toBe(true);
    expect(await exists('meta_events', sentAlert)).toBe(false);
    expect(await exists('meta_events', scheduledAlert)).toBe(true);
    // The other project keeps everything.
    for (const id of otherEvents) expect(await exists('events', id)).toBe(true);
    expect(await exists('dead_letters', otherLetter)).toBe(true);
    expect(await count(`SELECT count(*) AS n FROM events e JOIN deliveries d ON d.event_id = e.id JOIN attempts a ON a.delivery_id = d.id WHERE e.project_id = 'other'`)).toBe(before.other);

    const purgedRows = (await metrics.registry.getSingleMetric('wharf_retention_purged_rows_total')!.get()).values;
    expect(Object.fromEntries(purgedRows.map((v) => [v.labels.kind, v.value]))).toEqual({ events: 5, deliveries: 5, attempts: 8, dead_letters: 2, meta_events: 1 });

    // Each purged id answers 404 with the policy that took it.
    const purged = async (path: string) => {
      const res = await t.api('GET', path, undefined, 'shop');
      expect(res.status, path).toBe(404);
      expect(res.body.data.code, path).toBe('WHARF_ERR_PURGED');
      return res.body.message as string;
    };
    expect(await purged(`/events/${olderEvents[0]}`)).toContain('(events, with their deliveries and attempts, older than 30d)');
    expect(await purged(`/eventdeliveries/${olderDeliveries[0]!.id}`)).toBe(
      `event delivery "${olderDeliveries[0]!.id}" was purged by the project's retention policy (events, with their deliveries and attempts, older than 30d)`,
    );
    expect(await purged(`/eventdeliveries/${olderDeliveries[1]!.id}/deliveryattempts`)).toContain('older than 30d');
    expect(await purged(`/eventdeliveries/${pending.id}/deliveryattempts/${pendingAttempts[0]!.id}`)).toContain('(delivery attempts older than 7d)');
    expect(await purged(`/deadletters/${olderLetters[0]}`)).toContain('(dead letters older than 30d)');
    expect(await purged(`/meta-events/${sentAlert}`)).toContain('(meta events older than 30d)');
    // Rows that are still there answer as before.
    expect((await t.api('GET', `/events/${pendingEvent}`, undefined, 'shop')).status).toBe(200);
    expect((await t.api('GET', `/eventdeliveries/${pending.id}`, undefined, 'shop')).body.data.attempts).toBe(1);

    // The portal says so too, for a delivery of its endpoints.
    const link = await t.api('POST', '/portal-links', { name: 'Shop portal', endpoints: ['ok'] }, 'shop');
    expect(link.status, link.text).toBe(201);
    const browser = portalClient(t.url);
    await browser.open(link.body.data.url);
    const page = await browser.get(`/portal/deliveries/${olderDeliveries[0]!.id}`);
    expect(page.status).toBe(404);
    expect(page.text).toContain('No longer kept');
    expect(page.text).toContain('purged by the project&#39;s retention policy');
    const unknown = await browser.get(`/portal/deliveries/${uuidv7()}`);
    expect(unknown.status).toBe(404);
    expect(unknown.text).not.toContain('retention');
  });

  // Embedded Postgres serves one process through one backend session, where an advisory lock is
  // everyone's: there is no second replica to exclude, so this is a test of real Postgres only.
  if (kind === 'embedded') return;
  it('one replica purges at a time: a purge that finds the lock taken does nothing', async () => {
    const holder = new pg.Client({ connectionString: t.db.url });
    await holder.connect();
    try {
      // Waits for the app's own pass, if one is running, then holds the lock as another replica would.
      await holder.query(`SELECT pg_advisory_lock(hashtext('wharf.retention'))`);
      const { config } = loadConfig({ file: t.configFile, env: {} });
      const old = idAt(Date.now() - 40 * DAY);
      await t.app.pool.query(`INSERT INTO events (id, project_id, event_type, message_type, data, created_at) VALUES ($1, 'shop', 'old', 'broadcast', '{}', now() - interval '40 days')`, [old]);
      expect(await purgeRetention(t.app.pool, policiesOf(config), { batchSize: 10, pauseMs: 0 })).toBeNull();
      expect(await exists('events', old)).toBe(true);
      await holder.query(`SELECT pg_advisory_unlock(hashtext('wharf.retention'))`);
      const report = await purge(Date.now());
      expect(report.rows.events).toBe(1);
      expect(await exists('events', old)).toBe(false);
    } finally {
      await holder.end();
    }
  });
});
