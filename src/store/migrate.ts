import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type pg from 'pg';
import { sleep } from '../core/backoff.ts';
import { WharfError } from '../core/errors.ts';
import { inTransaction } from './pool.ts';

interface MigrationFile {
  version: number;
  name: string;
  file: string;
}

const MIGRATIONS_DIR = join(import.meta.dirname, 'migrations');
const FILE_PATTERN = /^(\d{3})_([a-z0-9_-]+)\.sql$/;

/**
 * An arbitrary constant naming Wharf's migration lock among the database's advisory locks: held
 * for the session on Postgres, for each transaction as well (what excludes on PGlite: `migrate`).
 */
export const MIGRATION_LOCK_KEY = '374874395206';
const LOCK_KEY = MIGRATION_LOCK_KEY; // 0x5748415246, "WHARF"
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
 * own transaction (a no-transaction file: statement by statement), so replicas that start together
 * apply each file once and a failed file leaves the ones before it applied.
 *
 * On Postgres the whole run holds the lock for its session, on one connection, and a replica
 * waits for it by polling outside any transaction. A replica waiting inside a transaction (in
 * `pg_advisory_xact_lock`) held a snapshot, and `CREATE INDEX CONCURRENTLY` in the replica holding
 * the lock waits for every older snapshot's transaction to end: a deadlock, which Postgres broke
 * by failing the build (seen when two replicas started on a fresh database). PGlite serves every
 * connection from one backend session, where a session lock excludes nothing; there each
 * transaction takes the transaction-scoped lock, and the socket server runs whole transactions
 * one at a time. Both hold on Postgres too: a session holding a lock is granted it again.
 */
export async function migrate(pool: pg.Pool): Promise<{ applied: string[] }> {
  const files = await listMigrations();
  const client = await pool.connect();
  try {
    const embedded = /\bPGlite\b/.test((await client.query<{ v: string }>('SELECT version() AS v')).rows[0]!.v);
    if (!embedded) {
      while (!(await client.query<{ ok: boolean }>(`SELECT pg_try_advisory_lock(${LOCK_KEY}) AS ok`)).rows[0]!.ok) await sleep(100);
    }
    const result = await migrateOn(client, files, embedded);
    if (!embedded) await client.query(`SELECT pg_advisory_unlock(${LOCK_KEY})`);
    client.release();
    return result;
  } catch (err) {
    client.release(true); // closing the session is what releases its lock
    throw err;
  }
}

async function migrateOn(client: pg.PoolClient, files: MigrationFile[], embedded: boolean): Promise<{ applied: string[] }> {
  const applied: string[] = [];
  const done = await inTransaction(client, async () => {
    await client.query(LOCK_SQL);
    await client.query(`CREATE TABLE IF NOT EXISTS wharf_migrations (
      version    integer PRIMARY KEY,
      name       text NOT NULL,
      applied_at timestamptz NOT NULL DEFAULT now()
    )`);
    const { rows } = await client.query<{ version: number }>('SELECT version FROM wharf_migrations');
    return new Set(rows.map((r) => r.version));
  });

  for (const m of files) {
    if (done.has(m.version)) continue;
    const sql = await readFile(m.file, 'utf8');
    const failed = (err: unknown) => new WharfError('WHARF_ERR_MIGRATION', `migration ${m.name} failed: ${(err as Error).message}`, { cause: err });
    // PGlite's build blocks nobody (it is one process's own database): its file runs as any other.
    if (NO_TRANSACTION.test(sql) && !embedded) {
      for (const statement of splitStatements(sql)) await client.query(statement).catch((err: unknown) => Promise.reject(failed(err)));
      await client.query('INSERT INTO wharf_migrations (version, name) VALUES ($1, $2)', [m.version, m.name]);
      applied.push(m.name);
      continue;
    }
    const ran = await inTransaction(client, async () => {
      await client.query(LOCK_SQL);
      // Another process may have applied it between our first look and taking the lock.
      const { rowCount } = await client.query('SELECT 1 FROM wharf_migrations WHERE version = $1', [m.version]);
      if (rowCount) return false;
      // No parameters: the simple query protocol, which accepts a file of many statements.
      await client.query(NO_TRANSACTION.test(sql) ? sql.replace(/\bCONCURRENTLY\b/g, '') : sql).catch((err: unknown) => Promise.reject(failed(err)));
      await client.query('INSERT INTO wharf_migrations (version, name) VALUES ($1, $2)', [m.version, m.name]);
      return true;
    });
    if (ran) applied.push(m.name);
  }
  return { applied };
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
