/**
 * Per-endpoint rate limits (Convoy's `rate_limit` per `rate_limit_duration`), enforced across all
 * workers and replicas by a sliding log kept in `endpoint_rate_limits`.
 *
 * The guarantee: every grant is stamped with one clock (the database's `clock_timestamp()`, read
 * after the endpoint's row is locked, or the caller's `now`), stamps never go backwards per
 * endpoint, and for every instant t the grants stamped in (t - duration, t] add up to at most
 * `limit` (for settings unchanged over the last duration; a lowered limit counts the grants already
 * made against the new one). So any window of `duration` seconds, sliding or fixed, wherever it
 * starts, holds at most `limit` grants; unlike a fixed window, no 2 × limit burst across a
 * boundary. A receiver counts arrivals, not grants: if every send arrives within J of its grant,
 * any window of duration - J it observes holds at most `limit`. Grants a caller does not use still
 * count; a transaction that rolls back gives its grants back. The log holds one entry per acquire
 * that granted anything in the last duration, so never more than `limit` entries.
 */
import type { Queryable } from '../store/queryable.ts';
import { refKey } from '../store/endpoints.ts';

export interface RateLimit {
  limit: number;
  duration_seconds: number;
}

export interface RateLimitRequest {
  project_id: string;
  endpoint_id: string;
  limit: RateLimit;
  wanted: number;
}

export interface Grant {
  granted: number;
  /** 0 when everything wanted was granted; else milliseconds until the next slot opens. */
  retryAfterMs: number;
}

/*
 * Upserts each endpoint's log, in key order so concurrent callers lock rows in the same order.
 * ON CONFLICT DO UPDATE works on the locked, latest row version, so the check and the append are
 * one atomic step. The stamp is taken inside the DO UPDATE, after the lock wait, and raised to
 * the previous stamp, which keeps each log ordered and pruning safe. The log is pruned to entries
 * newer than stamp - duration, and the caller gets what remains of the limit.
 */
const ACQUIRE_SQL = `
WITH req AS (
  SELECT r.project_id, r.endpoint_id, r.limit_count, r.duration_seconds, r.wanted
  FROM unnest($1::text[], $2::text[], $3::int[], $4::int[], $5::int[])
         AS r(project_id, endpoint_id, limit_count, duration_seconds, wanted)
),
-- The weakest row lock: it lets status changes through but waits out a concurrent DELETE, so an
-- endpoint deleted meanwhile drops out here instead of failing the insert's foreign key.
live AS MATERIALIZED (
  SELECT ep.project_id, ep.id AS endpoint_id
  FROM endpoints ep
  WHERE (ep.project_id, ep.id) IN (SELECT project_id, endpoint_id FROM req)
  ORDER BY ep.project_id, ep.id
  FOR KEY SHARE OF ep
),
upserted AS (
  INSERT INTO endpoint_rate_limits AS h (project_id, endpoint_id, limit_count, duration_seconds,
    grant_times, grant_counts, last_at, last_wanted, last_granted)
  SELECT r.project_id, r.endpoint_id, r.limit_count, r.duration_seconds,
    ARRAY[c.t], ARRAY[g.granted], c.t, r.wanted, g.granted
  FROM req r
  JOIN live ON live.project_id = r.project_id AND live.endpoint_id = r.endpoint_id
  CROSS JOIN LATERAL (SELECT coalesce($6::timestamptz, clock_timestamp()) AS t) c
  CROSS JOIN LATERAL (SELECT least(r.wanted, r.limit_count) AS granted) g
  ORDER BY r.project_id, r.endpoint_id
  ON CONFLICT (project_id, endpoint_id) DO UPDATE SET
    (limit_count, duration_seconds, grant_times, grant_counts, last_at, last_wanted, last_granted) = (
    SELECT EXCLUDED.limit_count, EXCLUDED.duration_seconds,
      CASE WHEN g.granted > 0 THEN k.times || c.t ELSE k.times END,
      CASE WHEN g.granted > 0 THEN k.counts || g.granted ELSE k.counts END,
      c.t, EXCLUDED.last_wanted, g.granted
    FROM (SELECT greatest(coalesce($6::timestamptz, clock_timestamp()), h.last_at) AS t) c
    CROSS JOIN LATERAL (
      SELECT coalesce(array_agg(e.at ORDER BY e.i), '{}') AS times,
             coalesce(array_agg(e.n ORDER BY e.i), '{}') AS counts,
             coalesce(sum(e.n), 0) AS used
      FROM unnest(h.grant_times, h.grant_counts) WITH ORDINALITY AS e(at, n, i)
      WHERE e.at > c.t - EXCLUDED.duration_seconds * interval '1 second'
    ) k
    CROSS JOIN LATERAL (
      SELECT least(EXCLUDED.last_wanted, greatest(EXCLUDED.limit_count - k.used, 0))::int AS granted
    ) g
  )
  RETURNING h.project_id, h.endpoint_id, h.duration_seconds, h.grant_times[1] AS oldest, h.last_at,
    h.last_wanted, h.last_granted
)
SELECT project_id, endpoint_id, last_granted AS granted,
  CASE WHEN last_granted >= last_wanted THEN 0
       -- The oldest grant leaving the window is the next slot to open.
       ELSE coalesce(ceil(extract(epoch FROM oldest + duration_seconds * interval '1 second' - last_at) * 1000)::int,
                     duration_seconds * 1000)
  END AS retry_after_ms
FROM upserted`;


/**
 * Asks for `wanted` sends to one endpoint now. Grants up to what the window has left, atomically
 * across concurrent callers (one statement), and says when the next slot opens for the rest.
 */
export async function acquire(
  db: Queryable,
  projectId: string,
  endpointId: string,
  limit: RateLimit,
  wanted: number,
  now?: Date,
): Promise<Grant> {
  const grants = await acquireMany(db, [{ project_id: projectId, endpoint_id: endpointId, limit, wanted }], now);
  return grants.get(refKey({ project_id: projectId, endpoint_id: endpointId }))!;
}

/**
 * Several endpoints in one round trip (the worker asks for a whole batch), keyed
 * `${project_id}/${endpoint_id}`. Requests for the same endpoint are added up (under the first
 * one's limit). An endpoint that does not exist is granted nothing, with a whole duration to wait.
 * The rows stay locked until the caller's transaction ends: call it outside long transactions.
 */
export async function acquireMany(db: Queryable, requests: RateLimitRequest[], now?: Date): Promise<Map<string, Grant>> {
  const merged = new Map<string, RateLimitRequest>();
  for (const r of requests) {
    check(r);
    const key = refKey(r);
    const seen = merged.get(key);
    merged.set(key, seen ? { ...seen, wanted: seen.wanted + r.wanted } : r);
  }
  const grants = new Map<string, Grant>();
  const asking = [...merged.values()].filter((r) => r.wanted > 0);
  for (const [key, r] of merged) {
    grants.set(key, r.wanted > 0 ? { granted: 0, retryAfterMs: r.limit.duration_seconds * 1000 } : { granted: 0, retryAfterMs: 0 });
  }
  if (asking.length === 0) return grants;

  const { rows } = await db.query<{ project_id: string; endpoint_id: string; granted: number; retry_after_ms: number }>(
    ACQUIRE_SQL,
    [
      asking.map((r) => r.project_id),
      asking.map((r) => r.endpoint_id),
      asking.map((r) => r.limit.limit),
      asking.map((r) => r.limit.duration_seconds),
      asking.map((r) => r.wanted),
      now ?? null,
    ],
  );
  for (const row of rows) grants.set(refKey(row), { granted: row.granted, retryAfterMs: row.retry_after_ms });
  return grants;
}

/** A caller's bug, not a user's input: the endpoints API validates rate limits before they get here. */
function check(r: RateLimitRequest): void {
  const { limit, duration_seconds } = r.limit;
  if (!Number.isInteger(limit) || limit < 1 || limit > 2_147_483_647) {
    throw new RangeError(`rate limit of ${refKey(r)} must be a positive integer (got ${limit})`);
  }
  if (!Number.isInteger(duration_seconds) || duration_seconds < 1 || duration_seconds > 2_147_483) {
    throw new RangeError(`rate limit duration of ${refKey(r)} must be a positive number of seconds (got ${duration_seconds})`);
  }
  if (!Number.isInteger(r.wanted) || r.wanted < 0 || r.wanted > 2_147_483_647) {
    throw new RangeError(`wanted for ${refKey(r)} must be a non-negative integer (got ${r.wanted})`);
  }
}
