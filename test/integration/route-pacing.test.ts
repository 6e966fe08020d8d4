/**
 * Routing's turn-taking (pace() in src/ingest/route.ts): batches routed at once take turns, one
 * slice each per turn of the event loop, first come first served, rather than each running all of
 * its costly filter evaluations back to back while the others (and every request) wait.
 *
 * The test watches the order of evaluations, not milliseconds: each event of a batch is read by
 * its filter once, so the order in which routing first reads each event's headers (a getter on
 * the input) is the order of the evaluations. On a loaded machine evaluations only get slower,
 * which makes each one fill its slice all the more.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EventInput } from '../../src/core/types.ts';
import { routeBatch } from '../../src/ingest/route.ts';
import { migratedDatabase } from '../harness/db.ts';

// 400 paths through an array of 40,000 items: each evaluation runs out of its work budget (so none
// matches), some 5 to 50 ms of a core, warm or cold: a batch of them is many slices of routing's
// 10 ms, however fast the machine.
const FILTER = { body: { $or: Array.from({ length: 400 }, (_, i) => ({ 'items.x': `n${i}` })) } };
const data = (seed: number): string => JSON.stringify({ items: Array.from({ length: 40_000 }, (_, i) => ({ x: i + seed })) });

const BATCHES = ['p', 'q', 'r'] as const;
const EVENTS = 12;

describe('routing takes turns between batches', () => {
  let close: () => Promise<void>;
  let pool: Awaited<ReturnType<typeof migratedDatabase>>['pool'];
  beforeAll(async () => {
    ({ pool, close } = await migratedDatabase('postgres', 'route-pacing'));
    await pool.query(`INSERT INTO projects (id, name, type, settings) VALUES ('r', 'r', 'outgoing', '{}')`);
    for (const project of BATCHES) {
      await pool.query(`INSERT INTO endpoints (project_id, id, name, url) VALUES ($1, 'ep', 'ep', 'http://127.0.0.1/')`, [project]);
      await pool.query(`INSERT INTO subscriptions (project_id, id, endpoint_id, event_types, filter) VALUES ($1, 'sub', 'ep', '{*}', $2)`, [
        project,
        JSON.stringify(FILTER),
      ]);
    }
  });
  afterAll(async () => close?.());

  it('interleaves the costly evaluations of batches routed at once, one slice each per turn', async () => {
    const order: string[] = [];
    const batch = (project: string): EventInput[] =>
      Array.from({ length: EVENTS }, (_, i) => ({
        project_id: project,
        source_id: null,
        message_type: 'single',
        endpoint_id: 'ep',
        event_type: 'costly.test',
        data: data(i),
        custom_headers: {},
        idempotency_key: null,
        // Read once per event, just before its filter runs.
        get headers() {
          order.push(project);
          return {};
        },
      }));

    const results = await Promise.all(BATCHES.map((project) => routeBatch(pool, project, batch(project))));

    // Every evaluation ran out of its budget: no event matched.
    for (const r of results) expect(r).toEqual(Array.from({ length: EVENTS }, () => ({ ok: true, targets: [] })));
    expect(order).toHaveLength(BATCHES.length * EVENTS);

    // Run back to back, each batch would finish before the next began (p×12, q×12, r×12).
    // Taking turns, every batch begins before any finishes ...
    const first = BATCHES.map((b) => order.indexOf(b));
    const last = BATCHES.map((b) => order.lastIndexOf(b));
    expect(Math.max(...first), order.join('')).toBeLessThan(Math.min(...last));
    // ... and once all have begun, they rotate: a run of one batch's evaluations is one slice,
    // and between two runs of a batch every other batch with events left has exactly one.
    const runs: { batch: string; at: number }[] = [];
    order.forEach((b, at) => {
      if (runs.at(-1)?.batch !== b) runs.push({ batch: b, at });
    });
    const joined = runs.findIndex((r) => r.at === Math.max(...first));
    for (let i = joined; i < runs.length; i++) {
      const next = runs.findIndex((r, j) => j > i && r.batch === runs[i]!.batch);
      if (next === -1) continue;
      const between = runs.slice(i + 1, next).map((r) => r.batch);
      const waiting = BATCHES.filter((b) => b !== runs[i]!.batch && order.lastIndexOf(b) > runs[i]!.at);
      expect(between.sort(), `${order.join('')}: turns between runs ${i} and ${next}`).toEqual(waiting);
    }
    expect(runs.length).toBeGreaterThan(BATCHES.length);
  });
});
