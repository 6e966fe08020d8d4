import { describe, expect, it } from 'vitest';
import { gapMeter } from '../../../src/core/gap-meter.ts';

describe('gapMeter', () => {
  it('is not dense before it has seen traffic', () => {
    expect(gapMeter(20).dense(5)).toBe(false);
  });

  it('turns dense once arrivals come at least two per linger, and quiet again when they thin out', () => {
    const g = gapMeter(20);
    g.add(Infinity); // the first arrival after a silence
    for (let i = 0; i < 30; i++) g.add(1);
    expect(g.dense(5)).toBe(true); // ~1,000/s against a 5 ms linger
    expect(g.dense(1)).toBe(false); // a 1 ms linger would catch one at most
    for (let i = 0; i < 3; i++) g.add(10);
    expect(g.dense(5)).toBe(false); // ~100/s: a 5 ms wait would mostly wait alone
  });

  it('forgets an hour of silence as fast as a moment of it, within a handful of arrivals', () => {
    const afterHour = gapMeter(20);
    const afterMoment = gapMeter(20);
    afterHour.add(3_600_000);
    afterMoment.add(20);
    for (let i = 0; i < 8; i++) {
      afterHour.add(1);
      afterMoment.add(1);
    }
    expect(afterHour.dense(5)).toBe(true);
    expect(afterMoment.dense(5)).toBe(true);
  });
});
