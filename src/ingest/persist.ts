import type pg from 'pg';
import type { PgBoss } from 'pg-boss';
import type { DeliveryStatus, EventInput } from '../core/types.ts';
import { uuidv7 } from '../core/ids.ts';
import { INDEX_LOOKUPS_SQL, checkOut, inTransaction, withTransaction } from '../store/pool.ts';
import { intArray, packTexts, textArray, uuidArray } from '../store/params.ts';
import type { Queryable } from '../store/queryable.ts';
import { enqueueDeliveries, type DeliveryJobInsert } from '../dispatch/queue.ts';
import { HANDOFF_LEASE_SECONDS, type Claim, type DirectDispatch, type HandoffJob } from '../dispatch/handoff.ts';
import { refKey } from '../store/endpoints.ts';
import { routeBatch } from './route.ts';
import type { IngestLimits } from './limits.ts';

export type IngestOutcome =
  | { status: 'stored'; event_id: string; deliveries: number }
  | { status: 'duplicate'; event_id: string }
  | { status: 'rejected'; code: string; reason: string };

export interface IngestDeps {
  pool: pg.Pool;
  boss: PgBoss;
  /** What every event must satisfy before it is stored (limits.ts). */
  limits: IngestLimits;
  /**
   * This process's dispatcher, when it has one: it takes the first attempts it has room for
   * straight from the ingest transaction, without a pg-boss job (dispatch/handoff.ts).
   */
  direct?: DirectDispatch;
}

/** The claims an ingest transaction made on its process's dispatcher: started once it commits. */
export interface Handoff {
  direct: DirectDispatch;
  claims: Claim[];
}

/**
 * Runs `fn` in one transaction that may ingest events: the deliveries it hands to this process's
 * dispatcher are started once it commits, and their slots given back if it does not. A COMMIT
 * whose answer was lost may still have committed: the handoff's row then outlives its lease and
 * the sweep queues its deliveries (handoff.ts).
 */
export async function withIngestTransaction<T>(deps: IngestDeps, fn: (db: Queryable, handoff: Handoff | null) => Promise<T>): Promise<T> {
  return withClaims(deps, (handoff) => withTransaction(deps.pool, (db) => fn(db, handoff)));
}

/**
 * Runs `write`, which may claim first attempts on this process's dispatcher: the claims still held
 * when it resolves start (what it wrote has committed), and when it rejects they are given back.
 */
async function withClaims<T>(deps: IngestDeps, write: (handoff: Handoff | null) => Promise<T>): Promise<T> {
  const handoff: Handoff | null = deps.direct ? { direct: deps.direct, claims: [] } : null;
  let result: T;
  try {
    result = await write(handoff);
  } catch (err) {
    for (const c of handoff?.claims ?? []) c.release();
    throw err;
  }
  for (const c of handoff?.claims ?? []) c.start();
  return result;
}

/**
 * Events and, joined on the events actually inserted, their deliveries: an event that loses on its
 * idempotency key gets none. The deliveries handed to this process's dispatcher ($20, of those
 * inserted) go into the handoff's row ($19, with their projects $22; dispatch/handoff.ts), when
 * there is one. The events' data is one bytea ($10) with each one's place in it ($23, $24):
 * packTexts (store/params.ts, which says why; the uuid arrays are its literals too).
 *
 * The endpoints the deliveries go to are locked FOR KEY SHARE (`ep`) until the statement's
 * transaction commits, in place of the foreign key deliveries no longer check row by row
 * (migration 017): an endpoint deleted meanwhile either waits for the deliveries and then takes
 * them along (its cascade), or is gone before the lock, and its deliveries are not inserted.
 * Routing reads the endpoints without a lock: its statement may be a transaction of its own
 * (ingestEvents). Answers the events inserted, and the deliveries listed but not inserted (of an
 * event that lost its key, or of an endpoint deleted since routing read it).
 */
const insertEventsSql = (onConflict: string): string =>
  `WITH ev AS (
     INSERT INTO events (id, project_id, source_id, event_type, message_type, endpoint_id, owner_id,
       idempotency_key, custom_headers, data, headers)
     SELECT u.id, u.project_id, u.source_id, u.event_type, u.message_type, u.endpoint_id, u.owner_id,
       u.idempotency_key, u.custom_headers, convert_from(substring($10::bytea FROM u.data_at FOR u.data_len), 'UTF8'), u.headers
     FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
       $8::text[], $9::jsonb[], $23::int[], $24::int[], $11::jsonb[])
       AS u(id, project_id, source_id, event_type, message_type, endpoint_id, owner_id, idempotency_key, custom_headers, data_at, data_len, headers)
     ${onConflict}
     RETURNING id
   ), ep AS (
     SELECT e.project_id, e.id FROM endpoints e
     WHERE (e.project_id, e.id) IN (SELECT * FROM unnest($13::text[], $15::text[]))
     FOR KEY SHARE OF e
   ), dl AS (
     INSERT INTO deliveries (id, project_id, event_id, endpoint_id, event_type, status, next_attempt_at, retry)
     SELECT d.id, d.project_id, d.event_id, d.endpoint_id, d.event_type, d.status,
            CASE WHEN d.status = 'scheduled' THEN now() END, d.retry
     FROM unnest($12::uuid[], $13::text[], $14::uuid[], $15::text[], $16::text[], $17::text[], $18::jsonb[])
       AS d(id, project_id, event_id, endpoint_id, event_type, status, retry)
     JOIN ev ON ev.id = d.event_id
     JOIN ep ON ep.project_id = d.project_id AND ep.id = d.endpoint_id
     RETURNING id
   ), ho AS (
     INSERT INTO handoffs (id, deliveries, projects, lease_until)
     SELECT $19::uuid, array_agg(dl.id), $22::text[], now() + $21 * interval '1 second' FROM dl WHERE dl.id = ANY($20::uuid[])
     HAVING count(*) > 0
   )
   SELECT id, true AS event FROM ev
   UNION ALL
   SELECT d.id, false FROM unnest($12::uuid[]) AS d(id) WHERE NOT EXISTS (SELECT 1 FROM dl WHERE dl.id = d.id)`;

/** A batch with an idempotency key: a key the project already holds skips its event. */
const INSERT_EVENTS_KEYED = insertEventsSql('ON CONFLICT (project_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING');
/**
 * A batch without one cannot conflict (ids are new uuidv7s), and ON CONFLICT would still make each
 * row a speculative insertion: an extra WAL record (HEAP_CONFIRM, 56 bytes a webhook in
 * `npm run bench -- --wal-records`) and the arbiter index checked first.
 */
const INSERT_EVENTS = insertEventsSql('');

/**
 * The events holding idempotency keys ($1 projects, $2 keys, pairwise): one index lookup per key.
 * The lateral subquery (kept apart by OFFSET 0) and sequential scans off before it
 * (INDEX_LOOKUPS_SQL) are what make it so in a generic plan made while `events` was small, which
 * otherwise scans the whole table (worker.ts, above RECORD_OUTCOMES_SQL).
 */
export const HOLDERS_SQL = `SELECT e.id, e.project_id, e.idempotency_key
   FROM unnest($1::text[], $2::text[]) AS k(project_id, idempotency_key)
   CROSS JOIN LATERAL (
     SELECT e.id, e.project_id, e.idempotency_key FROM events e
     WHERE e.project_id = k.project_id AND e.idempotency_key = k.idempotency_key OFFSET 0) e`;

/**
 * Stores a batch of events, their deliveries and their jobs atomically: when this resolves, all
 * of it is durable; when it rejects, none of it is (the caller must not ack), unless it rejects
 * after the write itself (see below). Outcomes are per input and in input order. A repeated
 * idempotency key, in the database or earlier in the same batch, is a duplicate of the first.
 *
 * Without BEGIN and COMMIT when it can (issue 15): routing only reads, and when every delivery to
 * send goes to this process's dispatcher (a handoff) the one statement that inserts events,
 * deliveries and the handoff's row is the only write, and a statement is atomic on its own. That
 * is two round trips a batch instead of four; at a steady 700 events/s, with batches of about
 * five, a third of ingest's round trips. Under READ COMMITTED each statement of a transaction
 * took its own snapshot anyway, so routing sees what it did. A batch with jobs for pg-boss (no
 * dispatcher here, or one without room) writes them in one transaction with the insert, as
 * before. A batch that lost idempotency keys looks their holders up after the insert has
 * committed: if that lookup fails the caller sees the error, though the events it inserted are
 * stored and sent (a retry with the same keys finds them as duplicates).
 */
export async function ingestEvents(deps: IngestDeps, inputs: EventInput[]): Promise<IngestOutcome[]> {
  if (inputs.length === 0) return [];
  return withClaims(deps, async (handoff) => {
    const c = await checkOut(deps.pool);
    try {
      return await ingestWith(deps.boss, c.client, inputs, handoff, (fn) => inTransaction(c.client, fn, c.fail));
    } finally {
      c.done();
    }
  });
}

/**
 * Ingests in the caller's transaction. With a `handoff` (withIngestTransaction), first attempts
 * this process's dispatcher takes get no pg-boss job.
 */
export async function ingestInTransaction(boss: PgBoss, db: Queryable, inputs: EventInput[], handoff: Handoff | null = null): Promise<IngestOutcome[]> {
  return ingestWith(boss, db, inputs, handoff, null);
}

/** Runs `fn` in a transaction of its own on ingest's connection (ingestEvents). */
type OwnTransaction = <T>(fn: () => Promise<T>) => Promise<T>;

/**
 * Ingest's steps. `transaction` null: `db` is already in the caller's transaction. Otherwise
 * `db` is in none, and the writes take one only when there is more than the insert to write
 * (ingestEvents); the claims made on this process's dispatcher then start once the insert has
 * committed, before the rest.
 */
async function ingestWith(boss: PgBoss, db: Queryable, inputs: EventInput[], handoff: Handoff | null, transaction: OwnTransaction | null): Promise<IngestOutcome[]> {
  const outcomes: IngestOutcome[] = new Array(inputs.length);

  // Route per project (a batch nearly always has one).
  const byProject = new Map<string, number[]>();
  inputs.forEach((input, i) => {
    const list = byProject.get(input.project_id) ?? [];
    list.push(i);
    byProject.set(input.project_id, list);
  });
  const routes = new Array<Awaited<ReturnType<typeof routeBatch>>[number]>(inputs.length);
  for (const [projectId, idx] of byProject) {
    // With a handoff, routing also reads what the dispatcher needs to send at once.
    const results = await routeBatch(db, projectId, idx.map((i) => inputs[i]!), handoff !== null);
    idx.forEach((i, k) => (routes[i] = results[k]!));
  }

  const toInsert: number[] = [];
  const ids: string[] = [];
  inputs.forEach((_, i) => {
    const route = routes[i]!;
    if (!route.ok) outcomes[i] = { status: 'rejected', code: route.code, reason: route.reason };
    else {
      toInsert.push(i);
      ids[i] = uuidv7();
    }
  });
  if (toInsert.length === 0) return outcomes;

  // Deliveries are worked out for every routed event, and the same statement that inserts the
  // events inserts those of the events it actually inserted (the join on RETURNING): one round
  // trip for both, and an event that lost on its idempotency key gets none.
  const delivery = { id: [] as string[], project: [] as string[], event: [] as string[], endpoint: [] as string[], type: [] as string[], status: [] as DeliveryStatus[], retry: [] as (string | null)[] };
  // Each event's jobs, queued only if the event is stored (each with its work when routing read it).
  const jobsOf = new Map<number, (DeliveryJobInsert & Partial<HandoffJob>)[]>();
  for (const i of toInsert) {
    const route = routes[i]!;
    if (!route.ok) continue;
    const input = inputs[i]!;
    const mine: (DeliveryJobInsert & Partial<HandoffJob>)[] = [];
    for (const t of route.targets) {
      const id = uuidv7();
      // A paused or disabled endpoint keeps a record of what it missed, and nothing is sent.
      const status: DeliveryStatus = t.status === 'active' || t.status === 'pending' ? 'scheduled' : 'discarded';
      delivery.id.push(id);
      delivery.project.push(input.project_id);
      delivery.event.push(ids[i]!);
      delivery.endpoint.push(t.endpoint_id);
      delivery.type.push(input.event_type);
      delivery.status.push(status);
      delivery.retry.push(t.retry === null ? null : JSON.stringify(t.retry));
      if (status !== 'scheduled') continue;
      const job: DeliveryJobInsert & Partial<HandoffJob> = { delivery_id: id, attempt: 1, endpoint: refKey({ project_id: input.project_id, endpoint_id: t.endpoint_id }) };
      if (t.work) {
        // The delivery as the work query would read it once committed: the dispatcher starts it as is.
        job.work = {
          id, project_id: input.project_id, endpoint_id: t.endpoint_id, event_id: ids[i]!, status, attempts: 0,
          event_type: input.event_type, data: input.data, custom_headers: input.custom_headers, retry: t.retry, ...t.work,
        };
      }
      mine.push(job);
    }
    jobsOf.set(i, mine);
  }
  const ready = [...jobsOf.values()].flat();

  // This process's dispatcher takes what it has room for; the statement writes the handoff's row
  // for those of them it inserts. One whose event loses on its idempotency key is dropped from the
  // claim once the statement has answered, and settled as having nothing to do.
  const claim = handoff && ready.length > 0 ? handoff.direct.claim(ready.filter((j): j is HandoffJob => j.work !== undefined)) : null;
  // Kept before the write: if the transaction fails, the caller gives the claim's slots back.
  if (claim) handoff!.claims.push(claim);
  const taken = new Set(claim?.taken.map((j) => j.delivery_id));

  const rows = toInsert.map((i) => inputs[i]!);
  const data = packTexts(rows.map((r) => r.data));
  // What the statement wrote: the events, and the deliveries it did not (ep in insertEventsSql).
  interface Written { stored: Set<string>; lost: Set<string> }
  const insert = async (): Promise<Written> => {
    const { rows: answered } = await db.query<{ id: string; event: boolean }>(
      rows.some((r) => r.idempotency_key !== null) ? INSERT_EVENTS_KEYED : INSERT_EVENTS,
      [
        uuidArray(toInsert.map((i) => ids[i]!)),
        textArray(rows.map((r) => r.project_id)),
        textArray(rows.map((r) => r.source_id)),
        textArray(rows.map((r) => r.event_type)),
        textArray(rows.map((r) => r.message_type)),
        textArray(rows.map((r) => r.endpoint_id ?? null)),
        textArray(rows.map((r) => r.owner_id ?? null)),
        textArray(rows.map((r) => r.idempotency_key)),
        textArray(rows.map((r) => JSON.stringify(r.custom_headers))),
        data.bytes,
        textArray(rows.map((r) => JSON.stringify(r.headers ?? {}))),
        uuidArray(delivery.id), textArray(delivery.project), uuidArray(delivery.event), textArray(delivery.endpoint), textArray(delivery.type),
        textArray(delivery.status), textArray(delivery.retry),
        claim?.id ?? null, uuidArray([...taken]), HANDOFF_LEASE_SECONDS, claim ? textArray([...new Set(claim.taken.map((j) => j.work.project_id))]) : null,
        intArray(data.starts), intArray(data.lengths),
      ],
    );
    const stored = new Set(answered.filter((r) => r.event).map((r) => r.id));
    const lost = new Set(answered.filter((r) => !r.event).map((r) => r.id));
    if (claim && lost.size > 0) claim.drop(claim.taken.filter((j) => lost.has(j.delivery_id)).map((j) => j.delivery_id));
    return { stored, lost };
  };

  // Anything not inserted lost on its idempotency key: find the event that holds it.
  const lostKeys = (stored: Set<string>): number[] => toInsert.filter((i) => !stored.has(ids[i]!));
  const settleDuplicates = async (dupes: number[]): Promise<void> => {
    // Index lookups for the keys, however small `events` was when the plan was made (pool.ts,
    // INDEX_LOOKUPS_SQL): a round trip only when a key was taken, and the common ingest keeps
    // Postgres's own choices.
    await db.query(INDEX_LOOKUPS_SQL);
    const { rows: existing } = await db.query<{ id: string; project_id: string; idempotency_key: string }>(
      HOLDERS_SQL,
      [dupes.map((i) => inputs[i]!.project_id), dupes.map((i) => inputs[i]!.idempotency_key)],
    );
    const holder = new Map(existing.map((r) => [`${r.project_id}\u0000${r.idempotency_key}`, r.id]));
    for (const i of dupes) {
      const key = `${inputs[i]!.project_id}\u0000${inputs[i]!.idempotency_key}`;
      outcomes[i] = { status: 'duplicate', event_id: holder.get(key)! };
    }
  };

  // The stored events' outcomes, and the jobs of their deliveries that go to pg-boss.
  const settleStored = ({ stored, lost }: Written): DeliveryJobInsert[] => {
    // A stored event's deliveries not inserted: of an endpoint deleted since routing read it (rare).
    const lostOf = new Map<string, number>();
    if (lost.size > 0) delivery.id.forEach((id, k) => lost.has(id) && lostOf.set(delivery.event[k]!, (lostOf.get(delivery.event[k]!) ?? 0) + 1));
    const jobs: DeliveryJobInsert[] = [];
    for (const i of toInsert) {
      const route = routes[i]!;
      if (!stored.has(ids[i]!) || !route.ok) continue;
      jobs.push(...jobsOf.get(i)!);
      outcomes[i] = { status: 'stored', event_id: ids[i]!, deliveries: route.targets.length - (lostOf.get(ids[i]!) ?? 0) };
    }
    return jobs.filter((j) => !taken.has(j.delivery_id) && !lost.has(j.delivery_id));
  };

  const writeAll = async (): Promise<void> => {
    const written = await insert();
    const dupes = lostKeys(written.stored);
    if (dupes.length > 0) await settleDuplicates(dupes);
    await enqueueDeliveries(boss, db, settleStored(written));
  };
  if (transaction === null) await writeAll();
  else if (ready.some((j) => !taken.has(j.delivery_id))) await transaction(writeAll);
  else {
    // The insert is the only write: a statement of its own, committed when it answers, so the
    // dispatcher may start on what it took (and the caller has no claims left to start or release).
    const written = await insert();
    for (const c of handoff?.claims.splice(0) ?? []) c.start();
    settleStored(written);
    const dupes = lostKeys(written.stored);
    if (dupes.length > 0) await transaction(() => settleDuplicates(dupes));
  }
  return outcomes;
}
