import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPool, inTransaction, INDEX_LOOKUPS_SQL, preparedName, type Begin } from '../../src/store/pool.ts';
import { createTestDatabase, type TestDatabase } from '../harness/db.ts';
import { DEFER_DELIVERIES_SQL, LOAD_WORK_SQL, RECORD_ATTEMPTS_SQL, RECORD_OUTCOMES_SQL } from '../../src/dispatch/worker.ts';
import { RESCUE_HANDOFFS_SQL } from '../../src/dispatch/handoff.ts';
import { HOLDERS_SQL } from '../../src/ingest/persist.ts';

/** The prepared statements of the pool's one connection, as Postgres lists them. */
const preparedOn = async (pool: pg.Pool): Promise<{ name: string; statement: string }[]> =>
  (await pool.query<{ name: string; statement: string }>('SELECT name, statement FROM pg_prepared_statements')).rows;

describe('prepared statements on a real Postgres (PreparingClient)', () => {
  let db: TestDatabase;
  let pool: pg.Pool;
  let admin: pg.Pool;

  beforeAll(async () => {
    db = await createTestDatabase('postgres');
    pool = createPool(db.url, { max: 1, applicationName: 'wharf-test-prepared', prepareStatements: true });
    admin = createPool(db.url, { max: 1, applicationName: 'wharf-test-prepared-admin' });
  });
  afterAll(async () => {
    await pool?.end();
    await admin?.end();
    await db?.drop();
  });

  it('names a parameterised statement once it repeats, and answers it the same as before', async () => {
    const sql = 'SELECT $1::int + 1 AS n /* prepared-test repeat */';
    for (const v of [1, 2]) expect((await pool.query(sql, [v])).rows[0].n).toBe(v + 1);
    expect((await preparedOn(pool)).map((p) => p.statement)).not.toContain(sql);
    for (const v of [3, 4, 5]) expect((await pool.query(sql, [v])).rows[0].n).toBe(v + 1);
    const listed = (await preparedOn(pool)).filter((p) => p.statement === sql);
    expect(listed).toHaveLength(1);
    expect(listed[0]!.name).toBe(preparedName(sql));
    expect(listed[0]!.name).toMatch(/^w_[A-Za-z0-9_-]{22}$/);
  });

  it('leaves statements without parameters (BEGIN, COMMIT) on the simple protocol', async () => {
    for (let i = 0; i < 5; i++) await pool.query('SELECT 41 + 1 AS n /* prepared-test simple */');
    expect((await preparedOn(pool)).some((p) => p.statement.includes('prepared-test simple'))).toBe(false);
  });

  it('after a migration changes a prepared SELECT *, fails that one statement, then runs it unnamed and sees the new column', async () => {
    await admin.query('CREATE TABLE prepared_probe (a int)');
    await admin.query('INSERT INTO prepared_probe VALUES (7)');
    const sql = 'SELECT * FROM prepared_probe WHERE a = $1';
    for (let i = 0; i < 4; i++) expect((await pool.query(sql, [7])).rows).toEqual([{ a: 7 }]);
    await admin.query('ALTER TABLE prepared_probe ADD COLUMN b int DEFAULT 9');
    await expect(pool.query(sql, [7])).rejects.toMatchObject({ code: '0A000' });
    expect((await pool.query(sql, [7])).rows).toEqual([{ a: 7, b: 9 }]);
    expect((await pool.query(sql, [7])).rows).toEqual([{ a: 7, b: 9 }]);
  });
});

/**
 * A prepared statement's generic plan is costed with the tables as they were when it was made and
 * kept until the next ANALYZE. The statements that find rows of the large tables by the ids (or
 * keys) they list must plan index lookups even when made while those tables were tiny: a new
 * database, the first minutes of a deploy. Planned on a page or two of rows, a scan of the whole
 * table looks cheaper, and it stays the plan while the table grows: in `npm run bench` the
 * recorder's statements then took 7 times as long and Postgres's CPU a webhook doubled (issue 15).
 * Their transactions begin with sequential and index-only scans off (pool.ts, `Begin`), or turn
 * them off just before (ingest's idempotency lookup, `INDEX_LOOKUPS_SQL`).
 */
describe('generic plans of the statements that look rows up by id', () => {
  let db: TestDatabase;
  let admin: pg.Pool;

  beforeAll(async () => {
    db = await createTestDatabase('postgres', { migrated: true });
    admin = createPool(db.url, { max: 1, applicationName: 'wharf-test-generic-plans' });
    // 50 rows, analyzed: what a plan made in a new database's first seconds sees once autovacuum
    // has been by (its first ANALYZE of a table comes after 50 rows changed).
    await admin.query(
      `INSERT INTO events (id, project_id, event_type, message_type, data, custom_headers, headers, idempotency_key)
       SELECT gen_random_uuid(), 'default', 't', 'single', '{}', '{}', '{}', 'k' || g FROM generate_series(1, 50) g`,
    );
    await admin.query(
      `INSERT INTO deliveries (id, project_id, event_id, endpoint_id, event_type, status)
       SELECT gen_random_uuid(), 'default', gen_random_uuid(), 'ep', 't', 'scheduled' FROM generate_series(1, 50)`,
    );
    await admin.query('ANALYZE events, deliveries');
  });
  afterAll(async () => {
    await admin?.end();
    await db?.drop();
  });

  /**
   * The plan Postgres keeps for `sql` once it goes generic, made in a transaction begun as `begin`
   * (and `set` run in it first).
   */
  async function genericPlan(sql: string, begin: Begin, set?: string): Promise<string> {
    const params = Math.max(...[...sql.matchAll(/\$(\d+)/g)].map((m) => Number(m[1])));
    const client = await admin.connect();
    try {
      return await inTransaction(
        client,
        async () => {
          await client.query('SET LOCAL plan_cache_mode = force_generic_plan');
          if (set) await client.query(set);
          await client.query(`PREPARE generic_probe AS ${sql}`);
          const { rows } = await client.query<{ 'QUERY PLAN': string }>(`EXPLAIN EXECUTE generic_probe(${Array(params).fill('NULL').join(', ')})`);
          return rows.map((r) => r['QUERY PLAN']).join('\n');
        },
        undefined,
        begin,
      );
    } finally {
      await client.query('DEALLOCATE ALL').catch(() => undefined);
      client.release();
    }
  }

  it.each([
    ['the outcomes (worker.ts)', RECORD_OUTCOMES_SQL, 'deliveries_pkey', undefined],
    ['the attempts (worker.ts)', RECORD_ATTEMPTS_SQL, 'deliveries_pkey', undefined],
    ['the deferrals (worker.ts)', DEFER_DELIVERIES_SQL, 'deliveries_pkey', undefined],
    ['the handoffs sweep (handoff.ts)', RESCUE_HANDOFFS_SQL, 'deliveries_pkey', undefined],
    ["the fetched jobs' work (worker.ts)", LOAD_WORK_SQL, 'deliveries_pkey', undefined],
    // Ingest begins plainly and turns scans off only before this lookup.
    ['the idempotency keys held (persist.ts)', HOLDERS_SQL, 'events_idempotency', INDEX_LOOKUPS_SQL],
  ])('%s: index lookups, no scan of the table, and no JIT', async (_, sql, index, set) => {
    const plan = set === undefined ? await genericPlan(sql, 'lookups') : await genericPlan(sql, 'plain', set);
    expect(plan).not.toMatch(/Seq Scan on (deliveries|events)\b/);
    expect(plan).toContain(index);
    // Every read of the index has a condition, and the deliveries' key is looked up by both its
    // columns (migration 023): a condition on `id` alone reads the whole index. The sweep's one
    // exception is the handoffs of a replica on the previous version, which list no projects.
    const reads = [...plan.matchAll(/Index Scan on (\w+)[^\n]*\n\s*Index Cond: ([^\n]*)/g)].map((m) => [m[1], m[2]]);
    expect(reads.length).toBeGreaterThan(0);
    expect(plan.match(/Index Scan/g)).toHaveLength(reads.length);
    for (const [name, cond] of reads.filter(([name]) => name === 'deliveries_pkey')) {
      expect(cond, `${name}: ${cond}`).toMatch(sql === RESCUE_HANDOFFS_SQL && /^\(id = ANY/.test(cond!) ? /^\(id = ANY \(\$\d+\)\)$/ : /^\(\(project_id = \S+\) AND \(id = /);
    }
    // A plan that still scans (the handoffs, a small table without an index on its lease) is
    // costed as disabled; with JIT on, that cost alone would compile it at every execution.
    expect(plan).not.toContain('JIT');
  });

  it('control: begun plainly, the same small table gets the outcomes a scan of the whole table', async () => {
    expect(await genericPlan(RECORD_OUTCOMES_SQL, 'plain')).toMatch(/Seq Scan on deliveries\b/);
  });
});
