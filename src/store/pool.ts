import { createHash } from 'node:crypto';
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
  /**
   * Runs repeated statements as named prepared statements (`PreparingClient`). Only for a real
   * Postgres: PGlite's wire server shares one backend between its connections, so two of them
   * preparing the same name would collide.
   */
  prepareStatements?: boolean;
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
    ...(options.prepareStatements ? { Client: PreparingClient } : {}),
  });
  const onError = options.onError;
  pool.on('error', (err) => onError?.(err));
  return pool;
}

/** A statement is named once it has run this many times in the process. */
const PREPARE_AFTER_USES = 3;
/** At most this many statement texts are named; later ones run unnamed. */
const MAX_PREPARED = 256;
/** Texts counted but not yet named; the counts start over when it is full. */
const MAX_COUNTED = 2_000;

const preparedNames = new Map<string, string>();
const uses = new Map<string, number>();

/**
 * The name a statement text runs under, or undefined to run it unnamed. Named once it repeats:
 * Postgres then parses and plans it once per connection instead of at every execution (planning
 * was about 40 % of Postgres's work on the dispatch path's statements: bench/README.md). Texts
 * come from Wharf's and pg-boss's code, never from tenants (their values are parameters), so the
 * set is small; the caps keep a text that varies (a literal built into SQL) from growing every
 * connection's statement cache without bound.
 */
export function preparedName(text: string): string | undefined {
  const known = preparedNames.get(text);
  if (known !== undefined || preparedNames.size >= MAX_PREPARED) return known;
  const n = (uses.get(text) ?? 0) + 1;
  if (n < PREPARE_AFTER_USES) {
    if (uses.size >= MAX_COUNTED) uses.clear();
    uses.set(text, n);
    return undefined;
  }
  uses.delete(text);
  const name = `w_${createHash('sha256').update(text).digest('base64url').slice(0, 22)}`;
  preparedNames.set(text, name);
  return name;
}

/**
 * A pg client that runs a repeated parameterised statement as a named prepared statement. pg
 * parses a name once per connection and afterwards sends only Bind/Execute. Statements without
 * parameters (BEGIN, COMMIT, SET) stay on the simple protocol.
 *
 * A prepared statement whose result columns change under it (a newer replica's migration adding a
 * column to a table a `RETURNING *` reads) fails with "cached plan must not change result type"
 * on that connection; after the first such failure the connection runs everything unnamed, so
 * the failure is one statement's.
 */
export class PreparingClient extends pg.Client {
  #naming = true;

  // pg's overloads: (text, values?, callback?), (config, values?, callback?), (submittable).
  override query(...args: any[]): any { // eslint-disable-line @typescript-eslint/no-explicit-any
    const [text, values] = args as [unknown, unknown];
    const name = this.#naming && typeof text === 'string' && Array.isArray(values) && values.length > 0 ? preparedName(text) : undefined;
    if (name === undefined) return (super.query as (...a: unknown[]) => unknown)(...args);
    const callback = args[2] as ((err: Error | null, res?: unknown) => void) | undefined;
    const config = { name, text: text as string, values: values as unknown[] };
    if (callback) {
      return super.query(config, (err: Error | null, res: unknown) => {
        if (err) this.#noticeStale(err);
        callback(err, res);
      });
    }
    return super.query(config).catch((err: unknown) => {
      this.#noticeStale(err);
      throw err;
    });
  }

  #noticeStale(err: unknown): void {
    if ((err as { code?: string }).code === '0A000' && String((err as Error).message).includes('cached plan must not change result type')) {
      this.#naming = false;
    }
  }
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
 * How a transaction begins. `lookups` is for the hot paths whose statements find rows of the
 * growing tables by the ids they list (the recorder, the handoffs' sweep): it turns sequential
 * and index-only scans off for the transaction (and JIT, below), in the same round trip as its
 * BEGIN.
 *
 * Why: those statements are prepared, and Postgres keeps a prepared statement's generic plan
 * until the table's next ANALYZE. Planned while a table holds a few pages (a new database, a
 * deploy's first minutes), `d.id = ANY($1)` is costed cheaper as a scan of the whole table than
 * as index lookups. The plan then stays while the table grows by thousands of rows a second, and
 * autovacuum visits a database once a minute: each batch's statement reads the whole table,
 * batches grow because each takes longer, and the cost per row grows with them. In
 * `npm run bench` two runs in five went that way: the recorder's two statements took 7 times as
 * long for the same rows, and Postgres's CPU a webhook doubled (docs/cost-per-webhook.md, "Plans made while the
 * tables were tiny"). An index lookup is never far from the best plan for a list of ids, whatever
 * the table's size; a scan is only right while the table is tiny.
 */
export type Begin = 'plain' | 'lookups';

/**
 * The rest of the transaction plans index lookups (`Begin`), also for a transaction that needs it
 * only for one rare statement (ingest's idempotency lookup).
 * - Sequential scans off: on a table of a page or two they look cheaper than the lookups.
 * - Plain and index-only index scans off too, so that an index is read only by a bitmap scan,
 *   which needs a condition: with sequential scans alone off, a table analyzed at 50 rows got a
 *   full scan of an index (in key order, no condition) joined to the list by a hash or a merge,
 *   costed cheaper than a lookup per listed row. Since deliveries are found by their key of two
 *   columns (migration 023), a list of them is a join of (project, id) pairs to the key, no longer
 *   one `id = ANY($1)` condition, so nothing else keeps the lookups. A bitmap lookup of one row
 *   costs a little more than a plain one (10 against 8.4 µs by `EXPLAIN ANALYZE`; docs/cost-per-webhook.md,
 *   "Deliveries keyed by their project"), and `prepared-statements.test.ts` checks the plans.
 * - JIT off: a statement that has no index to use still scans, costed as disabled, and that cost
 *   alone would have it compiled at every execution (100 ms and more).
 */
export const INDEX_LOOKUPS_SQL = 'SET LOCAL enable_seqscan = off; SET LOCAL enable_indexscan = off; SET LOCAL enable_indexonlyscan = off; SET LOCAL jit = off';

const BEGIN: Record<Begin, string> = {
  plain: 'BEGIN',
  // One simple-protocol message: no extra round trip.
  lookups: `BEGIN; ${INDEX_LOOKUPS_SQL}`,
};

/**
 * BEGIN, `fn`, COMMIT on a connection the caller holds; ROLLBACK and `fn`'s error if it throws
 * (also after a failed COMMIT: Postgres has then ended the transaction and ROLLBACK is a harmless
 * no-op, unless the connection itself is gone). `broken` hears of a BEGIN or ROLLBACK that failed:
 * the connection may still hold a transaction open and must not serve anyone else.
 */
export async function inTransaction<T>(
  client: pg.PoolClient,
  fn: () => Promise<T>,
  broken: (err: unknown) => void = () => undefined,
  begin: Begin = 'plain',
): Promise<T> {
  try {
    await client.query(BEGIN[begin]);
  } catch (err) {
    broken(err);
    throw err;
  }
  try {
    const result = await fn();
    await client.query('COMMIT');
    return result;
  } catch (err) {
    await client.query('ROLLBACK').catch(broken);
    throw err;
  }
}

/**
 * Runs `fn` in one transaction on one pooled connection: COMMIT when it resolves, ROLLBACK when
 * it throws, and the original error is what the caller sees. A connection that could not begin
 * or roll back is destroyed rather than handed to the next caller.
 */
export async function withTransaction<T>(pool: pg.Pool, fn: (client: pg.PoolClient) => Promise<T>, begin: Begin = 'plain'): Promise<T> {
  const c = await checkOut(pool);
  try {
    return await inTransaction(c.client, () => fn(c.client), c.fail, begin);
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
