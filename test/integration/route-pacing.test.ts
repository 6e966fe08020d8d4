/**
 * Routing's turn-taking (pace() in src/ingest/route.ts): batches routed at once take turns, one
 * slice each per turn of the event loop, first come first served, rather than each running all of
 * its costly filter evaluations back to back while the others (and every request) wait.
 *
 * The test watches order, not milliseconds: each event of a batch is read by its filter once, so
 * the order in which routing first reads each event's headers (a getter on the input) is the
 * order of the evaluations, and a callback marks every turn of the event loop among them. On a
 * loaded machine evaluations only get slower, which makes each one fill its slice all the more.
 * Checked to fail with pace() a no-op: 36 evaluations in one stretch, no turn of the loop.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EventInput } from '../../src/core/types.ts';
import { routeBatch } from '../../src/ingest/route.ts';
import type { Queryable } from '../../src/store/queryable.ts';
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

    // Each batch's routing query (its endpoints with their subscriptions) answers only once every
    // batch has asked it, so all of them are ready to evaluate at the same moment: otherwise, on a
    // loaded machine, one batch could finish its evaluations while another still waited for
    // Postgres, and the order would show nothing about turns.
    let asked = 0;
    let allAsked!: () => void;
    const together = new Promise<void>((resolve) => (allAsked = resolve));
    const gated: Queryable = {
      query: async (text: string, values?: unknown[]) => {
        const answer = await pool.query(text, values);
        if (text.includes('FROM subscriptions')) {
          if (++asked === BATCHES.length) allAsked();
          await together;
        }
        return answer;
      },
    } as Queryable;
    // Other work of the process: a callback that runs once on every turn of the event loop. Turns
    // in a row are noted once: while the batches wait for Postgres the loop spins idle, and on a
    // loaded machine that wait alone made millions of entries (the assertion's spread below then
    // overflowed the stack).
    let routing = true;
    const turn = (): void => {
      if (order.at(-1) !== '.') order.push('.');
      if (routing) setImmediate(turn);
    };
    setImmediate(turn);
    const results = await Promise.all(BATCHES.map((project) => routeBatch(gated, project, batch(project)))).finally(() => (routing = false));

    // Every evaluation ran out of its budget: no event matched.
    for (const r of results) expect(r).toEqual(Array.from({ length: EVENTS }, () => ({ ok: true, targets: [] })));
    const evaluations = order.filter((b) => b !== '.');
    expect(evaluations).toHaveLength(BATCHES.length * EVENTS);

    // The loop turns between slices: each evaluation takes 5-50 ms, so a 10 ms slice holds at most
    // three. Without pace() the batches still interleave (each awaits between events) but only on
    // microtasks: all 36 evaluations run without the loop turning once, and nothing else runs.
    const stretches = order.join('').split('.').map((run) => run.length);
    expect(stretches.reduce((a, b) => Math.max(a, b), 0), order.join('')).toBeLessThanOrEqual(4);

    // First come, first served: once all have begun they rotate, and between two runs of a batch
    // every other batch with events left has exactly one.
    const first = BATCHES.map((b) => evaluations.indexOf(b));
    const runs: { batch: string; at: number }[] = [];
    evaluations.forEach((b, at) => {
      if (runs.at(-1)?.batch !== b) runs.push({ batch: b, at });
    });
    const joined = runs.findIndex((r) => r.at === Math.max(...first));
    for (let i = joined; i < runs.length; i++) {
      const next = runs.findIndex((r, j) => j > i && r.batch === runs[i]!.batch);
      if (next === -1) continue;
      const between = runs.slice(i + 1, next).map((r) => r.batch);
      const waiting = BATCHES.filter((b) => b !== runs[i]!.batch && evaluations.lastIndexOf(b) > runs[i]!.at);
      expect(between.sort(), `${evaluations.join('')}: turns between runs ${i} and ${next}`).toEqual(waiting);
    }
  });
});
