import { describe, expect, it } from 'vitest';
import type { RetrySettings } from '../../src/core/types.ts';
import { MAX_RETRY_DELAY_SECONDS, hasRetriesLeft, retryDelaySeconds } from '../../src/dispatch/retry-schedule.ts';

const linear: RetrySettings = { strategy: 'linear', duration: 10, retry_count: 5 };
const exponential: RetrySettings = { strategy: 'exponential', duration: 10, retry_count: 10 };
const fixed = (value: number) => () => value;

describe('retryDelaySeconds', () => {
  it('waits exactly the duration every time when linear', () => {
    for (const attempt of [1, 2, 3, 10, 100]) {
      expect(retryDelaySeconds(linear, attempt, fixed(0.99))).toBe(10);
    }
  });

  it('doubles the base per attempt when exponential', () => {
    // random 1 → the full base; random 0 → half of it.
    expect([1, 2, 3, 4, 5].map((a) => retryDelaySeconds(exponential, a, fixed(1)))).toEqual([10, 20, 40, 80, 160]);
    expect([1, 2, 3, 4, 5].map((a) => retryDelaySeconds(exponential, a, fixed(0)))).toEqual([5, 10, 20, 40, 80]);
    expect(retryDelaySeconds(exponential, 3, fixed(0.5))).toBe(30);
  });

  it('stays within [base/2, base] and rounds to milliseconds', () => {
    for (let attempt = 1; attempt <= 20; attempt++) {
      const base = Math.min(10 * 2 ** (attempt - 1), MAX_RETRY_DELAY_SECONDS);
      for (const r of [0, 0.123456789, 0.5, 0.987654321, 0.9999999]) {
        const delay = retryDelaySeconds(exponential, attempt, fixed(r));
        expect(delay).toBeGreaterThanOrEqual(base / 2);
        expect(delay).toBeLessThanOrEqual(base);
        expect(Math.round(delay * 1000)).toBeCloseTo(delay * 1000, 6);
      }
    }
    expect(retryDelaySeconds({ ...exponential, duration: 1 }, 1, fixed(0.123456789))).toBe(0.562);
  });

  it('uses Math.random by default and stays in range', () => {
    for (let i = 0; i < 50; i++) {
      const delay = retryDelaySeconds(exponential, 2);
      expect(delay).toBeGreaterThanOrEqual(10);
      expect(delay).toBeLessThanOrEqual(20);
    }
  });

  it('caps the base at a day', () => {
    // 10 × 2^13 = 81920 < 86400 ≤ 10 × 2^14
    expect(retryDelaySeconds(exponential, 14, fixed(1))).toBe(81_920);
    expect(retryDelaySeconds(exponential, 15, fixed(1))).toBe(MAX_RETRY_DELAY_SECONDS);
    expect(retryDelaySeconds(exponential, 15, fixed(0))).toBe(MAX_RETRY_DELAY_SECONDS / 2);
  });

  it('does not overflow for huge attempt numbers', () => {
    for (const attempt of [1024, 1025, 5000, Number.MAX_SAFE_INTEGER, Infinity]) {
      expect(retryDelaySeconds(exponential, attempt, fixed(1))).toBe(MAX_RETRY_DELAY_SECONDS);
    }
    expect(retryDelaySeconds({ ...exponential, duration: 0 }, 5000, fixed(1))).toBe(0);
  });

  it('treats an attempt below 1 as the first', () => {
    expect(retryDelaySeconds(exponential, 0, fixed(1))).toBe(10);
    expect(retryDelaySeconds(exponential, Number.NaN, fixed(1))).toBe(10);
  });
});

describe('hasRetriesLeft', () => {
  it('allows retry_count retries after the first attempt', () => {
    const settings: RetrySettings = { ...linear, retry_count: 3 };
    expect(hasRetriesLeft(settings, 1)).toBe(true);
    expect(hasRetriesLeft(settings, 3)).toBe(true);
    expect(hasRetriesLeft(settings, 4)).toBe(false);
    expect(hasRetriesLeft(settings, 5)).toBe(false);
  });

  it('allows a single attempt when retry_count is 0', () => {
    const settings: RetrySettings = { ...linear, retry_count: 0 };
    expect(hasRetriesLeft(settings, 0)).toBe(true);
    expect(hasRetriesLeft(settings, 1)).toBe(false);
  });
});
