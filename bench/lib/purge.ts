/**
 * bench/e2e.ts --purge N: N events from 60 days ago (each with a delivered delivery and its
 * attempt) are written straight into the bench database, then purged by Wharf's own retention
 * code (src/store/retention.ts, default batch size and pause) while the measurement runs, so the
 * latency printed is dispatch's while a purge is going on.
 */
import pg from 'pg';
import { policiesOf, purgeRetention, type PurgeReport } from '../../src/store/retention.ts';

/** A UUIDv7 in SQL: `ts`'s milliseconds, then bits from `salt` (the rows are not secret). */
const uuidAt = (ts: string, salt: string): string =>
  `(lpad(to_hex((extract(epoch FROM ${ts}) * 1000)::bigint), 12, '0') || '7' || substr(md5(${salt}), 1, 3) || '8' || substr(md5(${salt}), 4, 15))::uuid`;

/** An old attempt's headers: what the bench's own attempts store (a signature, a local receiver's answer). */
const OLD_REQUEST_HEADERS = JSON.stringify({ 'user-agent': 'Wharf/0.1.0', 'content-type': 'application/json', 'X-Convoy-Signature': `t=1796426267,v1=${'5e'.repeat(32)}` });
const OLD_RESPONSE_HEADERS = JSON.stringify({ date: 'Fri, 04 Dec 2026 23:17:47 GMT', connection: 'keep-alive', 'keep-alive': 'timeout=60', 'content-type': 'text/plain', 'content-length': '2' });

/**
 * Writes `n` delivered events, `ageDays` old (one per millisecond from then on), each with its
 * delivery holding its first attempt as the recorder keeps it (migration 022: 2n rows) of type
 * `eventType`, with set-based INSERT … SELECT, and vacuums them, as old rows would be.
 */
export async function fillHistory(url: string, endpointId: string, n: number, options: { ageDays: number; eventType: string }): Promise<{ rows: number; ms: number }> {
  const client = new pg.Client({ connectionString: url, application_name: 'wharf-bench-fill' });
  await client.connect();
  const t = performance.now();
  try {
    await client.query(
      `INSERT INTO events (id, project_id, event_type, message_type, endpoint_id, data, created_at)
       SELECT ${uuidAt('ts', "g::text || 'e'")}, 'default', $3, 'single', $1,
              '{"old":true,"pad":"' || repeat('x', 200) || '"}', ts
       FROM (SELECT g, now() - $4 * interval '1 day' + g * interval '1 ms' AS ts FROM generate_series(1, $2) g) s`,
      [endpointId, n, options.eventType, options.ageDays],
    );
    await client.query(
      `INSERT INTO deliveries (id, project_id, event_id, endpoint_id, event_type, status, attempts, last_status_code, created_at, updated_at)
       SELECT ${uuidAt('e.created_at', "e.id::text || 'd'")}, 'default', e.id, $1, $2, 'success', 1, 200, e.created_at, e.created_at
       FROM events e WHERE e.project_id = 'default' AND e.event_type = $2`,
      [endpointId, options.eventType],
    );
    // The attempt comes with the update that records it, as in Wharf: the row grows on its page.
    await client.query(
      `UPDATE deliveries d SET first_attempted_at = d.created_at,
         first_status_code = 200, first_latency_ms = 3, first_url = 'http://127.0.0.1/old',
         first_request_headers = $2, first_response_headers = $3, first_response_body = 'ok'
       WHERE d.project_id = 'default' AND d.event_type = $1`,
      [options.eventType, OLD_REQUEST_HEADERS, OLD_RESPONSE_HEADERS],
    );
    await client.query('VACUUM ANALYZE events, deliveries');
    return { rows: 2 * n, ms: performance.now() - t };
  } finally {
    await client.end();
  }
}

/** `n` events from 60 days ago, which a 30-day retention policy purges. */
export const fillOldHistory = (url: string, endpointId: string, n: number): Promise<{ rows: number; ms: number }> =>
  fillHistory(url, endpointId, n, { ageDays: 60, eventType: 'bench.old' });

export interface PurgeRun {
  startedAt: number;
  /** When it finished, or NaN while it runs. */
  endedAt: number;
  /** Resolves with the report (null: aborted by stop() before the end). */
  done: Promise<PurgeReport | null>;
  /** Aborts a purge still running (between batches) and waits for it. */
  stop(): Promise<PurgeReport | null>;
  /** Rows deleted so far. */
  rows(): number;
}

/** Purges events older than 30 days in every project, as Wharf's retention task would. */
export function startPurge(url: string, options: { batchSize: number; pauseMs: number }): PurgeRun {
  const pool = new pg.Pool({ connectionString: url, max: 2, application_name: 'wharf-bench-purge' });
  const abort = new AbortController();
  const defaults = { events: '30d', attempts: 'off', dead_letters: 'off', meta_events: 'off' };
  const policy = policiesOf({ retention: { defaults, interval: 600, batch_size: options.batchSize, batch_pause: options.pauseMs / 1000 }, projects: [] });
  let rows = 0;
  const run: PurgeRun = {
    startedAt: performance.timeOrigin + performance.now(),
    endedAt: NaN,
    done: Promise.resolve(null),
    async stop() {
      abort.abort();
      return run.done;
    },
    rows: () => rows,
  };
  run.done = purgeRetention(pool, policy, { ...options, signal: abort.signal, onPurged: (_kind, n) => (rows += n) })
    .catch((err: unknown) => {
      if (abort.signal.aborted) return null;
      throw err;
    })
    .finally(async () => {
      run.endedAt = performance.timeOrigin + performance.now();
      await pool.end();
    });
  return run;
}

/**
 * `n` completed delivery jobs in pg-boss's job table, as a day of traffic leaves there until
 * pg-boss deletes them (after `deleteAfterSeconds`, a week by default). Their deliveries do not
 * exist; nothing reads completed jobs but pg-boss's maintenance.
 */
export async function fillJobHistory(url: string, queue: string, n: number): Promise<{ rows: number; ms: number }> {
  const client = new pg.Client({ connectionString: url, application_name: 'wharf-bench-fill' });
  await client.connect();
  const t = performance.now();
  try {
    await client.query(
      `INSERT INTO pgboss.job (name, data, state, created_on, started_on, completed_on)
       SELECT $1, jsonb_build_object('d', gen_random_uuid(), 'a', 1), 'completed', ts, ts, ts
       FROM (SELECT now() - interval '1 day' + g * interval '1 ms' AS ts FROM generate_series(1, $2) g) s`,
      [queue, n],
    );
    await client.query('VACUUM ANALYZE pgboss.job');
    return { rows: n, ms: performance.now() - t };
  } finally {
    await client.end();
  }
}
