import { randomUUID } from 'node:crypto';
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { PgBoss } from 'pg-boss';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { WharfError } from '../../src/core/errors.ts';
import { createSecretBox, generateApiKey, hashApiKey, loadSecretBox } from '../../src/store/crypto.ts';
import { startEmbeddedPostgres } from '../../src/store/embedded.ts';
import { MIGRATION_LOCK_KEY, migrate } from '../../src/store/migrate.ts';
import { bossDb, createPool, withTransaction } from '../../src/store/pool.ts';
import { createTestDatabase, type TestDatabase } from '../harness/db.ts';

const EMBEDDED_MODULE = join(import.meta.dirname, '../../src/store/embedded.ts');

const count = async (db: pg.Pool | pg.PoolClient | pg.Client, sql: string, params: unknown[] = []): Promise<number> =>
  Number((await db.query<{ n: string }>(sql, params)).rows[0]!.n);

const insertProject = (db: pg.Pool | pg.PoolClient | pg.Client, id: string) =>
  db.query(`INSERT INTO projects (id, name, type, settings) VALUES ($1, $1, 'outgoing', '{}')`, [id]);

/** Resources a test opened, closed after it even when it fails. */
function cleanups() {
  const list: (() => Promise<unknown>)[] = [];
  afterEach(async () => {
    for (const fn of list.splice(0).reverse()) await fn();
  });
  return (fn: () => Promise<unknown>) => list.push(fn);
}

describe.each(['postgres', 'embedded'] as const)('store on %s', (kind) => {
  let db: TestDatabase;
  let pool: pg.Pool;
  const onCleanup = cleanups();
  /** A new database of this kind and a pool of `max` on it, both gone after the test. */
  const freshPool = async (max: number) => {
    const fresh = await createTestDatabase(kind);
    onCleanup(() => fresh.drop());
    const p = createPool(fresh.url, { max });
    onCleanup(() => p.end());
    return { fresh, p };
  };
  // Some behaviour exists only on a real server; those tests are not defined for the embedded one.
  const onPostgres = (name: string, fn: () => Promise<void>) => {
    if (kind === 'postgres') it(name, fn);
  };

  beforeAll(async () => {
    db = await createTestDatabase(kind);
    pool = createPool(db.url, { max: 4, applicationName: 'wharf-test' });
  });
  afterAll(async () => {
    await pool?.end();
    await db?.drop();
  });

  it('migrate applies 001 once and then nothing', async () => {
    const first = await migrate(pool);
    expect(first.applied).toContain('001_init');
    expect(await count(pool, `SELECT count(*) AS n FROM wharf_migrations WHERE version = 1 AND name = '001_init'`)).toBe(1);
    expect(await count(pool, 'SELECT count(*) AS n FROM projects')).toBe(0);

    const second = await migrate(pool);
    expect(second.applied).toEqual([]);
  });

  it('two replicas migrating one fresh database together apply each file once', async () => {
    const fresh = await createTestDatabase(kind);
    onCleanup(() => fresh.drop());
    const a = createPool(fresh.url, { max: 2 });
    const b = createPool(fresh.url, { max: 2 });
    onCleanup(() => Promise.all([a.end(), b.end()]));

    const [ra, rb] = await Promise.all([migrate(a), migrate(b)]);
    const all = [...ra.applied, ...rb.applied];
    expect(all.filter((n) => n === '001_init')).toHaveLength(1);
    expect(new Set(all).size).toBe(all.length);
    expect(await count(a, 'SELECT count(*) AS n FROM wharf_migrations')).toBe(all.length);
  });

  it('the project-ordered indexes are ascending and valid, and lists still read newest first', async () => {
    await migrate(pool);
    const { rows } = await pool.query<{ name: string; def: string; valid: boolean }>(
      `SELECT c.relname AS name, pg_get_indexdef(c.oid) AS def, i.indisvalid AS valid
         FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
        WHERE c.relname IN ('events_pkey', 'events_project', 'deliveries_pkey', 'deliveries_project', 'deliveries_endpoint') ORDER BY 1`,
    );
    expect(rows.map((r) => [r.name, r.valid, /DESC/.test(r.def)])).toEqual([
      ['deliveries_endpoint', true, false],
      ['deliveries_pkey', true, false],
      ['events_pkey', true, false],
    ]);
    // 021 and 023: each primary key is what orders a project's rows; no second index does it.
    expect(rows.find((r) => r.name === 'events_pkey')!.def).toMatch(/UNIQUE INDEX events_pkey ON public\.events USING btree \(project_id, id\)$/);
    expect(rows.find((r) => r.name === 'deliveries_pkey')!.def).toMatch(/UNIQUE INDEX deliveries_pkey ON public\.deliveries USING btree \(project_id, id\)$/);
    expect(await count(pool, `SELECT count(*) AS n FROM pg_indexes WHERE tablename = 'events'`)).toBe(2);
    expect(await count(pool, `SELECT count(*) AS n FROM pg_indexes WHERE tablename = 'deliveries'`)).toBe(3);
  });

  /** A row of `table` for the project ($1) and an id ($2): what the key migrations below keep. */
  const ROW_OF: Record<'events' | 'deliveries', string> = {
    events: `INSERT INTO events (id, project_id, event_type, message_type, data) VALUES ($2, $1, 't', 'fanout', '{}')`,
    deliveries: `INSERT INTO deliveries (id, project_id, event_id, endpoint_id, event_type, status) VALUES ($2, $1, gen_random_uuid(), 'ep', 't', 'success')`,
  };

  it.each([
    ['events', 21, '021_events_project_key', 'events_project', 'events_key'],
    ['deliveries', 23, '023_deliveries_project_key', 'deliveries_project', 'deliveries_key'],
  ] as const)("%s: migration %i makes (project_id, id) the primary key, keeps every row, and can run again", async (table, version, name, second, building) => {
    const { p } = await freshPool(2);
    await migrate(p);
    // Back to the version before: the primary key on id alone beside the project's index, and the migration not recorded.
    await p.query(`ALTER TABLE ${table} DROP CONSTRAINT ${table}_pkey, ADD PRIMARY KEY (id)`);
    await p.query(`CREATE INDEX ${second} ON ${table} (project_id, id)`);
    await p.query(`DELETE FROM wharf_migrations WHERE version = ${version}`);
    await insertProject(p, 'keyed');
    await insertProject(p, 'other');
    for (let g = 1; g <= 20; g++) await p.query(ROW_OF[table], [g % 2 === 0 ? 'keyed' : 'other', randomUUID()]);
    const before = (await p.query(`SELECT * FROM ${table} ORDER BY id`)).rows;
    expect(before).toHaveLength(20);
    const keyOf = async () =>
      (await p.query<{ def: string }>(
        `SELECT pg_get_indexdef(i.indexrelid) AS def FROM pg_index i WHERE i.indrelid = '${table}'::regclass AND i.indisprimary`,
      )).rows.map((r) => r.def);

    for (const run of [1, 2]) {
      expect((await migrate(p)).applied, `run ${run}`).toEqual([name]);
      expect(await keyOf()).toEqual([expect.stringMatching(/\(project_id, id\)$/)]);
      expect(await count(p, `SELECT count(*) AS n FROM pg_indexes WHERE tablename = '${table}' AND indexname IN ('${second}', '${building}')`)).toBe(0);
      expect((await p.query(`SELECT * FROM ${table} ORDER BY id`)).rows).toEqual(before);
      // As after a crash before the version was recorded.
      await p.query(`DELETE FROM wharf_migrations WHERE version = ${version}`);
    }
    await migrate(p);
    // Still a key: the same id twice in a project is refused.
    const [one] = before as { project_id: string; id: string }[];
    await expect(p.query(ROW_OF[table], [one!.project_id, one!.id])).rejects.toMatchObject({ code: '23505' });
  });

  // A no-transaction migration builds its indexes CONCURRENTLY: writers go on while it waits.
  onPostgres('016 rebuilds the indexes of a table that is being written without blocking its writers', async () => {
    const { fresh, p } = await freshPool(3);
    await migrate(p);
    // Back to 015: the descending index, and 016 not yet recorded.
    await p.query(`DROP INDEX IF EXISTS events_project; CREATE INDEX events_project ON events (project_id, id DESC);
                   DELETE FROM wharf_migrations WHERE version = 16`);
    await insertProject(p, 'busy');
    const insertEvent = (db: pg.Pool | pg.Client) =>
      db.query(`INSERT INTO events (id, project_id, event_type, message_type, data) VALUES (gen_random_uuid(), 'busy', 't', 'fanout', '{}')`);
    await insertEvent(p);

    // A writer's transaction stays open: any index build on events has to wait for it.
    const writer = new pg.Client(fresh.url);
    await writer.connect();
    onCleanup(() => writer.end());
    await writer.query('BEGIN');
    await insertEvent(writer);

    const migrating = migrate(p);
    const deadline = Date.now() + 10_000;
    while (!(await count(p, `SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() AND query LIKE '%INDEX%events_project_asc%' AND wait_event_type = 'Lock'`))) {
      expect(Date.now()).toBeLessThan(deadline);
      await new Promise((r) => setTimeout(r, 20));
    }
    // While the build waits, another writer inserts and a reader lists. A plain CREATE INDEX
    // would hold the writers' lock queue here and this insert would run into its timeout.
    const other = new pg.Client(fresh.url);
    await other.connect();
    onCleanup(() => other.end());
    await other.query(`SET statement_timeout = '3s'`);
    await insertEvent(other);
    expect((await other.query(`SELECT id FROM events WHERE project_id = 'busy' ORDER BY id DESC LIMIT 1`)).rowCount).toBe(1);

    await writer.query('COMMIT');
    expect((await migrating).applied).toEqual(['016_ascending_indexes']);
    expect(await count(p, `SELECT count(*) AS n FROM events WHERE project_id = 'busy'`)).toBe(3);
    const def = (await p.query<{ def: string; valid: boolean }>(
      `SELECT pg_get_indexdef(c.oid) AS def, i.indisvalid AS valid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relname = 'events_project'`,
    )).rows;
    expect(def).toEqual([{ def: expect.not.stringContaining('DESC'), valid: true }]);
    expect(await count(p, `SELECT count(*) AS n FROM pg_class WHERE relname LIKE '%\\_asc'`)).toBe(0);
    // Run again from the start (as after a crash before the version was recorded): same result.
    await p.query('DELETE FROM wharf_migrations WHERE version = 16');
    expect((await migrate(p)).applied).toEqual(['016_ascending_indexes']);
    expect(await count(p, `SELECT count(*) AS n FROM pg_indexes WHERE indexname IN ('events_project', 'deliveries_project', 'deliveries_endpoint')`)).toBe(3);
  });

  // Seen in CI: two replicas started on a fresh database, one building 016's indexes while the
  // other waited for the lock inside a transaction, and Postgres broke the deadlock by failing the build.
  onPostgres('a replica waiting for the migration lock holds no transaction open: a concurrent index build goes on', async () => {
    const { fresh, p } = await freshPool(2);
    // Another replica holds the lock (as while it applies a no-transaction file).
    const holder = new pg.Client(fresh.url);
    await holder.connect();
    onCleanup(() => holder.end());
    await holder.query(`SELECT pg_advisory_lock(${MIGRATION_LOCK_KEY})`);
    await holder.query('CREATE TABLE built (n int)');

    const migrating = migrate(p);
    // The waiting replica polls: never in a transaction, never blocked on a lock.
    for (let i = 0; i < 5; i++) {
      await new Promise((r) => setTimeout(r, 60));
      const { rows } = await holder.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() AND (xact_start IS NOT NULL AND state <> 'active' OR wait_event_type = 'Lock')`,
      );
      expect(rows[0]!.n).toBe(0);
    }
    // What the lock holder does meanwhile: an index build that waits for every older transaction.
    await holder.query(`SET statement_timeout = '5s'`);
    await holder.query('CREATE INDEX CONCURRENTLY built_n ON built (n)');
    await holder.query(`SELECT pg_advisory_unlock(${MIGRATION_LOCK_KEY})`);
    expect((await migrating).applied).toContain('001_init');
    expect(await count(p, 'SELECT count(*) AS n FROM wharf_migrations')).toBeGreaterThan(15);
  });

  it('deleting events, an endpoint or a project deletes their deliveries and attempts', async () => {
    await migrate(pool);
    await insertProject(pool, `cascade-${kind}`);
    const p = `cascade-${kind}`;
    await pool.query(`INSERT INTO endpoints (project_id, id, name, url) VALUES ($1, 'e1', 'e1', 'http://127.0.0.1:9/'), ($1, 'e2', 'e2', 'http://127.0.0.1:9/')`, [p]);
    // Three events with a delivery each (two to e1, one to e2), each delivery with two attempts.
    await pool.query(
      `WITH ev AS (INSERT INTO events (id, project_id, event_type, message_type, data)
                   SELECT gen_random_uuid(), $1, 't' || g, 'single', '{}' FROM generate_series(1, 3) g RETURNING id, event_type),
            de AS (INSERT INTO deliveries (id, project_id, event_id, endpoint_id, event_type, status)
                   SELECT gen_random_uuid(), $1, id, CASE WHEN event_type = 't3' THEN 'e2' ELSE 'e1' END, event_type, 'success' FROM ev RETURNING id, endpoint_id)
       INSERT INTO delivery_attempts (id, delivery_id, project_id, endpoint_id, attempt, url, latency_ms)
       SELECT gen_random_uuid(), de.id, $1, de.endpoint_id, a, 'http://127.0.0.1:9/', 1 FROM de, generate_series(1, 2) a`,
      [p],
    );
    const left = async () => ({
      deliveries: await count(pool, 'SELECT count(*) AS n FROM deliveries WHERE project_id = $1', [p]),
      attempts: await count(pool, 'SELECT count(*) AS n FROM delivery_attempts WHERE project_id = $1', [p]),
    });
    expect(await left()).toEqual({ deliveries: 3, attempts: 6 });
    await pool.query(`DELETE FROM events WHERE project_id = $1 AND event_type = 't1'`, [p]);
    expect(await left()).toEqual({ deliveries: 2, attempts: 4 });
    await pool.query(`DELETE FROM endpoints WHERE project_id = $1 AND id = 'e2'`, [p]);
    expect(await left()).toEqual({ deliveries: 1, attempts: 2 });
    expect(await count(pool, `SELECT count(*) AS n FROM delivery_attempts a JOIN deliveries d ON d.id = a.delivery_id WHERE d.endpoint_id = 'e1' AND d.project_id = $1`, [p])).toBe(2);
    // A project deleted by hand (Wharf never does) takes everything of it along.
    await pool.query('DELETE FROM projects WHERE id = $1', [p]);
    expect(await left()).toEqual({ deliveries: 0, attempts: 0 });
    expect(await count(pool, 'SELECT count(*) AS n FROM events WHERE project_id = $1', [p])).toBe(0);
  });

  it('withTransaction commits on success and rolls back on throw, rethrowing the original error', async () => {
    await migrate(pool);
    const value = await withTransaction(pool, async (client) => {
      await insertProject(client, `kept-${kind}`);
      return 42;
    });
    expect(value).toBe(42);

    const boom = new Error('boom');
    await expect(
      withTransaction(pool, async (client) => {
        await insertProject(client, `gone-${kind}`);
        throw boom;
      }),
    ).rejects.toBe(boom);

    // A statement error aborts the transaction; the caller still sees that error, not ROLLBACK's.
    await expect(
      withTransaction(pool, async (client) => {
        await insertProject(client, `gone2-${kind}`);
        await client.query('SELECT * FROM no_such_table');
      }),
    ).rejects.toMatchObject({ code: '42P01' });

    expect(await count(pool, `SELECT count(*) AS n FROM projects WHERE id = $1`, [`kept-${kind}`])).toBe(1);
    expect(await count(pool, `SELECT count(*) AS n FROM projects WHERE id LIKE 'gone%'`)).toBe(0);
    // Every connection went back to the pool outside a transaction.
    expect(pool.idleCount).toBe(pool.totalCount);
  });

  onPostgres('withTransaction destroys a connection that cannot roll back', async () => {
    const errors: Error[] = [];
    const single = createPool(db.url, { max: 1, onError: (err) => errors.push(err) });
    onCleanup(() => single.end());

    // The backend dies under the transaction, so ROLLBACK fails too.
    await expect(
      withTransaction(single, async (client) => {
        await client.query('SELECT pg_terminate_backend(pg_backend_pid())');
      }),
    ).rejects.toThrow();
    // Had the dead client gone back to the pool, this would fail on it.
    expect(await withTransaction(single, async (client) => (await client.query('SELECT 1 AS one')).rows[0].one)).toBe(1);
  });

  it('pg-boss jobs inserted through bossDb live and die with the transaction', async () => {
    await migrate(pool);
    const boss = new PgBoss({ connectionString: db.url, max: 4 });
    const bossErrors: Error[] = [];
    boss.on('error', (err) => bossErrors.push(err));
    await boss.start();
    onCleanup(() => boss.stop({ graceful: false, close: true }));
    await boss.createQueue('t');

    await expect(
      withTransaction(pool, async (client) => {
        await boss.insert('t', [{ data: { n: 1 } }], { db: bossDb(client) });
        throw new Error('roll back');
      }),
    ).rejects.toThrow('roll back');
    expect(await count(pool, `SELECT count(*) AS n FROM pgboss.job WHERE name = 't'`)).toBe(0);

    await withTransaction(pool, async (client) => {
      await insertProject(client, `with-job-${kind}`);
      await boss.insert('t', [{ data: { n: 2 } }], { db: bossDb(client) });
    });
    expect(await count(pool, `SELECT count(*) AS n FROM pgboss.job WHERE name = 't'`)).toBe(1);

    const seen: number[] = [];
    await boss.work<{ n: number }>('t', { pollingIntervalSeconds: 0.5 }, async (jobs) => {
      for (const job of jobs) seen.push(job.data.n);
    });
    await expect.poll(() => seen, { timeout: 15_000 }).toEqual([2]);
    expect(bossErrors).toEqual([]);
  });

  // On the embedded server this does not hold (see startEmbeddedPostgres): PGlite serves every
  // socket connection from one backend, so a NOTIFY is written to the connection
  // that committed it, never to pg-boss's LISTEN connection, while pg_listening_channels() still
  // says the listener is registered; pg-boss then waits for its notify backstop poll (30 s).
  onPostgres('a notify queue wakes a worker long before its backstop poll', async () => {
    const boss = new PgBoss({ connectionString: db.url, max: 4, useListenNotify: true });
    boss.on('error', () => undefined);
    await boss.start();
    onCleanup(() => boss.stop({ graceful: false, close: true }));
    await boss.createQueue('n', { notify: true });

    const seen: number[] = [];
    await boss.work<{ n: number }>('n', { pollingIntervalSeconds: 2, notifyPollingIntervalSeconds: 60 }, async (jobs) => {
      for (const job of jobs) seen.push(job.data.n);
    });
    // Let the worker's first (empty) fetch pass, so only a NOTIFY can bring the job in time.
    await expect.poll(() => boss.getWipData().find((w) => w.name === 'n')?.lastFetchedOn ?? null).not.toBeNull();
    await withTransaction(pool, (client) => boss.insert('n', [{ data: { n: 7 } }], { db: bossDb(client) }));
    await expect.poll(() => seen, { timeout: 20_000 }).toEqual([7]);
  });
});

describe('embedded Postgres', () => {
  const onCleanup = cleanups();

  const tempDir = async () => {
    const dir = await mkdtemp(join(tmpdir(), 'wharf-store-test-'));
    onCleanup(() => rm(dir, { recursive: true, force: true }));
    return dir;
  };

  it('keeps committed data across stop and restart from the same data dir', async () => {
    const dataDir = await tempDir();
    const first = await startEmbeddedPostgres({ dataDir });
    expect(first.url).toMatch(/^postgres:\/\/postgres:[A-Za-z0-9_-]{32}@127\.0\.0\.1:\d+\/postgres\?sslmode=disable$/);
    const p1 = createPool(first.url, { max: 2 });
    expect((await migrate(p1)).applied).toContain('001_init');
    await insertProject(p1, 'durable');
    await p1.end();
    // A client still inside a transaction when the server stops: its work is rolled back.
    const open = new pg.Client(first.url);
    open.on('error', () => undefined);
    await open.connect();
    await open.query('BEGIN');
    await insertProject(open, 'uncommitted');
    // Idempotent, also when called concurrently.
    await Promise.all([first.stop(), first.stop()]);
    await first.stop();

    const second = await startEmbeddedPostgres({ dataDir });
    onCleanup(() => second.stop());
    const p2 = createPool(second.url, { max: 2 });
    onCleanup(() => p2.end());
    expect((await p2.query('SELECT id FROM projects')).rows).toEqual([{ id: 'durable' }]);
    expect((await migrate(p2)).applied).toEqual([]);
  });

  it('keeps concurrent extended-protocol queries from different connections apart', async () => {
    const dataDir = await tempDir();
    const server = await startEmbeddedPostgres({ dataDir });
    onCleanup(() => server.stop());
    const pool = createPool(server.url, { max: 16 });
    onCleanup(() => pool.end());
    // Explicit transactions beside auto-commit queries, each Parse/Bind/Execute/Sync. Serving
    // messages one by one (as @electric-sql/pglite-socket does) interleaves these runs: a query
    // fails with 'portal "" does not exist' or gets another connection's row.
    await pool.query('CREATE TABLE k (id int PRIMARY KEY, v text)');
    const errors: unknown[] = [];
    pool.on('error', (err) => errors.push(err));
    const wrong: number[] = [];
    await Promise.all(
      Array.from({ length: 300 }, async (_, i) => {
        if (i % 2 === 0) {
          await withTransaction(pool, async (c) => {
            await c.query('INSERT INTO k (id, v) VALUES ($1, $2) ON CONFLICT DO NOTHING', [i % 50, `v${i}`]);
            const r = await c.query('SELECT $1::int AS n FROM k WHERE id = $2', [i, i % 50]);
            if (r.rows[0]?.n !== i) wrong.push(i);
          });
        } else {
          const r = await pool.query('SELECT $1::int AS n, $2::text AS s', [i, `v${i}`]);
          if (r.rows[0]?.n !== i || r.rows[0]?.s !== `v${i}`) wrong.push(i);
        }
      }),
    );
    expect(wrong).toEqual([]);
    expect(errors).toEqual([]);
    expect(await count(pool, 'SELECT count(*) AS n FROM k')).toBe(25); // even i, so ids 0, 2, … 48
    // A transaction holds the database: another connection's query waits for its COMMIT.
    const a = await pool.connect();
    await a.query('BEGIN');
    await a.query('CREATE TABLE t (x int)');
    let otherDone = false;
    const other = pool.query('SELECT count(*)::int AS n FROM t').then((r) => {
      otherDone = true;
      return r.rows[0].n as number;
    });
    await a.query('INSERT INTO t VALUES (1), (2)');
    expect(otherDone).toBe(false);
    await a.query('COMMIT');
    a.release();
    expect(await other).toBe(2);
  });

  it('refuses a second server on a data dir in use', async () => {
    const dataDir = await tempDir();
    const running = await startEmbeddedPostgres({ dataDir });
    onCleanup(() => running.stop());
    await expect(startEmbeddedPostgres({ dataDir })).rejects.toMatchObject({ code: 'WHARF_ERR_EMBEDDED_LOCKED' });
  });

  it('keeps a commit the socket answered when the process is killed, and loses the open transaction', async () => {
    const dataDir = await tempDir();
    // A child process, so the kill is real: no stop(), no PGlite close, a stale lock file left.
    const script = `
      import pg from 'pg';
      import { startEmbeddedPostgres } from ${JSON.stringify(EMBEDDED_MODULE)};
      const e = await startEmbeddedPostgres({ dataDir: ${JSON.stringify(dataDir)} });
      const c = new pg.Client(e.url);
      await c.connect();
      await c.query('CREATE TABLE t (v int)');
      await c.query('INSERT INTO t VALUES (1)');
      await c.query('BEGIN');
      await c.query('INSERT INTO t VALUES (2)');
      process.stdout.write('committed\\n');
      setInterval(() => {}, 1000);
    `;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
      cwd: join(import.meta.dirname, '../..'),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d));
    const exited = new Promise((resolve) => child.on('exit', resolve));
    await new Promise<void>((resolve, reject) => {
      child.stdout.on('data', (d: Buffer) => String(d).includes('committed') && resolve());
      child.on('exit', (code) => reject(new Error(`child exited (${code}) before committing: ${stderr}`)));
    });
    child.kill('SIGKILL');
    await exited;

    const again = await startEmbeddedPostgres({ dataDir });
    onCleanup(() => again.stop());
    const p = createPool(again.url, { max: 1 });
    onCleanup(() => p.end());
    expect((await p.query<{ v: number }>('SELECT v FROM t ORDER BY v')).rows).toEqual([{ v: 1 }]);
  });
});

describe('secret box', () => {
  const onCleanup = cleanups();
  const key = Buffer.alloc(32, 7);

  it('round-trips, with a fresh IV per value', () => {
    const box = createSecretBox(key);
    for (const plain of ['', 'whsec_abc', 'ünïcødé ✓ '.repeat(50)]) {
      const sealed = box.encrypt(plain);
      expect(sealed.startsWith('v1:')).toBe(true);
      expect(box.decrypt(sealed)).toBe(plain);
    }
    expect(box.encrypt('same')).not.toBe(box.encrypt('same'));
  });

  it('keeps its own copy of the key: a caller that zeroes its buffer changes nothing', () => {
    const mine = Buffer.from(key);
    const box = createSecretBox(mine);
    const sealed = box.encrypt('kept');
    mine.fill(0);
    expect(box.decrypt(sealed)).toBe('kept');
    expect(createSecretBox(key).decrypt(box.encrypt('the same key'))).toBe('the same key');
  });

  it('rejects altered values and other keys with WHARF_ERR_DECRYPT, never showing the plaintext', () => {
    const box = createSecretBox(key);
    const plain = 'top-secret-value';
    const sealed = box.encrypt(plain);
    const raw = Buffer.from(sealed.slice(3), 'base64');

    const attempts: string[] = [];
    for (const at of [0, 12, 28, raw.length - 1]) {
      const bad = Buffer.from(raw);
      bad[at]! ^= 1;
      attempts.push(`v1:${bad.toString('base64')}`);
    }
    attempts.push(`v1:${raw.subarray(0, 20).toString('base64')}`, 'v2:abc', plain);

    const other = createSecretBox(Buffer.alloc(32, 8));
    const failures = [...attempts.map((a) => () => box.decrypt(a)), () => other.decrypt(sealed)];
    for (const fail of failures) {
      let caught: unknown;
      try {
        fail();
      } catch (err) {
        caught = err;
      }
      expect(caught).toBeInstanceOf(WharfError);
      expect(caught).toMatchObject({ code: 'WHARF_ERR_DECRYPT' });
      expect(JSON.stringify({ m: (caught as Error).message, c: String((caught as Error).cause) })).not.toContain(plain);
    }
  });

  it('creates the key file with mode 0600 on first load and reuses it', async () => {
    const base = await mkdtemp(join(tmpdir(), 'wharf-key-test-'));
    onCleanup(() => rm(base, { recursive: true, force: true }));
    const dataDir = join(base, 'nested', 'data');

    const box1 = await loadSecretBox({ key: '', dataDir });
    const file = join(dataDir, 'encryption.key');
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect((await readFile(file, 'utf8')).trim()).toMatch(/^[0-9a-f]{64}$/);

    const box2 = await loadSecretBox({ key: '', dataDir });
    expect(box2.decrypt(box1.encrypt('kept'))).toBe('kept');

    // Two replicas starting on an empty shared data dir end up with one key.
    const shared = join(base, 'shared');
    const [a, b] = await Promise.all([loadSecretBox({ key: '', dataDir: shared }), loadSecretBox({ key: '', dataDir: shared })]);
    expect(b.decrypt(a.encrypt('one key'))).toBe('one key');
  });

  it('accepts a configured hex or base64 key and names the setting when it is wrong', async () => {
    const dataDir = join(tmpdir(), 'wharf-unused');
    const hex = await loadSecretBox({ key: key.toString('hex'), dataDir });
    const b64 = await loadSecretBox({ key: key.toString('base64'), dataDir });
    expect(b64.decrypt(hex.encrypt('x'))).toBe('x');
    expect(createSecretBox(key).decrypt(hex.encrypt('y'))).toBe('y');

    for (const bad of ['abc', 'z'.repeat(64), Buffer.alloc(16).toString('base64')]) {
      await expect(loadSecretBox({ key: bad, dataDir })).rejects.toMatchObject({ code: 'WHARF_ERR_CONFIG', field: 'encryption_key' });
    }
  });

  it('hashes API keys with SHA-256 and generates wharf_ keys', () => {
    expect(hashApiKey('abc')).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
    const k = generateApiKey();
    expect(k).toMatch(/^wharf_[A-Za-z0-9_-]{43}$/);
    expect(generateApiKey()).not.toBe(k);
  });
});
