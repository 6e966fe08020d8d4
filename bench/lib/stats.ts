/** Small numeric helpers for bench/e2e.ts. */

export interface Percentiles {
  count: number;
  p50: number;
  p95: number;
  p99: number;
  max: number;
  mean: number;
}

/** Nearest-rank percentiles; sorts `values` in place. Empty input gives NaN everywhere. */
export function percentiles(values: Float64Array | number[]): Percentiles {
  const a = values instanceof Float64Array ? values : Float64Array.from(values);
  a.sort();
  const n = a.length;
  const at = (q: number): number => (n === 0 ? NaN : a[Math.min(n - 1, Math.max(0, Math.ceil(q * n) - 1))]!);
  let sum = 0;
  for (let i = 0; i < n; i++) sum += a[i]!;
  return { count: n, p50: at(0.5), p95: at(0.95), p99: at(0.99), max: n === 0 ? NaN : a[n - 1]!, mean: n === 0 ? NaN : sum / n };
}

/**
 * Rate over the middle `share` of sorted timestamps (ms): the events between the (1-share)/2 and
 * (1+share)/2 quantiles, divided by the time between them. Leaves out ramp-up and drain tail.
 */
export function middleRate(sortedTimes: Float64Array, share = 0.8): number {
  const n = sortedTimes.length;
  if (n < 10) return NaN;
  const lo = Math.floor(((1 - share) / 2) * n);
  const hi = Math.ceil(((1 + share) / 2) * n) - 1;
  const span = sortedTimes[hi]! - sortedTimes[lo]!;
  return span > 0 ? ((hi - lo) / span) * 1000 : NaN;
}

export const round = (x: number, digits = 1): number => (Number.isFinite(x) ? Math.round(x * 10 ** digits) / 10 ** digits : x);

export const fmt = (x: number, digits = 1): string => (Number.isFinite(x) ? round(x, digits).toFixed(digits) : String(x));

export const mib = (bytes: number): number => round(bytes / 1024 / 1024, 1);
