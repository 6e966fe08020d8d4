import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPool, preparedName } from '../../src/store/pool.ts';
import { createTestDatabase, type TestDatabase } from '../harness/db.ts';

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
