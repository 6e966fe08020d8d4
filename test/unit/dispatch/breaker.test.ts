import { describe, expect, it } from 'vitest';
import { Reader } from '../../../src/core/settings.ts';
import {
  DEFAULT_BREAKER,
  crossed,
  parseBreaker,
  slidingCounts,
  tripReason,
  type BreakerCounters,
  type BreakerSettings,
} from '../../../src/dispatch/breaker.ts';

const counters = (c: Partial<BreakerCounters> & { attempts?: number; failures?: number } = {}): BreakerCounters => ({
  consecutive_failures: c.consecutive_failures ?? 0,
  window: c.window ?? { attempts: c.attempts ?? 0, failures: c.failures ?? 0 },
  gone: c.gone ?? false,
});
const tuned = (s: Partial<BreakerSettings>): BreakerSettings => ({ ...DEFAULT_BREAKER, ...s });

describe('tripReason', () => {
  it.each([
    // [what, counters, settings, reason]
    ['a streak below the threshold', counters({ consecutive_failures: 9 }), DEFAULT_BREAKER, null],
    ['a streak at the threshold', counters({ consecutive_failures: 10 }), DEFAULT_BREAKER, '10 consecutive failed attempts'],
    ['a streak past the threshold', counters({ consecutive_failures: 12 }), DEFAULT_BREAKER, '12 consecutive failed attempts'],
    ['any streak when consecutive is off', counters({ consecutive_failures: 1_000 }), tuned({ consecutive_failures: 0 }), null],
    ['a rate over the minimum', counters({ attempts: 13, failures: 8 }), DEFAULT_BREAKER, '61% of 13 attempts failed in the last 60 s'],
    ['exactly the rate at exactly the minimum', counters({ attempts: 10, failures: 5 }), DEFAULT_BREAKER, '50% of 10 attempts failed in the last 60 s'],
    ['a rate just below', counters({ attempts: 10, failures: 4 }), DEFAULT_BREAKER, null],
    ['every attempt failed but too few', counters({ attempts: 9, failures: 9 }), DEFAULT_BREAKER, null],
    ['an estimate just under the minimum', counters({ attempts: 9.999, failures: 9.999 }), DEFAULT_BREAKER, null],
    ['an estimated count', counters({ attempts: 10.333, failures: 5.333 }), DEFAULT_BREAKER, '51% of about 10 attempts failed in the last 60 s'],
    ['its own window length in the reason', counters({ attempts: 4, failures: 4 }), tuned({ window_seconds: 300, minimum_requests: 4 }), '100% of 4 attempts failed in the last 300 s'],
    ['any rate when failure_rate is off', counters({ attempts: 100, failures: 100 }), tuned({ failure_rate: 0 }), null],
    ['a 100 % threshold', counters({ attempts: 20, failures: 19 }), tuned({ failure_rate: 100 }), null],
    ['no attempts at a minimum of 1', counters(), tuned({ minimum_requests: 1, failure_rate: 1 }), null],
    ['a 410', counters({ gone: true }), DEFAULT_BREAKER, 'answered 410 Gone'],
    ['a 410 with every other check off', counters({ gone: true }), tuned({ consecutive_failures: 0, failure_rate: 0 }), 'answered 410 Gone'],
    ['a 410 before a streak', counters({ gone: true, consecutive_failures: 50 }), DEFAULT_BREAKER, 'answered 410 Gone'],
    ['a streak before a rate', counters({ consecutive_failures: 10, attempts: 10, failures: 10 }), DEFAULT_BREAKER, '10 consecutive failed attempts'],
  ])('%s', (_what, c, s, reason) => {
    expect(tripReason(c, s)).toBe(reason);
  });
});

describe('slidingCounts', () => {
  const current = { attempts: 2, failures: 2 };
  const previous = { attempts: 10, failures: 4 };

  it('counts the whole previous bucket at the start of the current one and none of it at the end', () => {
    expect(slidingCounts(current, previous, 0)).toEqual({ attempts: 12, failures: 6 });
    expect(slidingCounts(current, previous, 1)).toEqual({ attempts: 2, failures: 2 });
  });

  it('weighs the previous bucket by the share still in the window', () => {
    expect(slidingCounts(current, previous, 0.5)).toEqual({ attempts: 7, failures: 4 });
    expect(slidingCounts(current, previous, 10 / 60)).toEqual({ attempts: 10.333, failures: 5.333 });
  });

  it('keeps out-of-range fractions in range', () => {
    expect(slidingCounts(current, previous, -1)).toEqual({ attempts: 12, failures: 6 });
    expect(slidingCounts(current, previous, 2)).toEqual({ attempts: 2, failures: 2 });
  });

  it('rounds away float dust', () => {
    expect(slidingCounts({ attempts: 0, failures: 0 }, { attempts: 10, failures: 10 }, 0.7)).toEqual({ attempts: 3, failures: 3 });
  });
});

describe('parseBreaker', () => {
  const parse = (value: unknown, base?: BreakerSettings) => {
    const r = new Reader();
    const settings = parseBreaker(r, value, 'projects[0].breaker', base);
    return { settings, issues: r.issues };
  };

  it('keeps the defaults, or the given base, for what is left out', () => {
    expect(parse(undefined)).toEqual({ settings: DEFAULT_BREAKER, issues: [] });
    expect(parse(null)).toEqual({ settings: DEFAULT_BREAKER, issues: [] });
    expect(parse({})).toEqual({ settings: DEFAULT_BREAKER, issues: [] });
    expect(DEFAULT_BREAKER).toEqual({ consecutive_failures: 10, window_seconds: 60, minimum_requests: 10, failure_rate: 50, alert_after: 5 });
    const base = tuned({ consecutive_failures: 3 });
    expect(parse({ failure_rate: 0 }, base).settings).toEqual({ ...base, failure_rate: 0 });
  });

  it('reads every key, numbers given as strings included', () => {
    expect(parse({ consecutive_failures: 0, window_seconds: '300', minimum_requests: 1, failure_rate: 100, alert_after: '0' })).toEqual({
      settings: { consecutive_failures: 0, window_seconds: 300, minimum_requests: 1, failure_rate: 100, alert_after: 0 },
      issues: [],
    });
  });

  it('names each wrong value by its path and keeps the base for it', () => {
    const { settings, issues } = parse({ consecutive_failures: -1, window_seconds: 0, minimum_requests: 2.5, failure_rate: 101 });
    expect(settings).toEqual(DEFAULT_BREAKER);
    expect(issues).toEqual([
      { path: 'projects[0].breaker.consecutive_failures', message: 'must be an integer from 0 to 1000000 (got -1)' },
      { path: 'projects[0].breaker.window_seconds', message: 'must be an integer from 1 to 86400 (got 0)' },
      { path: 'projects[0].breaker.minimum_requests', message: 'must be an integer from 1 to 1000000 (got 2.5)' },
      { path: 'projects[0].breaker.failure_rate', message: 'must be an integer from 0 to 100 (got 101)' },
    ]);
  });

  it('refuses a block that is not a mapping, and unknown keys', () => {
    expect(parse(5).issues).toEqual([{ path: 'projects[0].breaker', message: 'must be a mapping (got 5)' }]);
    expect(parse({ threshold: 3 }).issues).toEqual([{ path: 'projects[0].breaker.threshold', message: '', unknown: true }]);
  });
});

describe('crossed (the endpoint.failing alert, once per streak)', () => {
  const row = (consecutive_failures: number, batch_streak: number, batch_success = false) => ({ consecutive_failures, batch_streak, batch_success });
  it('fires for the batch that carries the streak to the threshold, and only that one', () => {
    expect(crossed(row(4, 1), 5)).toBe(false);
    expect(crossed(row(5, 1), 5)).toBe(true);
    expect(crossed(row(6, 1), 5)).toBe(false); // the same streak, already reported
    expect(crossed(row(7, 4), 5)).toBe(true); // 3 before, 7 after: crossed inside the batch
  });
  it('counts a batch with a success from zero, and never fires with the alert off', () => {
    expect(crossed(row(5, 5, true), 5)).toBe(true);
    expect(crossed(row(4, 4, true), 5)).toBe(false);
    expect(crossed(row(50, 50), 0)).toBe(false);
  });
});
