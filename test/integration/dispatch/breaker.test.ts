import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  DEFAULT_BREAKER,
  recordAttempts,
  resetBreaker,
  type AttemptKind,
  type AttemptOutcome,
  type BreakerDecision,
  type BreakerSettings,
} from '../../../src/dispatch/breaker.ts';
import { createPool, withTransaction } from '../../../src/store/pool.ts';
import type { Queryable } from '../../../src/store/queryable.ts';
import { migratedDatabase, type TestDatabase } from '../../harness/db.ts';

// A multiple of 60 s and of 120 s, so bucket boundaries fall on round offsets from it.
const B = Date.UTC(2030, 0, 1, 0, 0, 0);
const at = (seconds: number): Date => new Date(B + seconds * 1000);

const settings = (overrides: Partial<BreakerSettings> = {}) => (): BreakerSettings => ({ ...DEFAULT_BREAKER, ...overrides });

const outcomes = (endpointId: string, kinds: AttemptKind[], when?: Date, projectId = 'p'): AttemptOutcome[] =>
  kinds.map((kind) => ({ project_id: projectId, endpoint_id: endpointId, kind, ...(when ? { at: when } : {}) }));

const times = (n: number, kind: AttemptKind): AttemptKind[] => Array.from({ length: n }, () => kind);

interface Health {
  consecutive_failures: number;
  window_start: Date;
  window: [number, number];
  prev: [number, number];
}

describe.each(['postgres', 'embedded'] as const)('circuit breaker on %s', (kind) => {
  let db: TestDatabase;
  let pool: pg.Pool;
  let endpointSeq = 0;

  // The embedded server runs whole transactions one at a time, so racing ones only race on Postgres.
  const onPostgres = (name: string, fn: () => Promise<void>) => {
    if (kind === 'postgres') it(name, fn);
  };

  let close: (() => Promise<void>) | undefined;
  beforeAll(async () => {
    ({ db, pool, close } = await migratedDatabase(kind, 'wharf-test-breaker'));
  });
  afterAll(async () => close?.());

  const endpoint = async (status = 'active', project = 'p'): Promise<string> => {
    const id = `ep${String(++endpointSeq).padStart(3, '0')}`;
    await pool.query(`INSERT INTO endpoints (project_id, id, name, url, status) VALUES ($1, $2, $2, 'http://127.0.0.1/', $3)`, [project, id, status]);
    return id;
  };

  const health = async (endpointId: string, project = 'p'): Promise<Health | undefined> => {
    const { rows } = await pool.query(
      `SELECT consecutive_failures, window_start, window_attempts, window_failures, prev_attempts, prev_failures
       FROM endpoint_health WHERE project_id = $1 AND endpoint_id = $2`,
      [project, endpointId],
    );
    const r = rows[0];
    return r && { consecutive_failures: r.consecutive_failures, window_start: r.window_start, window: [r.window_attempts, r.window_failures], prev: [r.prev_attempts, r.prev_failures] };
  };

  const status = async (endpointId: string): Promise<string> =>
    (await pool.query(`SELECT status FROM endpoints WHERE project_id = 'p' AND id = $1`, [endpointId])).rows[0].status;

  /** What the worker will do: record, and set the endpoints it is told to inactive, in one transaction. */
  const recordAndApply = (p: pg.Pool, batch: AttemptOutcome[], of: () => BreakerSettings): Promise<BreakerDecision[]> =>
    withTransaction(p, async (client) => {
      const decisions = await recordAttempts(client, batch, of);
      await applyDecisions(client, decisions);
      return decisions;
    });

  const applyDecisions = async (client: Queryable, decisions: BreakerDecision[]): Promise<void> => {
    for (const d of decisions) {
      await client.query(`UPDATE endpoints SET status = 'inactive' WHERE project_id = $1 AND id = $2`, [d.project_id, d.endpoint_id]);
    }
  };

  it('counts exactly and trips once under interleaved batches from two pools', async () => {
    const failing = await endpoint();
    const fine = await endpoint();
    const pools = [0, 1].map((i) => createPool(db.url, { max: 3, applicationName: `wharf-test-breaker-${i}` }));
    const of = settings({ consecutive_failures: 10, failure_rate: 0 });
    const decisions: BreakerDecision[] = [];
    // Three concurrent loops per pool; the two pools list the endpoints in opposite orders.
    const loop = async (p: pg.Pool, i: number): Promise<void> => {
      for (let n = 0; n < 5; n++) {
        const batch = [...outcomes(failing, ['failure', 'failure'], at(5)), ...outcomes(fine, ['success'], at(5))];
        decisions.push(...(await recordAndApply(p, i === 0 ? batch : batch.reverse(), of)));
      }
    };
    try {
      await Promise.all(pools.flatMap((p, i) => [loop(p, i), loop(p, i), loop(p, i)]));
    } finally {
      await Promise.all(pools.map((p) => p.end()));
    }
    expect(decisions).toEqual([{ project_id: 'p', endpoint_id: failing, reason: '10 consecutive failed attempts' }]);
    expect(await status(failing)).toBe('inactive');
    // 2 pools × 3 loops × 5 batches: 60 failures, 30 successes, none lost.
    expect(await health(failing)).toMatchObject({ consecutive_failures: 60, window: [60, 60], prev: [0, 0] });
    expect(await health(fine)).toMatchObject({ consecutive_failures: 0, window: [30, 0], prev: [0, 0] });
    expect(await status(fine)).toBe('active');
  });

  onPostgres('makes a batch that waited behind the tripping one see the endpoint inactive', async () => {
    const ep = await endpoint();
    const other = createPool(db.url, { max: 1, applicationName: 'wharf-test-breaker-waiter' });
    const first = await pool.connect();
    try {
      await first.query('BEGIN');
      const tripped = await recordAttempts(first, outcomes(ep, times(10, 'failure'), at(5)), settings());
      expect(tripped).toEqual([{ project_id: 'p', endpoint_id: ep, reason: '10 consecutive failed attempts' }]);
      await applyDecisions(first, tripped);

      const second = recordAndApply(other, outcomes(ep, ['failure'], at(6)), settings());
      await expect
        .poll(async () => (await pool.query(`SELECT wait_event_type FROM pg_stat_activity WHERE application_name = 'wharf-test-breaker-waiter' AND state = 'active'`)).rows[0]?.wait_event_type)
        .toBe('Lock');
      await first.query('COMMIT');
      expect(await second).toEqual([]);
    } finally {
      first.release();
      await other.end();
    }
    expect(await health(ep)).toMatchObject({ consecutive_failures: 11, window: [11, 11] });
  });

  it('rolls the window over by buckets and files late attempts where they belong', async () => {
    const ep = await endpoint();
    const of = settings({ consecutive_failures: 0, failure_rate: 0, window_seconds: 60 });
    const record = (kinds: AttemptKind[], seconds: number) => recordAttempts(pool, outcomes(ep, kinds, at(seconds)), of);

    await record(['failure', 'failure', 'success', 'failure'], 10);
    expect(await health(ep)).toEqual({ consecutive_failures: 1, window_start: at(0), window: [4, 3], prev: [0, 0] });
    // The next bucket: the first becomes the previous one.
    await record(['failure', 'failure'], 70);
    expect(await health(ep)).toEqual({ consecutive_failures: 3, window_start: at(60), window: [2, 2], prev: [4, 3] });
    // Recorded late by a slow worker: it belongs to the previous bucket.
    await record(['failure'], 30);
    expect(await health(ep)).toEqual({ consecutive_failures: 4, window_start: at(60), window: [2, 2], prev: [5, 4] });
    // Older than the window: it only lengthens the streak.
    await record(['failure'], -100);
    expect(await health(ep)).toEqual({ consecutive_failures: 5, window_start: at(60), window: [2, 2], prev: [5, 4] });
    // Two buckets on: both counts start afresh.
    await record(['success'], 200);
    expect(await health(ep)).toEqual({ consecutive_failures: 0, window_start: at(180), window: [1, 0], prev: [0, 0] });
    await record(['failure'], 245);
    expect(await health(ep)).toEqual({ consecutive_failures: 1, window_start: at(240), window: [1, 1], prev: [1, 0] });
    // One batch spanning two buckets, the newer one new to the row.
    await recordAttempts(pool, [...outcomes(ep, ['failure'], at(250)), ...outcomes(ep, ['failure', 'success'], at(310))], of);
    expect(await health(ep)).toEqual({ consecutive_failures: 0, window_start: at(300), window: [2, 1], prev: [2, 2] });
    // Another window length: the old buckets no longer line up, so the window starts afresh.
    await recordAttempts(pool, outcomes(ep, ['failure'], at(320)), settings({ window_seconds: 120 }));
    expect(await health(ep)).toEqual({ consecutive_failures: 1, window_start: at(240), window: [1, 1], prev: [0, 0] });
  });

  it('trips on the failure rate once enough attempts were made in the window', async () => {
    const of = settings({ consecutive_failures: 0, window_seconds: 60, minimum_requests: 10, failure_rate: 50 });
    const exact = await endpoint();
    expect(await recordAttempts(pool, outcomes(exact, times(9, 'failure'), at(5)), of)).toEqual([]);
    expect(await recordAttempts(pool, outcomes(exact, ['failure'], at(6)), of)).toEqual([
      { project_id: 'p', endpoint_id: exact, reason: '100% of 10 attempts failed in the last 60 s' },
    ]);

    const sliding = await endpoint();
    const mixed: AttemptKind[] = ['success', 'failure', 'success', 'failure', 'success', 'failure', 'success', 'failure', 'success', 'success'];
    expect(await recordAttempts(pool, outcomes(sliding, mixed, at(10)), of)).toEqual([]);
    // 10 s into the next bucket, 5/6 of the previous one still counts: 2 + 10 × 5/6 attempts, 2 + 4 × 5/6 failed.
    expect(await recordAttempts(pool, outcomes(sliding, ['failure', 'failure'], at(70)), of)).toEqual([
      { project_id: 'p', endpoint_id: sliding, reason: '51% of about 10 attempts failed in the last 60 s' },
    ]);

    const later = await endpoint();
    await recordAttempts(pool, outcomes(later, mixed, at(10)), of);
    // 50 s into the next bucket only 1/6 of the previous one counts: 2 + 10/6 attempts, below the minimum.
    expect(await recordAttempts(pool, outcomes(later, ['failure', 'failure'], at(110)), of)).toEqual([]);
  });

  it('disables at once on 410 Gone, reporting only active or pending endpoints', async () => {
    const active = await endpoint('active');
    const pending = await endpoint('pending');
    const paused = await endpoint('paused');
    const inactive = await endpoint('inactive');
    const batch = [active, pending, paused, inactive].flatMap((ep) => outcomes(ep, ['success', 'gone']));
    const decisions = await recordAttempts(pool, batch, settings());
    expect(decisions).toEqual([
      { project_id: 'p', endpoint_id: active, reason: 'answered 410 Gone' },
      { project_id: 'p', endpoint_id: pending, reason: 'answered 410 Gone' },
    ]);
    for (const ep of [active, pending, paused, inactive]) {
      expect(await health(ep)).toMatchObject({ consecutive_failures: 1, window: [2, 1] });
    }
  });

  it("applies each project's own settings", async () => {
    const inP = await endpoint('active', 'p');
    const inQ = await endpoint('active', 'q');
    const of = (projectId: string): BreakerSettings => ({ ...DEFAULT_BREAKER, consecutive_failures: projectId === 'p' ? 3 : 5 });
    const batch = [...outcomes(inP, times(3, 'failure')), ...outcomes(inQ, times(3, 'failure'), undefined, 'q')];
    expect(await recordAttempts(pool, batch, of)).toEqual([{ project_id: 'p', endpoint_id: inP, reason: '3 consecutive failed attempts' }]);
  });

  it('counts on the database clock when no time is given', async () => {
    const ep = await endpoint();
    const before = (await pool.query<{ now: Date }>('SELECT clock_timestamp() AS now')).rows[0]!.now;
    await recordAttempts(pool, outcomes(ep, ['failure']), settings({ window_seconds: 60 }));
    const h = (await health(ep))!;
    expect(h.window).toEqual([1, 1]);
    expect(h.window_start.getTime() % 60_000).toBe(0);
    expect(h.window_start.getTime()).toBeGreaterThan(before.getTime() - 60_000);
    expect(h.window_start.getTime()).toBeLessThanOrEqual(Date.now() + 60_000);
  });

  it('starts afresh after resetBreaker', async () => {
    const ep = await endpoint();
    const of = settings({ consecutive_failures: 10 });
    await recordAttempts(pool, outcomes(ep, times(8, 'failure'), at(5)), of);
    await resetBreaker(pool, 'p', ep);
    expect(await health(ep)).toMatchObject({ consecutive_failures: 0, window: [0, 0], prev: [0, 0] });
    expect(await recordAttempts(pool, outcomes(ep, times(8, 'failure'), at(6)), of)).toEqual([]);
    expect(await health(ep)).toMatchObject({ consecutive_failures: 8, window: [8, 8] });
    // An endpoint with no state yet, or none at all, is simply left alone.
    await resetBreaker(pool, 'p', await endpoint());
    await resetBreaker(pool, 'p', 'missing');
  });

  it('ignores attempts of endpoints that are gone and drops the state with the endpoint', async () => {
    const ep = await endpoint();
    expect(await recordAttempts(pool, [...outcomes('missing', ['gone']), ...outcomes(ep, ['failure'])], settings())).toEqual([]);
    expect(await health('missing')).toBeUndefined();
    expect(await health(ep)).toBeDefined();
    await pool.query(`DELETE FROM endpoints WHERE project_id = 'p' AND id = $1`, [ep]);
    expect(await health(ep)).toBeUndefined();
    expect(await recordAttempts(pool, [], settings())).toEqual([]);
  });
});
