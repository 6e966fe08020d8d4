import { chmod, mkdir, open, readFile, rm } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { WharfError } from '../core/errors.ts';
import { serveWire, type WireServer } from './pglite-wire.ts';

/** A running embedded Postgres: connect to `url` with `pg` or pg-boss like any other server. */
export interface EmbeddedPostgres {
  url: string;
  /** Stops accepting connections, then closes the database. Safe to call more than once. */
  stop(): Promise<void>;
}

export interface EmbeddedPostgresOptions {
  /** Wharf's data dir; the database lives in `<dataDir>/pglite`. */
  dataDir: string;
  /**
   * The wire server's connection limit: the app's pool, pg-boss's pool and its LISTEN client need
   * several. The server still runs one message group at a time and keeps a connection's open
   * transaction exclusive.
   */
  maxConnections?: number;
  host?: string;
  /** 0 (the default) lets the OS pick a free port. */
  port?: number;
}

const DEFAULT_MAX_CONNECTIONS = 32;

/**
 * Starts PGlite on `<dataDir>/pglite` (created, and initialised on first use) and serves it over
 * the Postgres wire protocol on a loopback TCP port, so the rest of Wharf needs no embedded-only
 * code path.
 *
 * What differs from a real server, because every socket connection shares PGlite's one backend:
 * - An open transaction holds the whole database: other connections' statements wait until it
 *   ends. Code inside a transaction must therefore never wait on another connection (a
 *   `pool.query`, a pg-boss call without `{ db }`): on Postgres that works, here it hangs forever.
 * - Session state is shared: SET, session advisory locks (any connection "holds" them), LISTEN.
 * - NOTIFY is written to the connection that committed it, not to the one that ran LISTEN, so
 *   pg-boss's `useListenNotify` never wakes a worker and its slow notify backstop poll applies.
 */
export async function startEmbeddedPostgres(options: EmbeddedPostgresOptions): Promise<EmbeddedPostgres> {
  const dir = join(options.dataDir, 'pglite');
  const host = options.host ?? '127.0.0.1';
  // The database's files are for this user alone, as Postgres insists for its data directory.
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await chmod(dir, 0o700);
  const releaseLock = await lockDataDir(join(options.dataDir, 'pglite.lock'));

  let db: PGlite;
  try {
    // A path (not idb:// or memory://) mounts the directory itself, so Postgres writes its WAL
    // straight to the host's files: a commit the socket has answered survives a crash of this
    // process. PGlite cannot fsync through the WASM file layer, so an OS crash may still lose the
    // last commits; deployments that need that guarantee use a real Postgres (database.url).
    db = await PGlite.create({ dataDir: dir });
  } catch (err) {
    await releaseLock();
    throw new WharfError('WHARF_ERR_EMBEDDED_START', `cannot open the embedded database in ${dir}`, { cause: err });
  }

  let server: WireServer;
  let password: string;
  try {
    password = await databasePassword(join(options.dataDir, 'pglite.password'));
    server = await serveWire(db, {
      host,
      port: options.port ?? 0,
      maxConnections: options.maxConnections ?? DEFAULT_MAX_CONNECTIONS,
      password,
    });
  } catch (err) {
    await db.close().catch(() => {});
    await releaseLock();
    throw new WharfError('WHARF_ERR_EMBEDDED_START', `cannot serve the embedded database on ${host}:${options.port ?? 0}`, {
      cause: err,
    });
  }

  const port = server.port;
  const urlHost = host.includes(':') ? `[${host}]` : host;
  const url = `postgres://postgres:${encodeURIComponent(password)}@${urlHost}:${port}/postgres?sslmode=disable`;

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    // Every caller waits for the same shutdown, so a second stop() cannot close PGlite early.
    stopping ??= (async () => {
      // The server first drops its connections, rolling back any transaction one left open, and
      // only then may the database close under it.
      await server.stop();
      if (!db.closed) await db.close();
      await releaseLock();
    })();
    return stopping;
  };

  return { url, stop };
}

/**
 * The embedded database's password: made once, at random, into a file only this user can read,
 * and read back on every start. Whoever can read the data directory can read the database's files
 * anyway; whoever can only reach the port cannot get in. An operator may replace it with a
 * password of their own (printable ASCII, as SCRAM takes it unchanged, at least 16 characters).
 */
async function databasePassword(path: string): Promise<string> {
  try {
    const handle = await open(path, 'wx', 0o600);
    const password = randomBytes(24).toString('base64url');
    await handle.writeFile(`${password}\n`);
    await handle.close();
    return password;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  // A copy restored with looser permissions is made private again.
  await chmod(path, 0o600);
  const password = (await readFile(path, 'utf8')).trim();
  if (password.length < 16 || !/^[\x21-\x7e]+$/.test(password)) {
    throw new WharfError('WHARF_ERR_EMBEDDED_START', `${path} must hold the embedded database's password: at least 16 printable ASCII characters without spaces`);
  }
  return password;
}

/**
 * PGlite is a single-user Postgres: it ignores postmaster.pid, so two processes (or two starts in
 * one process) on the same directory would both write to it and corrupt it. A lock file holding
 * the owner's pid refuses the second; a lock left by a process that has died (a crash) is taken
 * over, since PGlite recovers from the WAL like Postgres after a crash.
 */
async function lockDataDir(lockPath: string): Promise<() => Promise<void>> {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const handle = await open(lockPath, 'wx', 0o600);
      await handle.writeFile(`${process.pid}\n`);
      await handle.close();
      let released = false;
      return async () => {
        if (released) return;
        released = true;
        await rm(lockPath, { force: true });
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const owner = Number.parseInt(await readFile(lockPath, 'utf8').catch(() => ''), 10);
    if (Number.isInteger(owner) && owner > 0 && isAlive(owner)) {
      throw new WharfError(
        'WHARF_ERR_EMBEDDED_LOCKED',
        `the embedded database in ${lockPath.replace(/\.lock$/, '')} is in use by process ${owner}` +
          (owner === process.pid ? ' (this one)' : '') +
          '; stop it first, or give this instance another data_dir',
      );
    }
    await rm(lockPath, { force: true });
  }
  throw new WharfError('WHARF_ERR_EMBEDDED_LOCKED', `cannot take the lock ${lockPath}`);
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: the process exists but belongs to another user.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
