/**
 * A PostgreSQL server of the test's own, in a temp dir on a free port, which the test may stop,
 * start and restart at will. The machine's shared Postgres (:5432) serves every other engineer's
 * tests and must never be restarted; a test that takes the database away from Wharf uses this.
 *
 * initdb refuses to run as root, so on a root shell the cluster belongs to the `postgres` OS user
 * and every server command runs through `runuser -u postgres`.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { promisify } from 'node:util';
import pg from 'pg';
import { freePort } from './net.ts';

const run = promisify(execFile);

/** Debian's server binaries; `WHARF_TEST_PG_BIN` points elsewhere (another version, another distribution). */
const BIN = process.env.WHARF_TEST_PG_BIN ?? '/usr/lib/postgresql/15/bin';
const OS_USER = 'postgres';

export interface PrivatePostgres {
  port: number;
  /** A URL to `database` (default `postgres`) as the superuser `postgres`, trust auth. */
  url(database?: string): string;
  /** Creates a database and returns its URL. */
  createDatabase(name: string): Promise<string>;
  /** Stops the server: `fast` rolls back open transactions and closes connections, `immediate` is a crash (recovery at next start). */
  stop(mode?: 'fast' | 'immediate'): Promise<void>;
  /** Starts it again on the same port; resolves once it takes connections. */
  start(): Promise<void>;
  /** `pg_ctl restart`: stop (fast or immediate) and start, as one command. */
  restart(mode?: 'fast' | 'immediate'): Promise<void>;
  /** Stops the server if it runs and removes its directory. Idempotent. */
  destroy(): Promise<void>;
}

/** Runs a server binary as the `postgres` OS user when this process is root, as itself otherwise. */
async function asOwner(command: string, args: string[]): Promise<string> {
  const bin = join(BIN, command);
  const [file, argv] = process.getuid?.() === 0 ? ['runuser', ['-u', OS_USER, '--', bin, ...args]] : [bin, args];
  try {
    const { stdout } = await run(file, argv, { timeout: 60_000 });
    return stdout;
  } catch (err) {
    const e = err as Error & { stderr?: string };
    throw new Error(`${command} ${args[0] ?? ''} failed: ${(e.stderr ?? '').trim() || e.message}`, { cause: err });
  }
}

async function waitForConnections(url: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last: Error = new Error('not tried');
  while (Date.now() < deadline) {
    const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 1_000 });
    try {
      await client.connect();
      await client.query('SELECT 1');
      return;
    } catch (err) {
      last = err as Error;
    } finally {
      await client.end().catch(() => undefined);
    }
    await delay(100);
  }
  throw new Error(`private Postgres did not take connections within ${timeoutMs} ms: ${last.message}`);
}

/** initdb in a fresh temp dir and start the server; about 2 s. */
export async function startPrivatePostgres(): Promise<PrivatePostgres> {
  const dir = await mkdtemp(join(tmpdir(), 'wharf-pg-'));
  if (process.getuid?.() === 0) await run('chown', [`${OS_USER}:`, dir]);
  const data = join(dir, 'data');
  const log = join(dir, 'server.log');
  const port = await freePort();
  const url = (database = 'postgres') => `postgres://postgres@127.0.0.1:${port}/${database}`;
  // The socket goes in the temp dir too: the shared server owns /var/run/postgresql's.
  const serverOptions = `-p ${port} -c listen_addresses=127.0.0.1 -k ${dir}`;
  let running = false;

  const withLog = async <T>(what: Promise<T>): Promise<T> => {
    try {
      return await what;
    } catch (err) {
      const tail = (await readFile(log, 'utf8').catch(() => '')).split('\n').slice(-20).join('\n');
      throw new Error(`${(err as Error).message}\nserver log (${log}):\n${tail}`, { cause: err });
    }
  };

  const start = async (): Promise<void> => {
    await withLog(asOwner('pg_ctl', ['start', '-D', data, '-l', log, '-w', '-t', '30', '-o', serverOptions]));
    running = true;
    await waitForConnections(url(), 30_000);
  };

  try {
    // --no-sync: the cluster lives for one test run, so a machine crash may lose it whole.
    await asOwner('initdb', ['-D', data, '-U', 'postgres', '-A', 'trust', '-E', 'UTF8', '--locale=C', '--no-sync']);
    await start();
  } catch (err) {
    await asOwner('pg_ctl', ['stop', '-D', data, '-m', 'immediate']).catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
    throw err;
  }

  let destroyed: Promise<void> | undefined;
  return {
    port,
    url,
    async createDatabase(name) {
      const client = new pg.Client({ connectionString: url() });
      await client.connect();
      try {
        // Test code chooses the name; CREATE DATABASE takes no parameters.
        await client.query(`CREATE DATABASE ${client.escapeIdentifier(name)}`);
      } finally {
        await client.end();
      }
      return url(name);
    },
    async stop(mode = 'fast') {
      await withLog(asOwner('pg_ctl', ['stop', '-D', data, '-m', mode, '-w', '-t', '30']));
      running = false;
    },
    start,
    async restart(mode = 'fast') {
      await withLog(asOwner('pg_ctl', ['restart', '-D', data, '-l', log, '-m', mode, '-w', '-t', '30', '-o', serverOptions]));
      running = true;
      await waitForConnections(url(), 30_000);
    },
    destroy() {
      destroyed ??= (async () => {
        if (running) await asOwner('pg_ctl', ['stop', '-D', data, '-m', 'immediate', '-w']).catch(() => undefined);
        running = false;
        if (process.env.WHARF_KEEP_TEST_DB === '1') {
          console.error(`WHARF_KEEP_TEST_DB=1: kept private Postgres data dir ${data}`);
          return;
        }
        await rm(dir, { recursive: true, force: true });
      })();
      return destroyed;
    },
  };
}
