/**
 * Diagnostic preload for the Wharf child (bench/e2e.ts --pg-timing FILE): wraps pg's
 * Client#query to count every statement and time it from the call to its answer being handled
 * (round trip + server time + this process's event-loop delay), grouped by normalized SQL text.
 * Writes the table to $WHARF_BENCH_PG_TIMING as JSON when the process exits.
 */
import { writeFileSync } from 'node:fs';
import pg from 'pg';

interface Stat {
  count: number;
  totalMs: number;
  maxMs: number;
  rows: number;
  /** The first full text seen under this key. */
  example: string;
}

const out = process.env.WHARF_BENCH_PG_TIMING;
const stats = new Map<string, Stat>();
const since = performance.now();

function keyOf(config: unknown): string {
  const text = typeof config === 'string' ? config : ((config as { text?: string } | null)?.text ?? '?');
  return text.replace(/\s+/g, ' ').trim().slice(0, 160);
}

function record(key: string, config: unknown, started: number, rows: number): void {
  const ms = performance.now() - started;
  let s = stats.get(key);
  if (!s) {
    const example = typeof config === 'string' ? config : ((config as { text?: string } | null)?.text ?? '?');
    stats.set(key, (s = { count: 0, totalMs: 0, maxMs: 0, rows: 0, example }));
  }
  s.count += 1;
  s.totalMs += ms;
  s.rows += rows;
  if (ms > s.maxMs) s.maxMs = ms;
}

type AnyFn = (...args: unknown[]) => unknown;
const proto = pg.Client.prototype as unknown as { query: AnyFn };
const original = proto.query;
proto.query = function (this: unknown, ...args: unknown[]): unknown {
  const key = keyOf(args[0]);
  const started = performance.now();
  const last = args.length - 1;
  const rowsOf = (res: unknown): number => (res as { rowCount?: number } | null)?.rowCount ?? 0;
  if (typeof args[last] === 'function') {
    const cb = args[last] as AnyFn;
    args[last] = (err: unknown, res: unknown) => {
      record(key, args[0], started, rowsOf(res));
      return cb(err, res);
    };
    return original.apply(this, args);
  }
  const result = original.apply(this, args);
  if (result && typeof (result as Promise<unknown>).then === 'function') {
    (result as Promise<unknown>).then(
      (res) => record(key, args[0], started, rowsOf(res)),
      () => record(key, args[0], started, 0),
    );
  }
  return result;
};

if (out) {
  process.on('exit', () => {
    const table = [...stats.entries()]
      .map(([sql, s]) => ({ sql, count: s.count, total_ms: Math.round(s.totalMs), mean_ms: Math.round((s.totalMs / s.count) * 100) / 100, max_ms: Math.round(s.maxMs), rows: s.rows, example: s.example }))
      .sort((a, b) => b.total_ms - a.total_ms);
    writeFileSync(out, JSON.stringify({ wall_ms: Math.round(performance.now() - since), statements: table }, null, 1));
  });
}
