/**
 * A fresh database per test file (or per test): a new database on the machine's real Postgres,
 * or a new embedded PGlite in a temp dir, so tests never see each other's rows. On Postgres, a
 * test that starts from the current schema gets a copy of a template migrated once per run
 * (globalSetup), not a migration of its own.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { startEmbeddedPostgres } from '../../src/store/embedded.ts';
import { migrate } from '../../src/store/migrate.ts';
import { createPool } from '../../src/store/pool.ts';

export interface TestDatabase {
  url: string;
  kind: 'postgres' | 'embedded';
  drop(): Promise<void>;
}

/** Users that trust auth may accept on the machines; the first that connects is used. */
export const POSTGRES_USERS = ['postgres', 'root'] as const;

export function postgresAdminUrl(user: string): string {
  return `postgres://${user}@127.0.0.1:5432/test`;
}

/** The admin URL of the first user that can connect, or the last error. */
export async function probePostgres(): Promise<{ url: string } | { error: Error }> {
  let last = new Error('no user tried');
  for (const user of POSTGRES_USERS) {
    const url = postgresAdminUrl(user);
    const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2_000 });
    try {
      await client.connect();
      await client.query('SELECT 1');
      return { url };
    } catch (err) {
      last = err as Error;
    } finally {
      await client.end().catch(() => undefined);
    }
  }
  return { error: last };
}

/** Set WHARF_KEEP_TEST_DB=1 to keep test databases (and embedded data dirs) for inspection. */
const keep = (): boolean => process.env.WHARF_KEEP_TEST_DB === '1';

/**
 * `migrated`: the database may come with Wharf's migrations applied already (on Postgres, copied
 * from this run's template); without it, it is empty, for tests of migrating itself.
 */
export async function createTestDatabase(kind: 'postgres' | 'embedded' = 'postgres', options: { migrated?: boolean } = {}): Promise<TestDatabase> {
  if (kind === 'embedded') return createEmbedded();
  return createOnPostgres(options.migrated ? process.env[TEMPLATE_ENV] : undefined);
}

/** Where globalSetup names this run's migrated template database. */
const TEMPLATE_ENV = 'WHARF_TEST_PG_TEMPLATE';

/**
 * Creates and migrates this run's template database (named per run: other runs may share the
 * Postgres, on other schemas), for createTestDatabase to copy; returns its teardown.
 */
export async function createMigratedTemplate(): Promise<() => Promise<void>> {
  const db = await createOnPostgres();
  const pool = createPool(db.url, { max: 1, applicationName: 'wharf-test-template' });
  try {
    await migrate(pool);
  } catch (err) {
    await db.drop();
    throw err;
  } finally {
    // CREATE DATABASE … TEMPLATE refuses a template anyone is connected to.
    await pool.end();
  }
  process.env[TEMPLATE_ENV] = new URL(db.url).pathname.slice(1);
  return async () => {
    delete process.env[TEMPLATE_ENV];
    await db.drop();
  };
}

async function adminUrl(): Promise<string> {
  // globalSetup found the working user already; probing again covers runs outside vitest.
  if (process.env.WHARF_TEST_PG_URL) return process.env.WHARF_TEST_PG_URL;
  const probe = await probePostgres();
  if ('error' in probe) {
    throw new Error(`test Postgres on 127.0.0.1:5432 does not answer: ${probe.error.message}`, { cause: probe.error });
  }
  return probe.url;
}

async function withAdmin<T>(url: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

async function createOnPostgres(template?: string): Promise<TestDatabase> {
  const admin = await adminUrl();
  const name = `wharf_t_${randomBytes(6).toString('hex')}`;
  // The names are generated here and in createMigratedTemplate, so interpolating them is safe
  // (CREATE DATABASE takes no parameters).
  await withAdmin(admin, (c) => c.query(template ? `CREATE DATABASE ${name} TEMPLATE ${template}` : `CREATE DATABASE ${name}`));
  const url = new URL(admin);
  url.pathname = `/${name}`;

  let dropped: Promise<void> | undefined;
  return {
    url: url.toString(),
    kind: 'postgres',
    drop() {
      dropped ??= (async () => {
        if (keep()) {
          console.error(`WHARF_KEEP_TEST_DB=1: kept database ${url.toString()}`);
          return;
        }
        // FORCE terminates connections a test leaked (a pool not ended, a pg-boss not stopped).
        await withAdmin(admin, (c) => c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`));
      })();
      return dropped;
    },
  };
}

async function createEmbedded(): Promise<TestDatabase> {
  const dataDir = await mkdtemp(join(tmpdir(), 'wharf-embedded-'));
  const server = await startEmbeddedPostgres({ dataDir }).catch(async (err: unknown) => {
    await rm(dataDir, { recursive: true, force: true });
    throw err;
  });

  let dropped: Promise<void> | undefined;
  return {
    url: server.url,
    kind: 'embedded',
    drop() {
      dropped ??= (async () => {
        await server.stop();
        if (keep()) {
          console.error(`WHARF_KEEP_TEST_DB=1: kept embedded data dir ${dataDir}`);
          return;
        }
        await rm(dataDir, { recursive: true, force: true });
      })();
      return dropped;
    },
  };
}

/**
 * A fresh, migrated database with a pool and two bare projects (`p`, `q`): what the dispatch
 * building blocks' tests start from.
 */
export async function migratedDatabase(kind: 'postgres' | 'embedded', applicationName: string): Promise<{ db: TestDatabase; pool: pg.Pool; close(): Promise<void> }> {
  const db = await createTestDatabase(kind, { migrated: true });
  const pool = createPool(db.url, { max: 4, applicationName, prepareStatements: kind === 'postgres' });
  await migrate(pool); // nothing left to do on a copy of the template
  await pool.query(`INSERT INTO projects (id, name, type, settings) VALUES ('p', 'p', 'outgoing', '{}'), ('q', 'q', 'outgoing', '{}')`);
  return {
    db,
    pool,
    async close() {
      await pool.end();
      await db.drop();
    },
  };
}
