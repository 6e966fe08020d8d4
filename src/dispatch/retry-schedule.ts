import type { RetrySettings } from '../core/types.ts';

/** No single wait exceeds a day, however many attempts have failed. */
export const MAX_RETRY_DELAY_SECONDS = 86_400;

// 2^1023 is the largest finite power of two; beyond it the product would be Infinity (or NaN for a
// zero duration), and the cap below already applies long before.
const MAX_EXPONENT = 1023;

/**
 * Seconds to wait before the next attempt after `attempt` (1-based) failed.
 * Linear waits exactly `duration`. Exponential waits `duration × 2^(attempt−1)`, capped, with equal
 * jitter (in [base/2, base]) so endpoints that failed together don't get retried in lockstep, while
 * still waiting at least half the backoff. An `attempt` below 1 (or NaN) counts as 1.
 */
export function retryDelaySeconds(
  settings: RetrySettings,
  attempt: number,
  random: () => number = Math.random,
): number {
  if (settings.strategy === 'linear') return settings.duration;

  const failed = Number.isNaN(attempt) ? 1 : Math.max(Math.floor(attempt), 1);
  const exponent = Math.min(failed - 1, MAX_EXPONENT);
  const base = Math.min(settings.duration * 2 ** exponent, MAX_RETRY_DELAY_SECONDS);
  const delay = base / 2 + random() * (base / 2);
  return Math.round(delay * 1000) / 1000;
}

/** Whether a delivery that has made `attemptsMade` attempts may try again. */
export function hasRetriesLeft(settings: RetrySettings, attemptsMade: number): boolean {
  // retry_count counts retries, not attempts: the first attempt is free.
  return attemptsMade <= settings.retry_count;
}
