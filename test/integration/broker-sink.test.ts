import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_MAX_JSON_DEPTH } from '../../src/ingest/limits.ts';
import type { AcceptResult, BrokerMessage } from '../../src/core/connector.ts';
import { createBrokerSink } from '../../src/ingest/broker-sink.ts';
import pg from 'pg';
import { createPool } from '../../src/store/pool.ts';
import { startTestApp, type TestApp } from '../harness/app.ts';
import { brokerMessage as message, brokerSink, brokerSource as source } from '../harness/broker-sink.ts';

const LIMITS = { maxJsonDepth: DEFAULT_MAX_JSON_DEPTH };

const good = (seq: number, extra: Record<string, unknown> = {}) => message({ endpoint_id: 'ep', event_type: 'sink.test', data: { seq }, ...extra });

describe('broker sink (real Postgres)', () => {
  let t: TestApp;
  beforeAll(async () => {
    // The endpoint is paused: deliveries are recorded as discarded and nothing is sent.
    t = await startTestApp({ projects: [{ id: 'default', endpoints: [{ id: 'ep', url: 'http://127.0.0.1:9/' }] }] });
    await t.app.pool.query(`UPDATE endpoints SET status = 'paused'`);
  });
  afterAll(async () => t?.stop());

  const sink = (s = source()) => brokerSink(t.app, LIMITS, s);

  it('dead-letters only the message the database refuses, stores the rest, and a redelivery changes nothing', async () => {
    // Ingest refuses what it knows the database could not hold (NUL, control characters); for
    // anything else the database refuses, a constraint of this test's database stands in: the
    // statement fails for this message's data alone.
    await t.app.pool.query(`ALTER TABLE events ADD CONSTRAINT refuses_one CHECK (event_type <> 'refused.by.database')`);
    const batch = [good(1), good(2, { event_type: 'refused.by.database' }), good(3)];
    const results = await sink().accept(batch);
    expect(results.map((r) => r.status)).toEqual(['stored', 'rejected', 'stored']);
    const refused = results[1] as Extract<(typeof results)[number], { status: 'rejected' }>;
    expect(refused.code).toBe('WHARF_ERR_DATABASE_REFUSED');
    expect(refused.reason).toMatch(/refuses_one/);

    const again = await sink().accept(batch);
    expect(again.map((r) => r.status)).toEqual(['duplicate', 'rejected', 'duplicate']);
    expect((again[1] as typeof refused).dead_letter_id).toBe(refused.dead_letter_id);
    const { rows } = await t.app.pool.query('SELECT times_seen, body FROM dead_letters WHERE id = $1', [refused.dead_letter_id]);
    expect(rows[0].times_seen).toBe(2);
    expect(Buffer.compare(rows[0].body, batch[1]!.body)).toBe(0);
    await t.app.pool.query('ALTER TABLE events DROP CONSTRAINT refuses_one');
  });

  it('finds the message the database refuses by halving the batch, not by storing every message alone', async () => {
    await t.app.pool.query(`ALTER TABLE events ADD CONSTRAINT refuses_one CHECK (event_type <> 'refused.by.database')`);
    try {
      const batch = Array.from({ length: 64 }, (_, k) => good(7000 + k, k === 37 ? { event_type: 'refused.by.database' } : {}));
      const results = await sink().accept(batch);
      expect(results.map((r, k) => (k === 37 ? r.status === 'rejected' : r.status === 'stored'))).toEqual(Array(64).fill(true));
      // Halves of 32, 16, 8, 4, 2 and 1 stored: six transactions for the 63, where one each took 63.
      const { rows } = await t.app.pool.query(`SELECT count(*)::int AS n, count(DISTINCT xmin::text)::int AS txns FROM events WHERE (data::jsonb->>'seq')::int BETWEEN 7000 AND 7063`);
      expect(rows[0]).toEqual({ n: 63, txns: 6 });
    } finally {
      await t.app.pool.query('ALTER TABLE events DROP CONSTRAINT refuses_one');
    }
  });

  it('deduplicates by idempotency_key when the message has one, by broker id when not', async () => {
    const twelve = good(12);
    const [a, b, c] = await sink().accept([
      good(10, { idempotency_key: 'k-10' }),
      good(11, { idempotency_key: 'k-10' }), // another broker message, same key
      twelve,
    ]);
    expect(a!.status).toBe('stored');
    expect(b).toEqual({ status: 'duplicate', event_id: (a as { event_id: string }).event_id });
    const redelivered = await sink().accept([{ ...twelve, receivedAt: new Date() }]);
    expect(redelivered[0]).toEqual({ status: 'duplicate', event_id: (c as { event_id: string }).event_id });
  });

  it('keeps broker headers with the event and forwards only those the source names', async () => {
    const s = source({ id: 'fwd', forward_headers: ['x-trace'] });
    const [r] = await sink(s).accept([good(20, { custom_headers: { 'X-Own': 'mine' } })].map((m) => ({ ...m, headers: { 'x-trace': 't', 'x-other': 'o' } })));
    const { rows } = await t.app.pool.query('SELECT custom_headers, headers FROM events WHERE id = $1', [(r as { event_id: string }).event_id]);
    expect(rows[0].custom_headers).toEqual({ 'x-trace': 't', 'X-Own': 'mine' });
    expect(rows[0].headers).toEqual({ 'x-trace': 't', 'x-other': 'o' });
  });

  it('stores the batches handed over while a transaction runs together, answering each with its own results', async () => {
    // As SQS's receive loops hand over ten messages at a time: ten batches at once. Rows written
    // by one transaction share its xmin.
    const seqsOf = (batch: BrokerMessage[]) => batch.map((m) => (JSON.parse(m.body.toString()) as { data: { seq: number } }).data.seq);
    const storedSeqs = async (results: AcceptResult[]) => {
      const ids = results.flatMap((r) => (r.status === 'stored' ? [r.event_id] : []));
      const { rows } = await t.app.pool.query(`SELECT (data::jsonb->>'seq')::int AS seq FROM events WHERE id = ANY($1::uuid[]) ORDER BY 1`, [ids]);
      return rows.map((r: { seq: number }) => r.seq);
    };
    const s = sink();
    const batches = Array.from({ length: 10 }, (_, b) => Array.from({ length: 3 }, (_, k) => good(4000 + b * 3 + k)));
    const answers = await Promise.all(batches.map((batch) => s.accept(batch)));
    for (const [b, results] of answers.entries()) {
      expect(results.map((r) => r.status)).toEqual(['stored', 'stored', 'stored']);
      expect(await storedSeqs(results)).toEqual(seqsOf(batches[b]!));
    }
    // The first two went alone (two transactions at once); the other eight waited, and went together.
    const { rows } = await t.app.pool.query(`SELECT count(DISTINCT xmin::text)::int AS n FROM events WHERE (data::jsonb->>'seq')::int BETWEEN 4000 AND 4029`);
    expect(rows[0].n).toBeLessThanOrEqual(3);

    // A message the database refuses in a joined group: its group is stored one by one, the
    // message is dead-lettered, and every batch still gets its own answers in order.
    await t.app.pool.query(`ALTER TABLE events ADD CONSTRAINT refuses_one CHECK (event_type <> 'refused.by.database')`);
    try {
      const more = Array.from({ length: 6 }, (_, b) =>
        Array.from({ length: 3 }, (_, k) => good(5000 + b * 3 + k, b === 4 && k === 1 ? { event_type: 'refused.by.database' } : {})),
      );
      const got = await Promise.all(more.map((batch) => s.accept(batch)));
      for (const [b, results] of got.entries()) {
        expect(results.map((r) => r.status)).toEqual(b === 4 ? ['stored', 'rejected', 'stored'] : ['stored', 'stored', 'stored']);
        expect(await storedSeqs(results)).toEqual(seqsOf(more[b]!).filter((_, k) => b !== 4 || k !== 1));
      }
      expect((got[4]![1] as { code: string }).code).toBe('WHARF_ERR_DATABASE_REFUSED');
    } finally {
      await t.app.pool.query('ALTER TABLE events DROP CONSTRAINT refuses_one');
    }
  });

  it('holds at most two of the pool\'s connections for one source, however many batches it hands over', async () => {
    // The events table locked from outside: every insert waits, so the transactions a source has
    // open show as backends waiting on that lock.
    // Both on connections of their own, so the pool's are all the source's to take.
    const locker = new pg.Client({ connectionString: t.db.url });
    const watcher = new pg.Client({ connectionString: t.db.url });
    await locker.connect();
    await watcher.connect();
    try {
      await locker.query('BEGIN');
      await locker.query('LOCK TABLE events IN ACCESS EXCLUSIVE MODE');
      const s = sink();
      const pending = Array.from({ length: 10 }, (_, b) => s.accept([good(6000 + b * 2), good(6001 + b * 2)]));
      const waiting = async () =>
        (
          // Not on the locker's connection: a transaction sees pg_stat_activity as it first read it.
          await watcher.query<{ n: number }>(
            `SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%INSERT INTO events%'`,
          )
        ).rows[0]!.n;
      const deadline = Date.now() + 5_000;
      while ((await waiting()) < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      await new Promise((r) => setTimeout(r, 200)); // room for more to start, were they allowed to
      expect(await waiting()).toBe(2);
      await locker.query('COMMIT');
      const answers = await Promise.all(pending);
      expect(answers.flat().map((r) => r.status)).toEqual(Array(20).fill('stored'));
    } finally {
      await locker.end();
      await watcher.end();
    }
  });

  it('rejects the whole batch, storing nothing, when the database cannot be reached', async () => {
    const away = createPool('postgres://wharf@127.0.0.1:1/test', { max: 1 });
    try {
      const s = createBrokerSink({ pool: away, boss: t.app.boss, limits: LIMITS }, source());
      await expect(s.accept([good(30), good(31)])).rejects.toThrow(/ECONNREFUSED|connect/);
    } finally {
      await away.end();
    }
    const { rows } = await t.app.pool.query(`SELECT count(*)::int AS n FROM events WHERE data::jsonb->>'seq' IN ('30', '31')`);
    expect(rows[0].n).toBe(0);
  });
});
