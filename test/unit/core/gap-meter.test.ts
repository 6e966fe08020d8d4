import { describe, expect, it } from 'vitest';
import { gapMeter } from '../../../src/core/gap-meter.ts';

/** A meter for `lingerMs` fed arrivals at these gaps (ms), starting after a silence. */
const fed = (lingerMs: number, gaps: number[]) => {
  const m = gapMeter(lingerMs);
  let at = 1_000_000;
  m.arrive(at);
  for (const g of gaps) m.arrive((at += g));
  return m;
};

describe('gapMeter', () => {
  it('is not dense before it has seen traffic, nor ever with a linger of 0', () => {
    expect(gapMeter(5).dense()).toBe(false);
    expect(fed(0, Array(30).fill(0)).dense()).toBe(false);
  });

  it('turns dense once arrivals come at least two per linger, and quiet again when they thin out', () => {
    expect(fed(5, Array(30).fill(1)).dense()).toBe(true); // ~1,000/s against a 5 ms linger
    expect(fed(1, Array(30).fill(1)).dense()).toBe(false); // a 1 ms linger would catch one at most
    expect(fed(5, [...Array(30).fill(1), 10, 10, 10]).dense()).toBe(false); // thinned to ~100/s
  });

  it('forgets an hour of silence as fast as a moment of it, within a handful of arrivals', () => {
    expect(fed(5, [3_600_000, ...Array(8).fill(1)]).dense()).toBe(true);
    expect(fed(5, [20, ...Array(8).fill(1)]).dense()).toBe(true);
    expect(fed(5, [3_600_000, 1]).dense()).toBe(false);
  });

  it('lets the first of a group wait what is left of its linger while dense, and nothing otherwise', () => {
    const dense = gapMeter(5);
    let at = performance.now() - 40;
    for (let i = 0; i < 30; i++) dense.arrive((at += 1)); // ~1,000/s, the last one 10 ms ago
    expect(dense.waitMs(performance.now())).toBeGreaterThan(3);
    expect(dense.waitMs(performance.now())).toBeLessThanOrEqual(5);
    expect(dense.waitMs(performance.now() - 3)).toBeLessThanOrEqual(2);
    expect(dense.waitMs(performance.now() - 6)).toBe(0); // its linger is over
    expect(fed(5, Array(30).fill(10)).waitMs(performance.now())).toBe(0); // ~100/s: never waits
  });
});
