import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type pg from 'pg';
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
const LOCK_SQL = 'SELECT pg_advisory_xact_lock(374874395206)'; // 0x5748415246, "WHARF"

/**
 * Applies the migrations not yet recorded in `wharf_migrations`, in version order, each in its
 * own transaction with the lock held, so replicas that start together apply each file once and
 * a failed file leaves the ones before it applied.
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

  for (const m of files) {
    if (done.has(m.version)) continue;
    const sql = await readFile(m.file, 'utf8');
    const ran = await withTransaction(pool, async (client) => {
      await client.query(LOCK_SQL);
      // Another replica may have applied it between our first look and taking the lock.
      const { rowCount } = await client.query('SELECT 1 FROM wharf_migrations WHERE version = $1', [m.version]);
      if (rowCount) return false;
      try {
        // No parameters: the simple query protocol, which accepts a file of many statements.
        await client.query(sql);
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
