/**
 * The circuit breaker (Convoy's endpoint states): an active endpoint that keeps failing goes
 * inactive. Counters live in `endpoint_health` so every worker and replica shares them.
 *
 * The failure-rate window is a sliding approximation built from two fixed buckets of
 * `window_seconds`, aligned to the Unix epoch: the current bucket counts in full, the previous one
 * in proportion to the part of it still inside the last `window_seconds` (it assumes that bucket's
 * attempts were spread evenly). Counts are therefore estimates, exact whenever the previous bucket
 * is empty or the current one has just begun.
 */
import { DEFAULT_BREAKER, type BreakerSettings, type EndpointStatus } from '../core/types.ts';
import type { Reader } from '../core/settings.ts';
import { absent } from '../core/settings.ts';
import type { Queryable } from '../store/queryable.ts';
import { intArray, textArray, timestampArray } from '../store/params.ts';

export type { BreakerSettings };

export { DEFAULT_BREAKER };

const KEYS = ['consecutive_failures', 'window_seconds', 'minimum_requests', 'failure_rate', 'alert_after'] as const;

/** A `breaker:` block; keys left out keep `base` (the global settings, for a project's overrides). */
export function parseBreaker(r: Reader, value: unknown, at: string, base: BreakerSettings = DEFAULT_BREAKER): BreakerSettings {
  if (absent(value)) return base;
  const f = r.fields(value, at, KEYS) ?? {};
  return Object.freeze({
    consecutive_failures: r.integer(f.consecutive_failures, `${at}.consecutive_failures`, 0, 1_000_000, base.consecutive_failures),
    window_seconds: r.integer(f.window_seconds, `${at}.window_seconds`, 1, 86_400, base.window_seconds),
    minimum_requests: r.integer(f.minimum_requests, `${at}.minimum_requests`, 1, 1_000_000, base.minimum_requests),
    failure_rate: r.integer(f.failure_rate, `${at}.failure_rate`, 0, 100, base.failure_rate),
    alert_after: r.integer(f.alert_after, `${at}.alert_after`, 0, 1_000_000, base.alert_after),
  });
}

/** 'gone' = the endpoint answered HTTP 410: it counts as a failure and disables at once. */
export type AttemptKind = 'success' | 'failure' | 'gone';

export interface AttemptOutcome {
  project_id: string;
  endpoint_id: string;
  kind: AttemptKind;
  /** When the attempt was made; the database clock when left out. */
  at?: Date;
}

export interface BreakerDecision {
  endpoint_id: string;
  project_id: string;
  reason: string;
}

export interface WindowCounts {
  attempts: number;
  failures: number;
}

/** What the breaker knows of one endpoint right after recording a batch. */
export interface BreakerCounters {
  consecutive_failures: number;
  /** Attempts and failures over the last `window_seconds` (estimates, see slidingCounts). */
  window: WindowCounts;
  /** The batch just recorded held a 410 Gone. */
  gone: boolean;
}

/**
 * The two-bucket estimate: `current` in full plus `previous` weighted by the share of it still in
 * the window, where `elapsed` is the fraction (0…1) of the current bucket already gone by.
 */
export function slidingCounts(current: WindowCounts, previous: WindowCounts, elapsed: number): WindowCounts {
  const weight = 1 - Math.min(Math.max(elapsed, 0), 1);
  // Rounded so float dust (9.999999999) never decides a minimum_requests comparison.
  const round = (n: number): number => Math.round(n * 1000) / 1000;
  return {
    attempts: round(current.attempts + previous.attempts * weight),
    failures: round(current.failures + previous.failures * weight),
  };
}

/** Why the breaker trips on these counters, or null when it does not. */
export function tripReason(counters: BreakerCounters, settings: BreakerSettings): string | null {
  if (counters.gone) return 'answered 410 Gone';
  const streak = counters.consecutive_failures;
  if (settings.consecutive_failures > 0 && streak >= settings.consecutive_failures) {
    return `${streak} consecutive failed attempts`;
  }
  const { attempts, failures } = counters.window;
  if (settings.failure_rate === 0 || attempts <= 0 || attempts < settings.minimum_requests) return null;
  // Compared as products so an exact 50 % of 10 meets a 50 % threshold without division error.
  if (failures * 100 < settings.failure_rate * attempts) return null;
  const percent = Math.floor((failures * 100) / attempts + 1e-9);
  const count = Number.isInteger(attempts) ? String(attempts) : `about ${Math.round(attempts)}`;
  return `${percent}% of ${count} attempts failed in the last ${settings.window_seconds} s`;
}

interface HealthRow {
  project_id: string;
  endpoint_id: string;
  status: EndpointStatus;
  consecutive_failures: number;
  window_attempts: number;
  window_failures: number;
  prev_attempts: number;
  prev_failures: number;
  elapsed: number;
  gone: boolean;
  /** Failures after the batch's own last success (all of them when it had none). */
  batch_streak: number;
  batch_success: boolean;
}

/** An endpoint whose failing streak has just reached `alert_after`. */
export interface FailingStreak {
  project_id: string;
  endpoint_id: string;
  consecutive_failures: number;
}

/** Whether this batch carried the streak across `threshold` (so each streak is reported once). */
export function crossed(row: Pick<HealthRow, 'consecutive_failures' | 'batch_streak' | 'batch_success'>, threshold: number): boolean {
  if (threshold <= 0) return false;
  const before = row.batch_success ? 0 : row.consecutive_failures - row.batch_streak;
  return before < threshold && row.consecutive_failures >= threshold;
}

/*
 * One statement per batch. It first locks the batch's endpoint rows in key order: that orders every
 * batch's locks the same way (no deadlocks between workers), and it makes the status read wait for
 * a concurrent batch that has just tripped the endpoint, so that batch's caller setting 'inactive'
 * is seen and the endpoint is reported once. Endpoints deleted meanwhile simply drop out.
 *
 * Per endpoint the batch is reduced to: the failures after its last success (in `at` order), and
 * the counts in its latest bucket L and in L-1. The upsert then merges them with the stored row by
 * how many buckets L lies ahead of the stored bucket (`shift`): 0 adds; 1 rolls the stored bucket
 * into prev; ≥2 (or a changed window_seconds) starts afresh; -1 means another worker already moved
 * on, so this batch's bucket L is the stored prev; below -1 the batch is too old for the window.
 */
const RECORD_SQL = `
WITH clock AS MATERIALIZED (SELECT clock_timestamp() AS now),
input AS (
  SELECT u.project_id, u.endpoint_id, u.kind, coalesce(u.at, clock.now) AS at, u.window_seconds, u.ord
  FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::int[])
         WITH ORDINALITY AS u(project_id, endpoint_id, kind, at, window_seconds, ord)
  CROSS JOIN clock
),
target AS MATERIALIZED (
  SELECT ep.project_id, ep.id AS endpoint_id, ep.status
  FROM endpoints ep
  WHERE (ep.project_id, ep.id) IN (SELECT project_id, endpoint_id FROM input)
  ORDER BY ep.project_id, ep.id
  FOR NO KEY UPDATE OF ep
),
ranked AS (
  SELECT i.*,
    floor(extract(epoch FROM i.at) / i.window_seconds)::bigint AS bucket,
    row_number() OVER (PARTITION BY i.project_id, i.endpoint_id ORDER BY i.at, i.ord) AS n
  FROM input i
),
marked AS (
  SELECT r.*, max(r.bucket) OVER (PARTITION BY r.project_id, r.endpoint_id) AS last_bucket
  FROM ranked r
),
batch AS MATERIALIZED (
  SELECT project_id, endpoint_id,
    max(window_seconds) AS window_seconds,
    max(last_bucket) AS last_bucket,
    max(at) AS last_at,
    max(at) FILTER (WHERE kind = 'success') AS last_success_at,
    max(at) FILTER (WHERE kind <> 'success') AS last_failure_at,
    -- Every attempt after the last success is a failure, so the streak is a difference of positions.
    (count(*) - coalesce(max(n) FILTER (WHERE kind = 'success'), 0))::int AS streak,
    bool_or(kind = 'gone') AS gone,
    (count(*) FILTER (WHERE bucket = last_bucket))::int AS cur_attempts,
    (count(*) FILTER (WHERE bucket = last_bucket AND kind <> 'success'))::int AS cur_failures,
    (count(*) FILTER (WHERE bucket = last_bucket - 1))::int AS prev_attempts,
    (count(*) FILTER (WHERE bucket = last_bucket - 1 AND kind <> 'success'))::int AS prev_failures
  FROM marked
  GROUP BY project_id, endpoint_id
),
upserted AS (
  INSERT INTO endpoint_health AS h (project_id, endpoint_id, consecutive_failures, window_seconds, window_start,
    window_attempts, window_failures, prev_attempts, prev_failures, last_success_at, last_failure_at, updated_at)
  SELECT b.project_id, b.endpoint_id, b.streak, b.window_seconds, to_timestamp(b.last_bucket * b.window_seconds),
    b.cur_attempts, b.cur_failures, b.prev_attempts, b.prev_failures, b.last_success_at, b.last_failure_at, clock.now
  FROM batch b
  JOIN target t ON t.project_id = b.project_id AND t.endpoint_id = b.endpoint_id
  CROSS JOIN clock
  ORDER BY b.project_id, b.endpoint_id
  ON CONFLICT (project_id, endpoint_id) DO UPDATE SET
    (consecutive_failures, window_seconds, window_start, window_attempts, window_failures,
     prev_attempts, prev_failures, last_success_at, last_failure_at, updated_at) = (
    SELECT
      CASE WHEN EXCLUDED.last_success_at IS NULL THEN h.consecutive_failures + EXCLUDED.consecutive_failures
           ELSE EXCLUDED.consecutive_failures END,
      EXCLUDED.window_seconds,
      CASE WHEN s.shift < 0 THEN h.window_start ELSE EXCLUDED.window_start END,
      CASE WHEN s.shift = 0 THEN h.window_attempts + EXCLUDED.window_attempts
           WHEN s.shift < 0 THEN h.window_attempts ELSE EXCLUDED.window_attempts END,
      CASE WHEN s.shift = 0 THEN h.window_failures + EXCLUDED.window_failures
           WHEN s.shift < 0 THEN h.window_failures ELSE EXCLUDED.window_failures END,
      CASE WHEN s.shift = 0 THEN h.prev_attempts + EXCLUDED.prev_attempts
           WHEN s.shift = 1 THEN h.window_attempts + EXCLUDED.prev_attempts
           WHEN s.shift = -1 THEN h.prev_attempts + EXCLUDED.window_attempts
           WHEN s.shift < -1 THEN h.prev_attempts ELSE EXCLUDED.prev_attempts END,
      CASE WHEN s.shift = 0 THEN h.prev_failures + EXCLUDED.prev_failures
           WHEN s.shift = 1 THEN h.window_failures + EXCLUDED.prev_failures
           WHEN s.shift = -1 THEN h.prev_failures + EXCLUDED.window_failures
           WHEN s.shift < -1 THEN h.prev_failures ELSE EXCLUDED.prev_failures END,
      greatest(h.last_success_at, EXCLUDED.last_success_at),
      greatest(h.last_failure_at, EXCLUDED.last_failure_at),
      EXCLUDED.updated_at
    FROM (SELECT CASE WHEN h.window_seconds = EXCLUDED.window_seconds
                   THEN (extract(epoch FROM EXCLUDED.window_start - h.window_start) / EXCLUDED.window_seconds)::bigint
                 END AS shift) s
  )
  RETURNING h.*
)
SELECT u.project_id, u.endpoint_id, t.status, u.consecutive_failures, u.window_attempts, u.window_failures,
  u.prev_attempts, u.prev_failures, b.gone, b.streak AS batch_streak, b.last_success_at IS NOT NULL AS batch_success,
  least(greatest(extract(epoch FROM b.last_at - u.window_start) / u.window_seconds, 0), 1)::float8 AS elapsed
FROM upserted u
JOIN batch b ON b.project_id = u.project_id AND b.endpoint_id = u.endpoint_id
JOIN target t ON t.project_id = u.project_id AND t.endpoint_id = u.endpoint_id
ORDER BY u.project_id, u.endpoint_id`;

/**
 * Records a batch of attempt outcomes for their endpoints (one round trip, in the caller's
 * transaction), updates each endpoint's breaker state (consecutive failures; windowed counts), and
 * returns the endpoints that must now go inactive: only those whose status is 'active' (or
 * 'pending'), and calls `onFailing` for those of them whose failing streak has just reached
 * `alert_after`. It does not change endpoint status itself; the caller sets 'inactive' in the same
 * transaction, which is what keeps a concurrent batch from reporting the endpoint again. Endpoint
 * rows stay locked until that transaction ends, so keep it short.
 */
export async function recordAttempts(
  db: Queryable,
  outcomes: AttemptOutcome[],
  settingsOf: (projectId: string) => BreakerSettings,
  onFailing?: (streak: FailingStreak) => void,
): Promise<BreakerDecision[]> {
  if (outcomes.length === 0) return [];
  const settings = new Map<string, BreakerSettings>();
  for (const projectId of new Set(outcomes.map((o) => o.project_id))) settings.set(projectId, settingsOf(projectId));
  const { rows } = await db.query<HealthRow>(RECORD_SQL, [
    textArray(outcomes.map((o) => o.project_id)),
    textArray(outcomes.map((o) => o.endpoint_id)),
    textArray(outcomes.map((o) => o.kind)),
    timestampArray(outcomes.map((o) => o.at ?? null)),
    intArray(outcomes.map((o) => settings.get(o.project_id)!.window_seconds)),
  ]);
  return rows.flatMap((row) => {
    if (row.status !== 'active' && row.status !== 'pending') return [];
    const s = settings.get(row.project_id)!;
    const reason = tripReason(countersOf(row), s);
    // A trip says more than a streak; its own alert (the state change) covers it.
    if (reason === null && crossed(row, s.alert_after)) {
      onFailing?.({ project_id: row.project_id, endpoint_id: row.endpoint_id, consecutive_failures: row.consecutive_failures });
    }
    return reason === null ? [] : [{ project_id: row.project_id, endpoint_id: row.endpoint_id, reason }];
  });
}

function countersOf(row: HealthRow): BreakerCounters {
  return {
    consecutive_failures: row.consecutive_failures,
    window: slidingCounts(
      { attempts: row.window_attempts, failures: row.window_failures },
      { attempts: row.prev_attempts, failures: row.prev_failures },
      row.elapsed,
    ),
    gone: row.gone,
  };
}

/** Endpoints made active again (a pending one's success, activation): their counters start afresh. */
export async function resetBreakers(db: Queryable, endpoints: { project_id: string; endpoint_id: string }[]): Promise<void> {
  if (endpoints.length === 0) return;
  // The endpoint rows are locked first, in the order recordAttempts locks, so a reset inside an
  // activation's transaction cannot deadlock with a batch being recorded.
  await db.query(
    `WITH ep AS MATERIALIZED (
       SELECT project_id, id FROM endpoints
       WHERE (project_id, id) IN (SELECT * FROM unnest($1::text[], $2::text[]))
       ORDER BY project_id, id FOR NO KEY UPDATE
     )
     UPDATE endpoint_health h SET consecutive_failures = 0, window_attempts = 0, window_failures = 0,
       prev_attempts = 0, prev_failures = 0, updated_at = clock_timestamp()
     FROM ep WHERE h.project_id = ep.project_id AND h.endpoint_id = ep.id`,
    [endpoints.map((e) => e.project_id), endpoints.map((e) => e.endpoint_id)],
  );
}

export const resetBreaker = (db: Queryable, projectId: string, endpointId: string): Promise<void> =>
  resetBreakers(db, [{ project_id: projectId, endpoint_id: endpointId }]);
