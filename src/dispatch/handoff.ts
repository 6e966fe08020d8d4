import type pg from 'pg';
import type { PgBoss } from 'pg-boss';
import { withTransaction } from '../store/pool.ts';
import type { Queryable } from '../store/queryable.ts';
import { refKey } from '../store/endpoints.ts';
import { DELIVERY_HEARTBEAT_SECONDS, enqueueDeliveries, type DeliveryJobInsert } from './queue.ts';
import type { WorkRow } from './work.ts';

/**
 * First attempts handed straight from ingest to its own process's dispatcher, without a pg-boss
 * job: no job row inserted, claimed and deleted in pg-boss's table of 17 indexes, no fetch, no
 * NOTIFY round. The ingest transaction writes one `handoffs` row listing the deliveries it hands
 * over (migration 018), and the dispatcher starts them once it commits. The row is the handoff's
 * lease: renewed while the process holds the deliveries, deleted with the record of the last of
 * them. A process that dies leaves its rows to run out, and any dispatcher's sweep turns them into
 * pg-boss jobs for the deliveries still waiting for their first attempt: at least once, as before.
 */

/**
 * A handoff's lease: renewed every half of `DELIVERY_HEARTBEAT_SECONDS` (three renewals a lease),
 * and swept every `HANDOFF_SWEEP_SECONDS` once run out: a dead process's first attempts are queued
 * within about 20 s, as soon as its pg-boss jobs are.
 */
export const HANDOFF_LEASE_SECONDS = 1.5 * DELIVERY_HEARTBEAT_SECONDS;
export const HANDOFF_SWEEP_SECONDS = 5;

/**
 * A first attempt offered to the dispatcher, with everything its send needs, put together by
 * ingest from what its transaction read and wrote: the dispatcher starts it without a query.
 */
export interface HandoffJob extends DeliveryJobInsert {
  work: WorkRow;
}

/** What ingest asks of its own process's dispatcher. */
export interface DirectDispatch {
  /**
   * Takes what this process can send itself of `jobs` (first attempts due now), reserving their
   * slots; null when it takes none. The caller writes the claim's row in its transaction
   * (ingest/persist.ts), queues the rest as usual, and calls `start` once the transaction
   * committed or `release` if it did not.
   */
  claim(jobs: HandoffJob[]): Claim | null;
}

export interface Claim {
  /** The id of its `handoffs` row. */
  id: string;
  taken: HandoffJob[];
  /** Taken deliveries the transaction did not insert (their event lost on its idempotency key): nothing to send. */
  drop(deliveryIds: string[]): void;
  start(): void;
  release(): void;
}

/** Ends handoffs whose every delivery is settled, in the recorder's transaction. */
export async function finishHandoffs(db: Queryable, ids: string[]): Promise<void> {
  if (ids.length === 0) return;
  await db.query('DELETE FROM handoffs WHERE id = ANY($1::uuid[])', [ids]);
}

/** Renews the leases of the handoffs this process holds. */
export async function renewHandoffs(pool: pg.Pool, ids: string[]): Promise<void> {
  if (ids.length === 0) return;
  await pool.query(`UPDATE handoffs SET lease_until = now() + $2 * interval '1 second' WHERE id = ANY($1::uuid[])`, [ids, HANDOFF_LEASE_SECONDS]);
}

/** Handoffs turned into jobs by one sweep, at most (the next sweep takes the rest). */
const RESCUE_BATCH = 200;

/**
 * Deletes the handoffs due ($1: ids given up on, and every run-out one) and returns their
 * deliveries still waiting for their first attempt, in a transaction that plans index lookups
 * (worker.ts, above DEFER_DELIVERIES_SQL): this runs every few seconds on every dispatcher. A
 * handoff's deliveries are found by the key, each under every project the handoff lists (migration
 * 023; nearly always one), a lookup each: the subquery kept apart by OFFSET 0 is what makes the
 * plan use both columns (joined plainly, it looked the ids up alone and matched the projects by a
 * hash). A row written by a replica on the previous version lists none: its
 * deliveries are looked up by id alone, a scan of the key's index that an empty list skips.
 */
export const RESCUE_HANDOFFS_SQL = `WITH due AS (
     DELETE FROM handoffs WHERE id IN (
       SELECT id FROM handoffs WHERE lease_until < now() OR id = ANY($1::uuid[])
       LIMIT ${RESCUE_BATCH} FOR UPDATE SKIP LOCKED)
     RETURNING deliveries, projects
   )
   SELECT d.id, d.project_id, d.endpoint_id
   FROM due CROSS JOIN LATERAL unnest(due.projects) AS p(project_id) CROSS JOIN LATERAL unnest(due.deliveries) AS k(id)
   CROSS JOIN LATERAL (
     SELECT d.id, d.project_id, d.endpoint_id FROM deliveries d
     WHERE d.project_id = p.project_id AND d.id = k.id AND d.attempts = 0 AND d.status = 'scheduled' OFFSET 0) d
   UNION ALL
   SELECT d.id, d.project_id, d.endpoint_id FROM deliveries d
   WHERE d.id = ANY(ARRAY(SELECT unnest(deliveries) FROM due WHERE projects IS NULL)) AND d.attempts = 0 AND d.status = 'scheduled'`;

/**
 * Turns handoffs into pg-boss jobs: those whose lease ran out (their process died or stalls), and
 * `ids` at once (this process gave them up). Only deliveries still waiting for their first attempt
 * get a job; the row goes in the same transaction. Returns the jobs' deliveries.
 */
export async function rescueHandoffs(deps: { pool: pg.Pool; boss: PgBoss }, ids: string[] = []): Promise<number> {
  return withTransaction(deps.pool, async (db) => {
    const { rows } = await db.query<{ id: string; project_id: string; endpoint_id: string }>(RESCUE_HANDOFFS_SQL, [ids]);
    await enqueueDeliveries(
      deps.boss,
      db,
      rows.map((r) => ({ delivery_id: r.id, attempt: 1, endpoint: refKey(r) })),
    );
    return rows.length;
  }, 'lookups');
}
