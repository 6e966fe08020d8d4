import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type pg from 'pg';
import { sleep } from '../core/backoff.ts';
import { WharfError } from '../core/errors.ts';
import { withTransaction } from './pool.ts';

interface MigrationFile {
  version: number;
  name: string;
  file: string;
}

const MIGRATIONS_DIR = join(import.meta.dirname, 'migrations');
const FILE_PATTERN = /^(\d{3})_([a-z0-9_-]+)\.sql$/;

/**
 * An arbitrary constant naming Wharf's migration lock among the database's advisory locks.
 * Transaction-scoped on purpose: PGlite serves every socket connection from one backend session,
 * where a session lock would be shared by all of them and exclude nothing, whereas the socket
 * server already runs whole transactions one at a time. On Postgres the lock does the excluding.
 */
const LOCK_KEY = '374874395206'; // 0x5748415246, "WHARF"
const LOCK_SQL = `SELECT pg_advisory_xact_lock(${LOCK_KEY})`;

/**
 * A file whose first line is this runs outside a transaction, statement by statement, so it can
 * build indexes `CONCURRENTLY` (without blocking writes on a large table). Each of its statements
 * ends with `;` at the end of a line, and the file must be safe to run again from the start: a
 * crash between two statements leaves the ones before applied and the version unrecorded.
 */
const NO_TRANSACTION = /^-- wharf:no-transaction\b/;

/**
 * Applies the migrations not yet recorded in `wharf_migrations`, in version order, each in its
 * own transaction with the lock held (a no-transaction file: on one session holding it), so
 * replicas that start together apply each file once and a failed file leaves the ones before it
 * applied.
 */
export async function migrate(pool: pg.Pool): Promise<{ applied: string[] }> {
  const files = await listMigrations();
  const applied: string[] = [];

  const done = await withTransaction(pool, async (client) => {
    await client.query(LOCK_SQL);
    await client.query(`CREATE TABLE IF NOT EXISTS wharf_migrations (
      version    integer PRIMARY KEY,
      name       text NOT NULL,
      applied_at timestamptz NOT NULL DEFAULT now()
    )`);
    const { rows } = await client.query<{ version: number }>('SELECT version FROM wharf_migrations');
    return new Set(rows.map((r) => r.version));
  });

  let embedded: boolean | undefined;
  for (const m of files) {
    if (done.has(m.version)) continue;
    const sql = await readFile(m.file, 'utf8');
    if (NO_TRANSACTION.test(sql)) {
      // PGlite serves every connection from one backend, where a session lock excludes nothing;
      // it is one process's own database, so its build blocks nobody: the file runs as any other.
      embedded ??= /\bPGlite\b/.test((await pool.query<{ v: string }>('SELECT version() AS v')).rows[0]!.v);
      if (!embedded) {
        if (await applyOutsideTransaction(pool, m, sql)) applied.push(m.name);
        continue;
      }
    }
    const ran = await withTransaction(pool, async (client) => {
      await client.query(LOCK_SQL);
      // Another replica may have applied it between our first look and taking the lock.
      const { rowCount } = await client.query('SELECT 1 FROM wharf_migrations WHERE version = $1', [m.version]);
      if (rowCount) return false;
      try {
        // No parameters: the simple query protocol, which accepts a file of many statements.
        await client.query(NO_TRANSACTION.test(sql) ? sql.replace(/\bCONCURRENTLY\b/g, '') : sql);
      } catch (err) {
        throw new WharfError('WHARF_ERR_MIGRATION', `migration ${m.name} failed: ${(err as Error).message}`, { cause: err });
      }
      await client.query('INSERT INTO wharf_migrations (version, name) VALUES ($1, $2)', [m.version, m.name]);
      return true;
    });
    if (ran) applied.push(m.name);
  }
  return { applied };
}

/**
 * Runs a no-transaction file on one connection holding the migration lock for its session. The
 * lock is polled, not waited for: a session blocked in pg_advisory_lock holds a snapshot, and
 * CREATE INDEX CONCURRENTLY waits for every older snapshot of the database, so the replica
 * building an index would wait for the replica waiting for it.
 */
async function applyOutsideTransaction(pool: pg.Pool, m: MigrationFile, sql: string): Promise<boolean> {
  const client = await pool.connect();
  try {
    while (!(await client.query<{ ok: boolean }>(`SELECT pg_try_advisory_lock(${LOCK_KEY}) AS ok`)).rows[0]!.ok) await sleep(100);
    const { rowCount } = await client.query('SELECT 1 FROM wharf_migrations WHERE version = $1', [m.version]);
    if (!rowCount) {
      for (const statement of splitStatements(sql)) {
        try {
          await client.query(statement);
        } catch (err) {
          throw new WharfError('WHARF_ERR_MIGRATION', `migration ${m.name} failed: ${(err as Error).message}`, { cause: err });
        }
      }
      await client.query('INSERT INTO wharf_migrations (version, name) VALUES ($1, $2)', [m.version, m.name]);
    }
    await client.query(`SELECT pg_advisory_unlock(${LOCK_KEY})`);
    client.release();
    return !rowCount;
  } catch (err) {
    client.release(true); // closing the session is what releases its lock
    throw err;
  }
}

/** The statements of a no-transaction file: each ends with `;` at the end of a line. */
function splitStatements(sql: string): string[] {
  return sql
    .split(/;[ \t]*(?:\r?\n|$)/)
    .filter((part) => part.split('\n').some((line) => line.trim() !== '' && !line.trim().startsWith('--')));
}

async function listMigrations(): Promise<MigrationFile[]> {
  const files: MigrationFile[] = [];
  for (const entry of await readdir(MIGRATIONS_DIR)) {
    const match = FILE_PATTERN.exec(entry);
    if (!match) continue;
    files.push({ version: Number(match[1]), name: entry.slice(0, -'.sql'.length), file: join(MIGRATIONS_DIR, entry) });
  }
  files.sort((a, b) => a.version - b.version);
  for (let i = 1; i < files.length; i++) {
    if (files[i]!.version === files[i - 1]!.version) {
      throw new WharfError('WHARF_ERR_MIGRATION', `two migrations share version ${files[i]!.version}: ${files[i - 1]!.name}, ${files[i]!.name}`);
    }
  }
  return files;
}
