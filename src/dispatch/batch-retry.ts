/**
 * Batch retry: every delivery matching a filter is sent again, in the background. The API counts
 * the matches and queues one pg-boss job holding the filter and the moment of the request; a worker
 * then reschedules the matches in chunks, each chunk in one transaction with its delivery jobs. A
 * delivery rescheduled by the job is updated after that moment, so a rerun of the job (pg-boss
 * retries a crashed worker) never picks it twice.
 */
import type pg from 'pg';
import type { PgBoss } from 'pg-boss';
import type { DeliveryStatus } from '../core/types.ts';
import { withTransaction } from '../store/pool.ts';
import type { Queryable } from '../store/queryable.ts';
import { enqueueDeliveries, executorOf } from './queue.ts';
import { applyTransitions } from './operations.ts';
import type { AlertDeps } from './alerts.ts';
import { refKey } from '../store/endpoints.ts';

export const BATCH_RETRY_QUEUE = 'wharf-batch-retry';
const CHUNK = 500;

export interface BatchRetryFilter {
  project_id: string;
  statuses: DeliveryStatus[];
  /** Any of these endpoints; null: every endpoint. */
  endpoint_ids: string[] | null;
  /** Deliveries of any of these events (a replay); null: of every event. */
  event_ids: string[] | null;
  event_type: string | null;
  /** ISO times bounding `created_at`. */
  created_from: string | null;
  created_to: string | null;
  /** Only deliveries last changed before this (ISO): the moment the retry was asked for. */
  cutoff: string;
}

function where(f: BatchRetryFilter): { sql: string; params: unknown[] } {
  const params: unknown[] = [f.project_id, f.statuses, f.cutoff];
  const clauses = ['project_id = $1', 'status = ANY($2)', 'updated_at <= $3'];
  const add = (column: string, op: string, value: unknown): void => {
    params.push(value);
    clauses.push(op.endsWith('(') ? `${column} ${op}$${params.length})` : `${column} ${op} $${params.length}`);
  };
  if (f.endpoint_ids != null) add('endpoint_id', '= ANY(', f.endpoint_ids);
  // A job queued before endpoint_ids (one endpoint) keeps its narrow filter.
  const legacy = (f as { endpoint_id?: string | null }).endpoint_id;
  if (legacy != null) add('endpoint_id', '=', legacy);
  if (f.event_ids != null) add('event_id', '= ANY(', f.event_ids);
  if (f.event_type !== null) add('event_type', '=', f.event_type);
  if (f.created_from !== null) add('created_at', '>=', f.created_from);
  if (f.created_to !== null) add('created_at', '<=', f.created_to);
  return { sql: clauses.join(' AND '), params };
}

export async function countMatching(db: Queryable, f: BatchRetryFilter): Promise<number> {
  const { sql, params } = where(f);
  const { rows } = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM deliveries WHERE ${sql}`, params);
  return rows[0]!.n;
}

/** Reschedules one chunk; returns how many. Locked rows (a worker sending them now) are skipped. */
async function retryChunk(pool: pg.Pool, deps: AlertDeps, f: BatchRetryFilter): Promise<number> {
  return withTransaction(pool, async (db) => {
    const { sql, params } = where(f);
    // The chunk is picked once, in a CTE of its own, as retention's purges pick theirs (purgeAged).
    const { rows } = await db.query<{ id: string; attempts: number; endpoint_id: string }>(
      `WITH picked AS MATERIALIZED (SELECT id FROM deliveries WHERE ${sql} ORDER BY id LIMIT ${CHUNK} FOR UPDATE SKIP LOCKED)
       UPDATE deliveries d SET status = 'scheduled', next_attempt_at = now(), updated_at = clock_timestamp()
       FROM picked WHERE d.project_id = $1 AND d.id = picked.id
       RETURNING d.id, d.attempts, d.endpoint_id`,
      params,
    );
    // As with a single resend, a disabled endpoint is tried again: pending until its first answer.
    const endpoints = [...new Set(rows.map((r) => r.endpoint_id))].sort();
    await applyTransitions(deps, db, endpoints.map((endpoint_id) => (
      { project_id: f.project_id, endpoint_id, from: ['inactive'], to: 'pending', reason: 'its deliveries were retried in a batch' })));
    await enqueueDeliveries(deps.boss, db, rows.map((r) => ({ delivery_id: r.id, attempt: r.attempts + 1, endpoint: refKey({ project_id: f.project_id, endpoint_id: r.endpoint_id }) })));
    return rows.length;
  });
}

export async function retryMatching(pool: pg.Pool, deps: AlertDeps, f: BatchRetryFilter): Promise<number> {
  let total = 0;
  for (;;) {
    const n = await retryChunk(pool, deps, f);
    total += n;
    if (n < CHUNK) return total;
  }
}

export async function createBatchRetryQueue(boss: PgBoss): Promise<void> {
  await boss.createQueue(BATCH_RETRY_QUEUE, { retryLimit: 10, retryDelay: 5, retryBackoff: true, expireInSeconds: 3600 });
}

export async function queueBatchRetry(boss: PgBoss, db: Queryable, f: BatchRetryFilter): Promise<void> {
  await boss.send(BATCH_RETRY_QUEUE, f, { db: executorOf(db) });
}

/**
 * Counts what `f` matches now and, when anything does, queues its retry; the moment of the
 * request is the cutoff, so what changes after it is not picked. Batch retry, event replay and
 * batch replay all come here.
 */
export async function retryLater(pool: pg.Pool, boss: PgBoss, f: Omit<BatchRetryFilter, 'cutoff'>): Promise<number> {
  return withTransaction(pool, async (db) => {
    const { rows } = await db.query<{ t: Date }>('SELECT clock_timestamp() AS t');
    const filter: BatchRetryFilter = { ...f, cutoff: rows[0]!.t.toISOString() };
    const queued = await countMatching(db, filter);
    if (queued > 0) await queueBatchRetry(boss, db, filter);
    return queued;
  });
}

/** The worker: one job at a time is plenty; each is a loop of chunked transactions. */
export async function workBatchRetries(deps: AlertDeps, pool: pg.Pool, onDone?: (n: number, f: BatchRetryFilter) => void): Promise<void> {
  await deps.boss.work<BatchRetryFilter>(BATCH_RETRY_QUEUE, { batchSize: 1, pollingIntervalSeconds: 1 }, async ([job]) => {
    const n = await retryMatching(pool, deps, job!.data);
    onDone?.(n, job!.data);
  });
}
