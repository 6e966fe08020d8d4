import pg from 'pg';

export interface PoolOptions {
  max?: number;
  applicationName?: string;
  /**
   * Called when an idle pooled connection fails (server restart, network drop). pg-pool has
   * already discarded the connection; the next checkout opens a new one.
   */
  onError?: (err: Error) => void;
  /**
   * How long a checkout may wait for a connection (a new one to open, or a busy pool to free
   * one) before it fails: a database that stops answering then costs callers a bounded wait and a
   * 503, not a request that hangs. Default 15 s.
   */
  connectTimeoutMs?: number;
}

const CONNECT_TIMEOUT_MS = 15_000;

/**
 * A pg pool whose idle-connection failures are reported rather than fatal: pg-pool emits 'error'
 * for them, and an EventEmitter 'error' with no listener would crash the process.
 */
export function createPool(url: string, options: PoolOptions = {}): pg.Pool {
  const pool = new pg.Pool({
    connectionString: url,
    max: options.max ?? 10,
    application_name: options.applicationName ?? 'wharf',
    connectionTimeoutMillis: options.connectTimeoutMs ?? CONNECT_TIMEOUT_MS,
  });
  const onError = options.onError;
  pool.on('error', (err) => onError?.(err));
  return pool;
}

/** A connection checked out of the pool; `done` hands it back, destroyed if it broke or `fail` was called. */
export interface CheckedOut {
  client: pg.PoolClient;
  /** Marks the connection as not to be reused (it may hold a transaction or a lock). */
  fail(err: unknown): void;
  done(): void;
}

/**
 * Checks a connection out with an 'error' listener: pg-pool stops listening for a client's
 * 'error' while it is checked out, and a connection lost meanwhile (a database restart) would then
 * crash the process. The statement in flight rejects on its own; this only keeps the event from
 * being unhandled, and the connection from being reused.
 */
export async function checkOut(pool: pg.Pool): Promise<CheckedOut> {
  const client = await pool.connect();
  let broken: Error | undefined;
  const onError = (err: Error): void => {
    broken ??= err;
  };
  client.on('error', onError);
  return {
    client,
    fail: (err) => {
      broken ??= asError(err);
    },
    done: () => {
      // Removed only after release(), which re-attaches pg-pool's idle listener, so the client is
      // never without one.
      client.release(broken);
      client.removeListener('error', onError);
    },
  };
}

/**
 * Runs `fn` in one transaction on one pooled connection: COMMIT when it resolves, ROLLBACK when
 * it throws, and the original error is what the caller sees.
 */
export async function withTransaction<T>(pool: pg.Pool, fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const c = await checkOut(pool);
  try {
    await c.client.query('BEGIN');
  } catch (err) {
    c.fail(err);
    c.done();
    throw err;
  }
  try {
    const result = await fn(c.client);
    await c.client.query('COMMIT');
    return result;
  } catch (err) {
    // Also after a failed COMMIT: Postgres has then ended the transaction and ROLLBACK is a
    // harmless no-op, unless the connection itself is gone, which the ROLLBACK reveals.
    try {
      await c.client.query('ROLLBACK');
    } catch (rollbackErr) {
      // A connection that cannot roll back may still hold the transaction open; handing it to
      // the next caller would run their statements inside it, so the pool destroys it instead.
      c.fail(rollbackErr);
    }
    throw err;
  } finally {
    c.done();
  }
}

/** The executor pg-boss accepts as `{ db }` (its `Db`, kept structural here). */
export interface BossDb {
  executeSql(text: string, values?: unknown[]): Promise<{ rows: any[] }>; // eslint-disable-line @typescript-eslint/no-explicit-any
}

/**
 * pg-boss's executor contract over a pool or a transaction's client: passing
 * `{ db: bossDb(client) }` to `send`/`insert` writes the job in that transaction.
 */
export function bossDb(client: pg.PoolClient | pg.Pool): BossDb {
  return { executeSql: (text, values) => client.query(text, values) };
}

function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}
