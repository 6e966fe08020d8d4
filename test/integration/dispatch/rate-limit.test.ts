import { setTimeout as delay } from 'node:timers/promises';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { acquire, acquireMany, type RateLimit } from '../../../src/dispatch/rate-limit.ts';
import { createPool, withTransaction } from '../../../src/store/pool.ts';
import { migratedDatabase, type TestDatabase } from '../../harness/db.ts';

const TEN_PER_2S: RateLimit = { limit: 10, duration_seconds: 2 };
// Aligned to 2 s, so "a fixed window would reset here" is a visible instant in the tests below.
const T0 = Date.UTC(2030, 0, 1, 0, 0, 0);
const at = (ms: number): Date => new Date(T0 + ms);

describe.each(['postgres', 'embedded'] as const)('rate limiter on %s', (kind) => {
  let db: TestDatabase;
  let pool: pg.Pool;
  let endpointSeq = 0;

  // The embedded server runs whole transactions one at a time, so racing ones only race on Postgres.
  const onPostgres = (name: string, fn: () => Promise<void>) => {
    if (kind === 'postgres') it(name, fn);
  };

  let close: (() => Promise<void>) | undefined;
  beforeAll(async () => {
    ({ db, pool, close } = await migratedDatabase(kind, 'wharf-test-rate'));
  });
  afterAll(async () => close?.());

  /** A fresh endpoint per test, so no test sees another's log. */
  const endpoint = async (project = 'p'): Promise<string> => {
    const id = `ep${++endpointSeq}`;
    await pool.query(`INSERT INTO endpoints (project_id, id, name, url) VALUES ($1, $2, $2, 'http://127.0.0.1/')`, [project, id]);
    return id;
  };

  it('grants up to the limit and says when the oldest grant leaves the window', async () => {
    const ep = await endpoint();
    expect(await acquire(pool, 'p', ep, TEN_PER_2S, 3, at(0))).toEqual({ granted: 3, retryAfterMs: 0 });
    expect(await acquire(pool, 'p', ep, TEN_PER_2S, 8, at(100))).toEqual({ granted: 7, retryAfterMs: 1_900 });
    expect(await acquire(pool, 'p', ep, TEN_PER_2S, 1, at(500))).toEqual({ granted: 0, retryAfterMs: 1_500 });
    // The 3 stamped at 0 leave at exactly 2 s; the 7 stamped at 100 ms are still in the window.
    expect(await acquire(pool, 'p', ep, TEN_PER_2S, 1, at(1_999))).toEqual({ granted: 0, retryAfterMs: 1 });
    expect(await acquire(pool, 'p', ep, TEN_PER_2S, 5, at(2_000))).toEqual({ granted: 3, retryAfterMs: 100 });
    expect(await acquire(pool, 'p', ep, TEN_PER_2S, 9, at(2_100))).toEqual({ granted: 7, retryAfterMs: 1_900 });
  });

  it('does not allow a second burst across a fixed-window boundary', async () => {
    const ep = await endpoint();
    // A fixed window aligned to 2 s would reset at 2 000 ms and let 10 more through at 2 100 ms.
    expect(await acquire(pool, 'p', ep, TEN_PER_2S, 10, at(1_900))).toEqual({ granted: 10, retryAfterMs: 0 });
    expect(await acquire(pool, 'p', ep, TEN_PER_2S, 10, at(2_100))).toEqual({ granted: 0, retryAfterMs: 1_800 });
    expect((await acquire(pool, 'p', ep, TEN_PER_2S, 10, at(3_900))).granted).toBe(10);
  });

  it('stamps a caller whose clock is behind at the latest stamp, never earlier', async () => {
    const ep = await endpoint();
    expect((await acquire(pool, 'p', ep, TEN_PER_2S, 10, at(1_000))).granted).toBe(10);
    // Judged at 1 000 ms, not at 0: the window is full and opens 2 s after the first stamp.
    expect(await acquire(pool, 'p', ep, TEN_PER_2S, 1, at(0))).toEqual({ granted: 0, retryAfterMs: 2_000 });
    const { rows } = await pool.query(`SELECT last_at FROM endpoint_rate_limits WHERE project_id = 'p' AND endpoint_id = $1`, [ep]);
    expect((rows[0].last_at as Date).getTime()).toBe(T0 + 1_000);
  });

  it('applies a changed limit to the grants already in the window', async () => {
    const ep = await endpoint();
    expect((await acquire(pool, 'p', ep, TEN_PER_2S, 10, at(0))).granted).toBe(10);
    expect(await acquire(pool, 'p', ep, { limit: 15, duration_seconds: 2 }, 10, at(100))).toEqual({ granted: 5, retryAfterMs: 1_900 });
    expect(await acquire(pool, 'p', ep, { limit: 5, duration_seconds: 2 }, 1, at(200))).toEqual({ granted: 0, retryAfterMs: 1_800 });
  });

  it('uses the database clock when no time is given', async () => {
    const ep = await endpoint();
    const { rows } = await pool.query<{ now: Date }>('SELECT clock_timestamp() AS now');
    expect(await acquire(pool, 'p', ep, { limit: 2, duration_seconds: 60 }, 3)).toMatchObject({ granted: 2 });
    const second = await acquire(pool, 'p', ep, { limit: 2, duration_seconds: 60 }, 1);
    expect(second.granted).toBe(0);
    expect(second.retryAfterMs).toBeGreaterThan(50_000);
    expect(second.retryAfterMs).toBeLessThanOrEqual(60_000);
    const stamp = (await pool.query(`SELECT last_at FROM endpoint_rate_limits WHERE endpoint_id = $1`, [ep])).rows[0].last_at as Date;
    expect(stamp.getTime()).toBeGreaterThanOrEqual(rows[0]!.now.getTime());
  });

  it('answers several endpoints in one call, each on its own', async () => {
    const [a, b, c] = [await endpoint(), await endpoint(), await endpoint('q')];
    expect((await acquire(pool, 'p', a, TEN_PER_2S, 10, at(0))).granted).toBe(10);
    const grants = await acquireMany(
      pool,
      [
        { project_id: 'p', endpoint_id: a, limit: TEN_PER_2S, wanted: 4 },
        { project_id: 'p', endpoint_id: b, limit: TEN_PER_2S, wanted: 6 },
        { project_id: 'q', endpoint_id: c, limit: { limit: 3, duration_seconds: 1 }, wanted: 2 },
        { project_id: 'q', endpoint_id: c, limit: { limit: 3, duration_seconds: 1 }, wanted: 2 },
        { project_id: 'p', endpoint_id: 'missing', limit: TEN_PER_2S, wanted: 1 },
        { project_id: 'p', endpoint_id: 'none-wanted', limit: TEN_PER_2S, wanted: 0 },
      ],
      at(500),
    );
    expect(Object.fromEntries(grants)).toEqual({
      [`p/${a}`]: { granted: 0, retryAfterMs: 1_500 },
      [`p/${b}`]: { granted: 6, retryAfterMs: 0 },
      // Two requests for one endpoint are added up: 4 wanted, 3 allowed.
      [`q/${c}`]: { granted: 3, retryAfterMs: 1_000 },
      'p/missing': { granted: 0, retryAfterMs: 2_000 },
      'p/none-wanted': { granted: 0, retryAfterMs: 0 },
    });
    expect(await acquireMany(pool, [])).toEqual(new Map());
  });

  it('refuses limits that make no sense', async () => {
    const ep = await endpoint();
    await expect(acquire(pool, 'p', ep, { limit: 0, duration_seconds: 1 }, 1)).rejects.toThrow(RangeError);
    await expect(acquire(pool, 'p', ep, { limit: 1, duration_seconds: 0.5 }, 1)).rejects.toThrow(/duration/);
    await expect(acquire(pool, 'p', ep, TEN_PER_2S, -1)).rejects.toThrow(/wanted/);
  });

  it('drops the log with its endpoint', async () => {
    const ep = await endpoint();
    await acquire(pool, 'p', ep, TEN_PER_2S, 1, at(0));
    await pool.query(`DELETE FROM endpoints WHERE project_id = 'p' AND id = $1`, [ep]);
    const { rows } = await pool.query('SELECT 1 FROM endpoint_rate_limits WHERE endpoint_id = $1', [ep]);
    expect(rows).toEqual([]);
  });

  onPostgres('never grants more than the limit in any window to concurrent callers on two pools', async () => {
    const ep = await endpoint();
    const other = await endpoint();
    const pools = [0, 1].map((i) => createPool(db.url, { max: 2, applicationName: `wharf-test-rate-${i}` }));
    interface Call { stampUs: bigint; granted: number; wanted: number; retryAfterMs: number }
    const calls: Call[] = [];
    let deadline = 0;

    // Each call runs in its own transaction, so reading the row back gives this call's stamp.
    const caller = async (p: pg.Pool): Promise<void> => {
      while (Date.now() < deadline) {
        const call = await withTransaction(p, async (client) => {
          const grant = await acquire(client, 'p', ep, TEN_PER_2S, 3);
          const { rows } = await client.query<{ us: string }>(
            `SELECT (extract(epoch FROM last_at) * 1000000)::bigint AS us FROM endpoint_rate_limits
             WHERE project_id = 'p' AND endpoint_id = $1`,
            [ep],
          );
          return { stampUs: BigInt(rows[0]!.us), wanted: 3, ...grant };
        });
        calls.push(call);
        // A caller told to come back later does so, as the worker will; that is pacing, not waiting for a result.
        if (call.granted < call.wanted) await delay(Math.min(call.retryAfterMs, deadline - Date.now() + 1));
      }
    };
    try {
      // Connections are opened first, so the 3 s are spent asking.
      await Promise.all(pools.flatMap((p) => [p.query('SELECT 1'), p.query('SELECT 1')]));
      deadline = Date.now() + 3_000;
      await Promise.all(pools.flatMap((p) => [caller(p), caller(p)]));
      // The endpoint just filled its window; another one is untouched by that.
      expect(await acquire(pool, 'p', other, TEN_PER_2S, 10)).toEqual({ granted: 10, retryAfterMs: 0 });
    } finally {
      await Promise.all(pools.map((p) => p.end()));
    }

    const durationUs = 2_000_000n;
    const grants = calls.filter((c) => c.granted > 0);
    // For every grant, the grants stamped in (stamp - duration, stamp] stay within the limit.
    for (const g of grants) {
      const inWindow = grants.filter((o) => o.stampUs > g.stampUs - durationUs && o.stampUs <= g.stampUs);
      expect(inWindow.reduce((n, o) => n + o.granted, 0)).toBeLessThanOrEqual(10);
    }
    // A refused caller is never outrun: no grant is stamped before the slot it was told about.
    for (const refused of calls.filter((c) => c.granted < c.wanted)) {
      const opensUs = refused.stampUs + BigInt(refused.retryAfterMs) * 1000n - 1000n;
      expect(grants.filter((g) => g.stampUs > refused.stampUs && g.stampUs < opensUs)).toEqual([]);
    }
    // 3 s of asking holds one full window and the start of the next: 10 at once, 10 more at 2 s.
    expect(grants.reduce((n, g) => n + g.granted, 0)).toBe(20);
    expect(calls.length).toBeGreaterThan(8);
  });
});
