import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startReceiver, type Receiver } from '../harness/receiver.ts';
import { startTestApp, type TestApp } from '../harness/app.ts';
import { JSON_SLOT } from '../../src/api/context.ts';
import { ingestInTransaction } from '../../src/ingest/persist.ts';
import { withTransaction } from '../../src/store/pool.ts';

describe.each(['postgres', 'embedded'] as const)('events on %s', (kind) => {
  let t: TestApp;
  let rx: Receiver;

  beforeAll(async () => {
    rx = await startReceiver();
    t = await startTestApp({
      kind,
      projects: [{ id: 'default', retry: { strategy: 'linear', duration: 1, retry_count: 2 } }],
    });
  });
  afterAll(async () => {
    await t?.stop();
    await rx?.close();
  });

  const count = async (sql: string, params: unknown[] = []): Promise<number> =>
    Number((await t.app.pool.query<{ n: string }>(sql, params)).rows[0]!.n);

  const createEndpoint = async (path: string, extra: Record<string, unknown> = {}) => {
    const res = await t.api('POST', '/endpoints', { name: path, url: `${rx.url}${path}`, ...extra });
    expect(res.status).toBe(201);
    return res.body.data as { uid: string; secrets: { value: string }[] };
  };

  it('stores a repeated idempotency_key once, with one delivery, and says so', async () => {
    const ep = await createEndpoint('/idem');
    const body = { endpoint_id: ep.uid, event_type: 'order.created', data: { n: 1 }, idempotency_key: `k-${kind}` };
    const first = await t.api('POST', '/events', body);
    const second = await t.api('POST', '/events', { ...body, data: { n: 2 } });
    expect(first.status).toBe(201);
    expect(first.body.data.duplicate).toBe(false);
    expect(second.status).toBe(201);
    expect(second.body.data.duplicate).toBe(true);
    expect(second.body.data.uid).toBe(first.body.data.uid);
    expect(second.body.data.data).toEqual({ n: 1 });
    // An API event arrived with no headers of its own; GET shows the (empty) set it is stored with.
    const got = await t.api('GET', `/events/${first.body.data.uid}`);
    expect(got.status).toBe(200);
    expect(got.body.data.headers).toEqual({});
    expect(first.body.data.headers).toEqual({});
    expect(await count('SELECT count(*) AS n FROM events WHERE idempotency_key = $1', [body.idempotency_key])).toBe(1);
    expect(await count('SELECT count(*) AS n FROM deliveries WHERE event_id = $1', [first.body.data.uid])).toBe(1);
    await expect.poll(() => rx.requests.filter((r) => r.path === '/idem').length, { timeout: 10_000 }).toBe(1);
  });

  it('answers a new event with its data as sent, the bytes JSON.stringify writes, whatever the tenant spells', async () => {
    const ep = await createEndpoint('/data-echo', { skip_ping_validation: true });
    // Escapes, astral and line-separator characters, numbers JSON writes its own way, nesting, and
    // the slot the answer's data is spliced into (tests run in Wharf's process, so they can spell
    // it; a tenant cannot): in a value and a key of the data, and in every tenant value before it.
    const data = {
      s: 'quote " backslash \\ slash / é 😀 \u2028 \u0001 </script>',
      n: [0, 1e21, 1.5, -2, 123456789012345680000],
      deep: { a: { b: { c: [null, true, false, {}, []] } } },
      [JSON_SLOT]: JSON_SLOT,
      slot: `"${JSON_SLOT}"`,
    };
    const res = await t.api('POST', '/events', {
      endpoint_id: ep.uid,
      event_type: JSON_SLOT,
      idempotency_key: JSON_SLOT,
      custom_headers: { 'x-slot': JSON_SLOT },
      data,
    });
    expect(res.status, res.text).toBe(201);
    expect(res.headers.get('content-type')).toBe('application/json; charset=utf-8');
    expect(res.body.data.data).toEqual(data);
    expect(res.body.data).toMatchObject({ event_type: JSON_SLOT, idempotency_key: JSON_SLOT, custom_headers: { 'x-slot': JSON_SLOT }, duplicate: false });
    // Byte for byte what serialising the parsed answer writes: reply()'s own bytes.
    expect(res.text).toBe(JSON.stringify(res.body));
    const got = await t.api('GET', `/events/${res.body.data.uid}`);
    expect(got.body.data.data).toEqual(data);
    await expect.poll(() => rx.requests.filter((r) => r.path === '/data-echo').length, { timeout: 10_000 }).toBe(1);
    expect(JSON.parse(rx.requests.find((r) => r.path === '/data-echo')!.body.toString())).toEqual(data);
  });

  it('stores each event of one batch with its own data, byte for byte, whatever its characters and size', async () => {
    const ep = await createEndpoint('/batch-data', { skip_ping_validation: true });
    // The batch's data goes to Postgres as one buffer cut at byte offsets (packTexts): multibyte
    // characters before an event must not shift the next one.
    const texts = [
      JSON.stringify({ s: 'é😀€ \u2028 "quoted" back\\slash', n: 1 }),
      'null',
      '"😀"',
      ' {"raw": "a broker\'s bytes, spaces and all"}\n',
      JSON.stringify({ nul: '\u0000', ctrl: '\u0001\t' }),
      JSON.stringify({ big: 'ü'.repeat(50_000) }),
      '{}',
    ];
    const inputs = texts.map((data, i) => ({
      project_id: 'default', source_id: null, message_type: 'single' as const, endpoint_id: ep.uid,
      event_type: 'batch.data', data, custom_headers: {}, idempotency_key: null, headers: { n: String(i) },
    }));
    const outcomes = await withTransaction(t.app.pool, (db) => ingestInTransaction(t.app.boss, db, inputs));
    expect(outcomes.map((o) => o.status)).toEqual(texts.map(() => 'stored'));
    const { rows } = await t.app.pool.query<{ id: string; data: string }>('SELECT id, data FROM events WHERE id = ANY($1::uuid[])', [
      outcomes.map((o) => (o as { event_id: string }).event_id),
    ]);
    const byId = new Map(rows.map((r) => [r.id, r.data]));
    expect(outcomes.map((o) => byId.get((o as { event_id: string }).event_id))).toEqual(texts);
    // And what is sent is the same text.
    await expect.poll(() => rx.requests.filter((r) => r.path === '/batch-data').length, { timeout: 15_000 }).toBe(texts.length);
    expect(rx.requests.filter((r) => r.path === '/batch-data').map((r) => r.body.toString()).sort()).toEqual([...texts].sort());
  });

  // Not defined on PGlite, which runs one transaction at a time: a delete held open there would
  // hold every ingest.
  if (kind === 'postgres') it('an endpoint deleted while an event is routed to it leaves no delivery behind', async () => {
    const ep = await createEndpoint('/deleted-meanwhile', { skip_ping_validation: true });
    const deleter = await t.app.pool.connect();
    try {
      await deleter.query('BEGIN');
      expect((await deleter.query('DELETE FROM endpoints WHERE project_id = $1 AND id = $2', ['default', ep.uid])).rowCount).toBe(1);
      let settled = false;
      const posting = t.api('POST', '/events', { endpoint_id: ep.uid, event_type: 'gone.meanwhile', data: {} }).finally(() => (settled = true));
      // Routing reads the endpoint (the delete is not committed); the insert then waits for the
      // delete (its lock on the endpoint) or, without one, goes ahead and leaves an orphan.
      const lockWaits = () => count(`SELECT count(*) AS n FROM pg_stat_activity WHERE query LIKE '%FROM endpoints e%' AND wait_event_type = 'Lock'`);
      for (const until = Date.now() + 5_000; !settled && (await lockWaits()) === 0 && Date.now() < until; ) await new Promise((r) => setTimeout(r, 20));
      expect(settled).toBe(false);
      await deleter.query('COMMIT');
      const res = await posting;
      // As if the event came first and the endpoint was deleted after, with its deliveries.
      expect(res.status, res.text).toBe(201);
      expect(res.body.data.deliveries).toBe(0);
    } finally {
      deleter.release();
    }
    const orphans = `SELECT count(*) AS n FROM deliveries d
                     WHERE NOT EXISTS (SELECT 1 FROM endpoints e WHERE e.project_id = d.project_id AND e.id = d.endpoint_id)`;
    expect(await count(orphans)).toBe(0);
  });

  it('leaves no event, no delivery and no job when the transaction fails before commit', async () => {
    const ep = await createEndpoint('/atomic');
    // Make the delivery insert fail after the event row is written, inside the same transaction.
    await t.app.pool.query(`
      CREATE OR REPLACE FUNCTION wharf_test_fail() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN IF NEW.event_type = 'boom' THEN RAISE EXCEPTION 'injected failure'; END IF; RETURN NEW; END $$;
      CREATE TRIGGER wharf_test_fail BEFORE INSERT ON deliveries FOR EACH ROW EXECUTE FUNCTION wharf_test_fail();`);
    // This endpoint's jobs only (grouped by it): an earlier test's job may end meanwhile, since
    // outcomes are recorded up to dispatch.record_linger_ms after the answer.
    const jobs = () => count(`SELECT count(*) AS n FROM pgboss.job WHERE name = 'wharf-deliver' AND group_id = $1`, [`default/${ep.uid}`]);
    const jobsBefore = await jobs();
    const res = await t.api('POST', '/events', { endpoint_id: ep.uid, event_type: 'boom', data: { x: 1 } });
    expect(res.status).toBe(500);
    expect(res.body.status).toBe(false);
    expect(await count(`SELECT count(*) AS n FROM events WHERE event_type = 'boom'`)).toBe(0);
    expect(await count(`SELECT count(*) AS n FROM deliveries WHERE event_type = 'boom'`)).toBe(0);
    expect(await jobs()).toBe(jobsBefore);
    await t.app.pool.query('DROP TRIGGER wharf_test_fail ON deliveries');
    // The same request succeeds once the fault is gone: nothing half-written blocks it.
    const again = await t.api('POST', '/events', { endpoint_id: ep.uid, event_type: 'boom', data: { x: 1 } });
    expect(again.status).toBe(201);
  });

  it('commits concurrent events in groups: duplicates stored once, one failure fails alone', async () => {
    const ep = await createEndpoint('/burst');
    await t.app.pool.query(`
      CREATE OR REPLACE FUNCTION wharf_test_fail2() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN IF NEW.event_type = 'burst.poison' THEN RAISE EXCEPTION 'injected failure'; END IF; RETURN NEW; END $$;
      CREATE TRIGGER wharf_test_fail2 BEFORE INSERT ON events FOR EACH ROW EXECUTE FUNCTION wharf_test_fail2();`);
    try {
      const posts = Array.from({ length: 120 }, (_, i) =>
        t.api('POST', '/events', {
          endpoint_id: ep.uid,
          event_type: i === 60 ? 'burst.poison' : 'burst.ok',
          data: { i },
          // 40 keys, each used three times, all in flight together.
          idempotency_key: `burst-${kind}-${i % 40}`,
        }),
      );
      const results = await Promise.all(posts);
      const statuses = results.map((r) => r.status);
      expect(statuses[60]).toBe(500);
      expect(statuses.filter((s) => s === 500)).toHaveLength(1);
      // Convoy answers 201 for a repeated key too; the body says which were duplicates.
      expect(statuses.filter((s) => s === 201)).toHaveLength(119);
      expect(results.filter((r) => r.body?.data?.duplicate === true)).toHaveLength(79);
      // Every duplicate points at the event that holds its key.
      const holder = new Map<string, string>();
      results.forEach((r, i) => {
        if (r.status === 201) holder.set(`k${i % 40}`, r.body.data.uid);
      });
      results.forEach((r, i) => {
        if (r.status === 200) expect(r.body.data.uid).toBe(holder.get(`k${i % 40}`));
      });
      expect(await count(`SELECT count(*) AS n FROM events WHERE idempotency_key LIKE $1`, [`burst-${kind}-%`])).toBe(40);
      expect(await count(`SELECT count(*) AS n FROM deliveries d JOIN events e ON e.id = d.event_id WHERE e.idempotency_key LIKE $1`, [`burst-${kind}-%`])).toBe(40);
    } finally {
      await t.app.pool.query('DROP TRIGGER wharf_test_fail2 ON events');
    }
    await expect.poll(() => rx.requests.filter((r) => r.path === '/burst').length, { timeout: 15_000 }).toBe(40);
  });

  it('retries on the project schedule until failure, recording every attempt, then resends', async () => {
    const ep = await createEndpoint('/flaky');
    let healthy = false;
    rx.answer((r) =>
      r.path === '/flaky' && !healthy ? { status: 500, body: 'upstream exploded' } : { status: 200, body: 'fine' },
    );
    const res = await t.api('POST', '/events', { endpoint_id: ep.uid, event_type: 'x.failed', data: { a: 1 } });
    expect(res.status).toBe(201);
    const { data: list } = (await t.api('GET', `/eventdeliveries?event_id=${res.body.data.uid}`)).body;
    const deliveryId = list.content[0].uid as string;

    await expect
      .poll(async () => (await t.api('GET', `/eventdeliveries/${deliveryId}`)).body.data.status, { timeout: 20_000, interval: 200 })
      .toBe('Failure');
    const d = (await t.api('GET', `/eventdeliveries/${deliveryId}`)).body.data;
    expect(d.attempts).toBe(3); // the first attempt and retry_count 2
    expect(d.last_status_code).toBe(500);
    const attempts = (await t.api('GET', `/eventdeliveries/${deliveryId}/deliveryattempts`)).body.data;
    expect(attempts.map((a: { attempt: number }) => a.attempt)).toEqual([1, 2, 3]);
    expect(attempts.every((a: { status_code: number; response_body: string }) => a.status_code === 500 && a.response_body === 'upstream exploded')).toBe(true);
    // Linear schedule: attempts at least `duration` apart.
    const times = rx.requests.filter((r) => r.path === '/flaky').map((r) => r.at);
    expect(times).toHaveLength(3);
    expect(times[1]! - times[0]!).toBeGreaterThanOrEqual(900);

    healthy = true;
    const resent = await t.api('PUT', `/eventdeliveries/${deliveryId}/resend`);
    expect(resent.status).toBe(200);
    await expect
      .poll(async () => (await t.api('GET', `/eventdeliveries/${deliveryId}`)).body.data.status, { timeout: 10_000, interval: 200 })
      .toBe('Success');
    expect((await t.api('GET', `/eventdeliveries/${deliveryId}`)).body.data.attempts).toBe(4);
    // A successful delivery may be sent again too (409 for one still in flight is in api.test.ts).
    const again = await t.api('PUT', `/eventdeliveries/${deliveryId}/resend`);
    expect(again.status).toBe(200);
    await expect
      .poll(async () => (await t.api('GET', `/eventdeliveries/${deliveryId}`)).body.data.attempts, { timeout: 10_000, interval: 200 })
      .toBe(5);
  });

  it('waits out Retry-After on a 429 before the next attempt', async () => {
    const ep = await createEndpoint('/busy');
    let calls = 0;
    rx.answer((r) => {
      if (r.path !== '/busy') return { status: 200 };
      calls += 1;
      return calls === 1 ? { status: 429, headers: { 'retry-after': '3' } } : { status: 200 };
    });
    const res = await t.api('POST', '/events', { endpoint_id: ep.uid, event_type: 'x', data: {} });
    await expect.poll(() => rx.requests.filter((r) => r.path === '/busy').length, { timeout: 15_000 }).toBe(2);
    const [first, second] = rx.requests.filter((r) => r.path === '/busy');
    // The project's linear schedule alone would retry after 1 s.
    expect(second!.at - first!.at).toBeGreaterThanOrEqual(2_900);
    const list = (await t.api('GET', `/eventdeliveries?event_id=${res.body.data.uid}`)).body.data.content;
    await expect.poll(async () => (await t.api('GET', `/eventdeliveries/${list[0].uid}`)).body.data.status).toBe('Success');
  });

  it('treats a timeout and a refused connection as failed attempts with their codes', async () => {
    const slow = await createEndpoint('/slow', { http_timeout: 1 });
    rx.answer((r) => (r.path === '/slow' ? { status: 200, delayMs: 3_000 } : { status: 200 }));
    const dead = await t.api('POST', '/endpoints', { name: 'dead', url: 'http://127.0.0.1:9/nothing', skip_ping_validation: true });
    const a = await t.api('POST', '/events', { endpoint_id: slow.uid, event_type: 't', data: {} });
    const b = await t.api('POST', '/events', { endpoint_id: dead.body.data.uid, event_type: 't', data: {} });
    const firstAttempt = async (eventId: string) => {
      const list = (await t.api('GET', `/eventdeliveries?event_id=${eventId}`)).body.data.content;
      const attempts = (await t.api('GET', `/eventdeliveries/${list[0].uid}/deliveryattempts`)).body.data;
      return attempts[0] ?? null;
    };
    await expect.poll(() => firstAttempt(a.body.data.uid), { timeout: 10_000 }).toMatchObject({ status_code: null, error_code: 'WHARF_ERR_TIMEOUT' });
    await expect.poll(() => firstAttempt(b.body.data.uid), { timeout: 10_000 }).toMatchObject({ status_code: null, error_code: 'ECONNREFUSED' });
  });
});
