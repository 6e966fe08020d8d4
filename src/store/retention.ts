/**
 * Retention: old events, attempts, dead letters and meta events are deleted per project policy
 * (config `retention.defaults`, a project's own `retention` in the file, and the shorter ages a
 * project may set itself through the API: `inForce`), in small batches by a background task, so
 * history stays bounded without long locks or a stalled dispatcher.
 *
 * How the kinds relate:
 * - `events` takes an event with its deliveries and their attempts. An event is kept while any of
 *   its deliveries is still on its way (scheduled, processing, retry), whatever its age.
 * - `attempts` takes attempts on their own clock (they hold the request and response headers and
 *   bodies, the bulk of the history); the delivery keeps its counters and last status.
 * - `dead_letters` by when the message was first and last seen; `meta_events` once sent or failed.
 * pg-boss's jobs are pg-boss's own: version 12 keeps no archive and deletes finished jobs itself
 * (each queue's `deleteAfterSeconds`, 7 days by default), so nothing here touches them.
 *
 * Rows are found through their ids: Wharf's ids are UUIDv7 (core/ids.ts), so "older than" is a
 * range of the (project_id, id) indexes every table already has, and no index is added to the
 * write path. `created_at` is checked as well, so a row is never deleted before its age.
 * `retention_watermarks` remembers how far each kind was purged, so a lookup of a purged id can
 * say why it is gone (404 `WHARF_ERR_PURGED`), and attempts (which have no per-project index) are
 * walked from where the last pass stopped.
 */
import { EventEmitter } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import type pg from 'pg';
import { WharfError, notFound } from '../core/errors.ts';
import { uuidv7Floor, uuidv7Time } from '../core/ids.ts';
import { RETENTION_KINDS, retentionAgeSeconds, type RetentionAges, type RetentionKind, type WharfConfig } from '../config/schema.ts';
import type { Queryable } from './queryable.ts';
import { checkOut, inTransaction } from './pool.ts';

/** What the purge counts, by table: `events` also takes `deliveries` and their `attempts`. */
export type PurgedKind = 'events' | 'deliveries' | 'attempts' | 'dead_letters' | 'meta_events';
export const PURGED_KINDS: readonly PurgedKind[] = ['events', 'deliveries', 'attempts', 'dead_letters', 'meta_events'];

/** One kind's age: seconds, and as written (for messages). null: kept forever. */
export type RetentionAge = { seconds: number; text: string } | null;
export type RetentionPolicy = Record<RetentionKind, RetentionAge>;
/** A project's policy by id (projects no longer in the file follow `retention.defaults`). */
export type PolicyLookup = (projectId: string) => RetentionPolicy;

export interface PurgeOptions {
  /** The time ages are measured from (tests pass their own). Default: now. */
  now?: Date;
  /** Rows one statement deletes at most (for `events`: events, each with its deliveries and attempts). */
  batchSize: number;
  /** Sleep between batches, so dispatch gets the database between them. */
  pauseMs: number;
  signal?: AbortSignal;
  /** Called after each committed batch. */
  onPurged?: (kind: PurgedKind, rows: number) => void;
}

export interface PurgeReport {
  rows: Record<PurgedKind, number>;
  batches: number;
  ms: number;
}

/** A delivery still on its way keeps its event. */
const PENDING_STATUSES = ['scheduled', 'processing', 'retry'];
const PENDING = `(${PENDING_STATUSES.map((s) => `'${s}'`).join(', ')})`;
/** Attempts are walked from a little before the last pass's cutoff: an id and its created_at may differ by a clock's skew. */
const ATTEMPT_LOOKBACK_MS = 3_600_000;
/**
 * The recorder keeps a first attempt in its delivery's row (migration 022) only when it is made this
 * soon after the delivery: less than the lookback, so the walk of the project's deliveries from the
 * last cutoff less the lookback finds every such attempt not yet cleared.
 */
export const FOLD_WITHIN_MS = ATTEMPT_LOOKBACK_MS / 2;
/** A batch waits this long at most for a row lock (a delivery being resent), then the pass ends and the next one retries. */
const LOCK_TIMEOUT = '2s';
const LOCK_KEY = `hashtext('wharf.retention')`;
const NIL_UUID = '00000000-0000-0000-0000-000000000000';

/** An age as written (`30d`, `off`, absent) as a policy's entry; null: kept forever. */
function ageOf(text: string | undefined): RetentionAge {
  const seconds = text === undefined ? null : retentionAgeSeconds(text);
  return typeof seconds === 'number' ? { seconds, text: text! } : null;
}

/** The operator's policy of every project: the config file's ages for it over `retention.defaults`. */
export function policiesOf(config: Pick<WharfConfig, 'retention' | 'projects'>): PolicyLookup {
  const resolve = (ages: RetentionAges): RetentionPolicy =>
    Object.fromEntries(RETENTION_KINDS.map((k) => [k, ageOf(ages[k] ?? config.retention.defaults[k])])) as RetentionPolicy;
  const fallback = resolve({});
  const own = new Map(config.projects.map((p) => [p.id, resolve(p.retention ?? {})]));
  return (projectId) => own.get(projectId) ?? fallback;
}

/**
 * The policy a project's history is purged by: for each kind, the shorter of the operator's age
 * and the one the project set itself through the API (`projects.retention`, migration 024). A
 * project may keep its history for less time than the operator allows, never for more: the disk
 * is the operator's. Where either keeps a kind forever, the other's age holds.
 */
export function inForce(operator: RetentionPolicy, own: RetentionAges | null): RetentionPolicy {
  if (own === null) return operator;
  return Object.fromEntries(
    RETENTION_KINDS.map((k) => {
      const theirs = ageOf(own[k]);
      const ours = operator[k];
      return [k, ours === null || (theirs !== null && theirs.seconds < ours.seconds) ? theirs : ours];
    }),
  ) as RetentionPolicy;
}

/**
 * One purge of every project, or null when another replica is purging (a session advisory lock
 * on one connection, which also runs the batches). Each batch is its own short transaction.
 */
export async function purgeRetention(pool: pg.Pool, policyOf: PolicyLookup, options: PurgeOptions): Promise<PurgeReport | null> {
  const started = performance.now();
  const now = (options.now ?? new Date()).getTime();
  const report: PurgeReport = { rows: { events: 0, deliveries: 0, attempts: 0, dead_letters: 0, meta_events: 0 }, batches: 0, ms: 0 };
  const checkedOut = await checkOut(pool);
  const client = checkedOut.client;
  try {
    const { rows: locked } = await client.query<{ ok: boolean }>(`SELECT pg_try_advisory_lock(${LOCK_KEY}) AS ok`);
    if (!locked[0]!.ok) return null;
    const { rows: projects } = await client.query<{ id: string; retention: RetentionAges | null }>('SELECT id, retention FROM projects ORDER BY id');
    const count = (kind: PurgedKind, n: number): void => {
      report.rows[kind] += n;
      if (n > 0) options.onPurged?.(kind, n);
    };
    const batch = async (): Promise<void> => {
      report.batches += 1;
      if (options.pauseMs > 0) await sleep(options.pauseMs, undefined, { signal: options.signal });
      options.signal?.throwIfAborted();
    };
    for (const { id: projectId, retention } of projects) {
      const policy = inForce(policyOf(projectId), retention);
      for (const kind of RETENTION_KINDS) {
        const age = policy[kind];
        if (age === null) continue;
        options.signal?.throwIfAborted();
        const cutoff = now - age.seconds * 1000;
        const step = { db: client, projectId, cutoff, batchSize: options.batchSize, count, batch };
        // The mark is what a 404 goes by: set first, so a row gone is never said to be unknown. For
        // attempts it is also where the next pass starts walking, so it moves once they are gone.
        if (kind === 'attempts') {
          await purgeAttempts(step, await watermark(client, projectId, 'attempts'));
          await saveWatermark(client, projectId, kind, cutoff, age.text);
          continue;
        }
        await saveWatermark(client, projectId, kind, cutoff, age.text);
        if (kind === 'events') await purgeEvents(step);
        else await purgeRows(step, kind);
      }
    }
    await client.query(`SELECT pg_advisory_unlock(${LOCK_KEY})`);
    report.ms = performance.now() - started;
    return report;
  } catch (err) {
    // The connection is closed rather than reused: that releases the lock (and any transaction)
    // whatever state the failure (or a stop between batches) left it in.
    checkedOut.fail(err);
    throw err;
  } finally {
    checkedOut.done();
  }
}

interface Step {
  db: pg.PoolClient;
  projectId: string;
  cutoff: number;
  batchSize: number;
  count: (kind: PurgedKind, n: number) => void;
  batch: () => Promise<void>;
}

/** A purge transaction: it gives up on a lock it cannot get within LOCK_TIMEOUT. */
const purgeTransaction = <T>(db: pg.PoolClient, fn: () => Promise<T>): Promise<T> =>
  inTransaction(db, async () => {
    await db.query(`SET LOCAL lock_timeout = '${LOCK_TIMEOUT}'`);
    return fn();
  });

/** Events past their age with nothing still on its way, each with its deliveries and attempts. */
async function purgeEvents(s: Step): Promise<void> {
  let after = NIL_UUID;
  for (;;) {
    const { picked, last } = await purgeTransaction(s.db, async () => {
      // SKIP LOCKED: an event another transaction holds is left for the next pass.
      const { rows } = await s.db.query<{ id: string }>(
        `SELECT e.id FROM events e
         WHERE e.project_id = $1 AND e.id > $2 AND e.id < $3 AND e.created_at < $4
           AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.event_id = e.id AND d.status IN ${PENDING})
         ORDER BY e.id LIMIT $5 FOR UPDATE OF e SKIP LOCKED`,
        [s.projectId, after, uuidv7Floor(s.cutoff), new Date(s.cutoff), s.batchSize],
      );
      if (rows.length === 0) return { picked: 0, last: after };
      const ids = rows.map((r) => r.id);
      // A resend may have made a delivery pending since the look above: its lock is waited for,
      // and an event whose delivery is pending now stays.
      const { rows: pending } = await s.db.query<{ event_id: string; status: string }>(
        `SELECT event_id, status FROM deliveries WHERE event_id = ANY($1::uuid[]) ORDER BY id FOR UPDATE`,
        [ids],
      );
      const keep = new Set(pending.filter((d) => PENDING_STATUSES.includes(d.status)).map((d) => d.event_id));
      const gone = ids.filter((id) => !keep.has(id));
      const attempts = await s.db.query(
        'DELETE FROM delivery_attempts WHERE delivery_id IN (SELECT id FROM deliveries WHERE event_id = ANY($1::uuid[]))',
        [gone],
      );
      // A delivery's row holds its first attempt when the recorder folded it (migration 022).
      const { rows: deliveries } = await s.db.query<{ n: number; folded: number }>(
        `WITH gone AS (DELETE FROM deliveries WHERE event_id = ANY($1::uuid[]) RETURNING first_attempted_at)
         SELECT count(*)::int AS n, count(first_attempted_at)::int AS folded FROM gone`,
        [gone],
      );
      const events = await s.db.query('DELETE FROM events WHERE project_id = $1 AND id = ANY($2::uuid[])', [s.projectId, gone]);
      s.count('attempts', (attempts.rowCount ?? 0) + deliveries[0]!.folded);
      s.count('deliveries', deliveries[0]!.n);
      s.count('events', events.rowCount ?? 0);
      return { picked: rows.length, last: ids[ids.length - 1]! };
    });
    if (picked === 0) return;
    after = last;
    await s.batch();
    if (picked < s.batchSize) return;
  }
}

/** The columns of a delivery's row that hold its first attempt (migration 022). */
const FIRST_ATTEMPT_COLUMNS = [
  'first_attempt_id', 'first_attempted_at', 'first_status_code', 'first_latency_ms', 'first_url',
  'first_request_headers', 'first_response_headers', 'first_response_body', 'first_error', 'first_error_code',
];

/**
 * Attempts past their age. Those kept as rows of their own have no per-project index, so the
 * primary key is walked from the last pass's cutoff (less a lookback) up to this one's: each pass
 * reads only what aged since. An attempt's project is its delivery's (migration 020: new attempts
 * do not repeat it). A first attempt kept in its delivery's row (migration 022) is cleared from
 * it; the recorder folds only an attempt made within FOLD_WITHIN_MS of its delivery, less than the
 * lookback, so walking the project's deliveries from the same point finds every one not yet cleared.
 */
async function purgeAttempts(s: Step, previous: Date | null): Promise<void> {
  const after = previous === null ? NIL_UUID : uuidv7Floor(previous.getTime() - ATTEMPT_LOOKBACK_MS);
  await purgeAged(
    s,
    'attempts',
    { table: 'delivery_attempts', key: ['id'] },
    `SELECT a.id FROM delivery_attempts a JOIN deliveries d ON d.id = a.delivery_id
     WHERE d.project_id = $1 AND a.id > $2 AND a.id < $3 AND a.created_at < $4
     ORDER BY a.id LIMIT $5 FOR UPDATE OF a SKIP LOCKED`,
    after,
  );
  await purgeAged(
    s,
    'attempts',
    { table: 'deliveries', key: ['project_id', 'id'], clear: FIRST_ATTEMPT_COLUMNS },
    `SELECT project_id, id FROM deliveries
     WHERE project_id = $1 AND id > $2 AND id < $3 AND first_attempted_at < $4
     ORDER BY id LIMIT $5 FOR UPDATE SKIP LOCKED`,
    after,
  );
}

/** Dead letters not seen again since their age; meta events past their age once sent or failed. */
const purgeRows = (s: Step, kind: 'dead_letters' | 'meta_events'): Promise<void> =>
  purgeAged(
    s,
    kind,
    { table: kind, key: ['id'] },
    `SELECT id FROM ${kind}
     WHERE project_id = $1 AND id > $2 AND id < $3 AND created_at < $4 ${kind === 'dead_letters' ? 'AND updated_at < $4' : `AND status <> 'scheduled'`}
     ORDER BY id LIMIT $5 FOR UPDATE SKIP LOCKED`,
    NIL_UUID,
  );

/** The rows a purge removes: deleted, or only `clear`ed (a first attempt kept in its delivery's row); `key` finds them. */
interface PurgeTarget {
  table: string;
  key: string[];
  clear?: string[];
}

/**
 * Removes a batch at a time the rows of `target` that `pick` selects and locks, walking ids up from
 * `after`: those of the project ($1) after $2, made before the cutoff ($3 as an id, $4 as a time),
 * in id order, $5 at most, by their key. The pick runs once per batch, materialized: written as
 * `id IN (pick)` beside a condition on the table's key, its plan could run the pick again, the
 * lock then skipped the rows the statement had already removed, and a batch of four removed six
 * (`retention.test.ts`).
 */
async function purgeAged(s: Step, kind: 'attempts' | 'dead_letters' | 'meta_events', target: PurgeTarget, pick: string, after: string): Promise<void> {
  const match = target.key.map((c) => `t.${c} = picked.${c}`).join(' AND ');
  const remove = target.clear
    ? `UPDATE ${target.table} t SET ${target.clear.map((c) => `${c} = NULL`).join(', ')} FROM picked WHERE ${match} RETURNING t.id`
    : `DELETE FROM ${target.table} t USING picked WHERE ${match} RETURNING t.id`;
  for (;;) {
    const { rows } = await purgeTransaction(s.db, () =>
      s.db.query<{ n: number; last: string | null }>(
        `WITH picked AS MATERIALIZED (${pick}), gone AS (${remove})
         SELECT count(*)::int AS n, max(id::text) AS last FROM gone`,
        [s.projectId, after, uuidv7Floor(s.cutoff), new Date(s.cutoff), s.batchSize],
      ),
    );
    const { n, last } = rows[0]!;
    if (n === 0) return;
    s.count(kind, n);
    after = last!;
    await s.batch();
    if (n < s.batchSize) return;
  }
}

async function watermark(db: Queryable, projectId: string, kind: RetentionKind): Promise<Date | null> {
  const { rows } = await db.query<{ purged_before: Date }>('SELECT purged_before FROM retention_watermarks WHERE project_id = $1 AND kind = $2', [projectId, kind]);
  return rows[0]?.purged_before ?? null;
}

/** Only moves forward: rows older than an earlier, shorter policy's cutoff are gone all the same. */
async function saveWatermark(db: Queryable, projectId: string, kind: RetentionKind, cutoff: number, age: string): Promise<void> {
  await db.query(
    `INSERT INTO retention_watermarks (project_id, kind, purged_before, max_age) VALUES ($1, $2, $3, $4)
     ON CONFLICT (project_id, kind) DO UPDATE SET
       max_age = CASE WHEN EXCLUDED.purged_before >= retention_watermarks.purged_before THEN EXCLUDED.max_age ELSE retention_watermarks.max_age END,
       purged_before = GREATEST(retention_watermarks.purged_before, EXCLUDED.purged_before),
       updated_at = now()`,
    [projectId, kind, new Date(cutoff), age],
  );
}

const KIND_TEXT: Record<RetentionKind, string> = {
  events: 'events, with their deliveries and attempts,',
  attempts: 'delivery attempts',
  dead_letters: 'dead letters',
  meta_events: 'meta events',
};

/**
 * Why `id` is not found, when retention explains it: the id was made before `kind` was purged up
 * to (its watermark), e.g. "purged by the project's retention policy (events, with their
 * deliveries and attempts, older than 30d)". null otherwise (the usual 404 applies).
 */
export async function purgedReason(db: Queryable, projectId: string, kind: RetentionKind, id: string): Promise<string | null> {
  const made = uuidv7Time(id);
  if (made === null) return null;
  const { rows } = await db.query<{ purged_before: Date; max_age: string }>(
    'SELECT purged_before, max_age FROM retention_watermarks WHERE project_id = $1 AND kind = $2',
    [projectId, kind],
  );
  const w = rows[0];
  if (!w || made >= w.purged_before.getTime()) return null;
  return `purged by the project's retention policy (${KIND_TEXT[kind]} older than ${w.max_age})`;
}

/** The 404 for `what` `id`: WHARF_ERR_PURGED with the reason when retention took it, else the usual one. */
export async function missing(db: Queryable, projectId: string, kind: RetentionKind, what: string, id: string): Promise<WharfError> {
  const reason = await purgedReason(db, projectId, kind, id);
  if (reason === null) return notFound(what, id);
  return new WharfError('WHARF_ERR_PURGED', `${what} ${JSON.stringify(id)} was ${reason}`, { status: 404 });
}

/** For `.catch()` after a lookup that throws the usual 404: the same 404, with the reason if retention took the row. */
export const explainMissing =
  (db: Queryable, projectId: string, kind: RetentionKind, what: string, id: string) =>
  async (err: unknown): Promise<never> => {
    if (err instanceof WharfError && err.code === 'WHARF_ERR_NOT_FOUND') throw await missing(db, projectId, kind, what, id);
    throw err;
  };

export interface RetentionEvents {
  purged: [PurgeReport];
  error: [Error];
}

export interface RetentionTask extends EventEmitter<RetentionEvents> {
  start(): void;
  /** Ends the pass in progress between batches and waits for it. Idempotent. */
  stop(): Promise<void>;
}

export interface RetentionTaskOptions {
  /** Read at each pass, so a reloaded config applies from the next one. */
  policies: () => PolicyLookup;
  intervalMs: number;
  batchSize: number;
  pauseMs: number;
  /** The first pass, after start. */
  firstDelayMs?: number;
  onPurged?: (kind: PurgedKind, rows: number) => void;
}

/** Purges every `intervalMs` (from the end of one pass to the start of the next). */
export function createRetentionTask(pool: pg.Pool, options: RetentionTaskOptions): RetentionTask {
  const emitter = new EventEmitter<RetentionEvents>() as RetentionTask;
  const abort = new AbortController();
  let timer: NodeJS.Timeout | null = null;
  let running: Promise<void> | null = null;
  let stopping: Promise<void> | null = null;

  const schedule = (ms: number): void => {
    if (abort.signal.aborted) return;
    timer = setTimeout(() => {
      running = pass().finally(() => {
        running = null;
        schedule(options.intervalMs);
      });
    }, ms);
    timer.unref();
  };
  const pass = async (): Promise<void> => {
    try {
      const report = await purgeRetention(pool, options.policies(), { batchSize: options.batchSize, pauseMs: options.pauseMs, signal: abort.signal, onPurged: options.onPurged });
      if (report) emitter.emit('purged', report);
    } catch (err) {
      if (!abort.signal.aborted) emitter.emit('error', err as Error);
    }
  };

  emitter.start = () => {
    if (timer === null && !abort.signal.aborted) schedule(options.firstDelayMs ?? 5_000);
  };
  emitter.stop = () =>
    (stopping ??= (async () => {
      abort.abort();
      if (timer) clearTimeout(timer);
      await running;
    })());
  return emitter;
}
