/**
 * A subscription as YAML (`projects[].subscriptions[]`) and the API give it, in Convoy's shape:
 * `{ name, endpoint_id, source_id?, filter_config: { event_types, filter: { body, headers } },
 * retry_config?: { type, duration | interval_seconds, retry_count } }`.
 */
import { Reader, absent, got, type Fields, type SettingIssue } from '../core/settings.ts';
import type { RetryStrategy, SubscriptionRetry } from '../core/types.ts';
import type { SubscriptionFields } from '../store/subscriptions.ts';
import { checkFilter, type SubscriptionFilter } from './filter.ts';
import { eventTypePatternProblem } from './limits.ts';

export interface SubscriptionDefinition extends SubscriptionFields {
  /** '' when none was given (the API then makes one). */
  id: string;
}

const KEYS = ['id', 'name', 'endpoint_id', 'source_id', 'filter_config', 'alert_config', 'retry_config'];

export function readSubscription(r: Reader, value: unknown, at: string): SubscriptionDefinition | null {
  const s = r.fields(value, at, KEYS);
  if (s === null) return null;
  const id = absent(s.id) ? '' : r.id(s.id, `${at}.id`);
  const endpointId = r.text(s.endpoint_id, `${at}.endpoint_id`, '', { max: 200 });
  if (absent(s.endpoint_id)) r.bad(`${at}.endpoint_id`, 'is required: the endpoint this subscription delivers to');
  const sourceId = r.optional(s.source_id, `${at}.source_id`, 200);
  const name = r.text(s.name, `${at}.name`, id || endpointId, { max: 200 });

  let eventTypes = ['*'];
  let filter: SubscriptionFilter | null = null;
  if (!absent(s.filter_config)) {
    const fc = r.fields(s.filter_config, `${at}.filter_config`, ['event_types', 'filter']) ?? {};
    if (!absent(fc.event_types)) {
      const list = r.list(fc.event_types, `${at}.filter_config.event_types`, 'event types');
      eventTypes = list.flatMap((t, i) => {
        // The same rule as the event types ingest takes (an exact type, `*`, or `order.*`).
        const problem = typeof t === 'string' ? eventTypePatternProblem(t) : 'must be an event type, "*" or a prefix like "order.*"';
        if (problem === null) return [t as string];
        r.bad(`${at}.filter_config.event_types[${i}]`, `${problem}${got(t)}`);
        return [];
      });
      if (list.length === 0) r.bad(`${at}.filter_config.event_types`, 'must name at least one event type (or "*")');
    }
    if (!absent(fc.filter)) {
      const problems = checkFilter(fc.filter, `${at}.filter_config.filter`);
      for (const p of problems) r.bad(p.path, p.message);
      if (problems.length === 0) filter = emptyToNull(fc.filter as SubscriptionFilter);
    }
  }
  // Convoy's per-subscription alert settings (convoy-go sends them, null when unset): checked, and
  // not used. Wharf alerts per endpoint (breaker.alert_after); the README lists it among the
  // Convoy fields Wharf ignores.
  if (!absent(s.alert_config)) {
    const a = r.fields(s.alert_config, `${at}.alert_config`, ['count', 'threshold']);
    if (a && !absent(a.count)) r.integer(a.count, `${at}.alert_config.count`, 0, 1_000_000, 0);
  }
  const retryConfig = absent(s.retry_config) ? null : readRetryConfig(r, s.retry_config, `${at}.retry_config`);
  return { id, name, endpoint_id: endpointId, source_id: sourceId, event_types: eventTypes, filter, retry_config: retryConfig };
}

/** The same bounds as a project's `retry` (config/schema.ts). */
const MAX_RETRY_COUNT = 50;
const MAX_DURATION_SECONDS = 86_400;

/**
 * Convoy's retry_config: `type` (linear | exponential), the wait as `duration` (a Go duration such
 * as "10s" or "1h3m", or a number of seconds) or `interval_seconds`, and `retry_count`. The parts
 * given override the project's `retry`; none given (or only Go's zero values, "") is null.
 */
function readRetryConfig(r: Reader, value: unknown, at: string): SubscriptionRetry | null {
  const rc: Fields = r.fields(value, at, ['type', 'duration', 'interval_seconds', 'retry_count']) ?? {};
  const out: SubscriptionRetry = {};
  if (!absent(rc.type) && rc.type !== '') out.strategy = r.choice<RetryStrategy>(rc.type, `${at}.type`, ['linear', 'exponential'], 'linear');
  if (!absent(rc.retry_count)) out.retry_count = r.integer(rc.retry_count, `${at}.retry_count`, 0, MAX_RETRY_COUNT, 0);
  const fromDuration = absent(rc.duration) || rc.duration === '' ? null : durationSeconds(r, rc.duration, `${at}.duration`);
  const fromInterval = absent(rc.interval_seconds) || rc.interval_seconds === 0
    ? null
    : r.integer(rc.interval_seconds, `${at}.interval_seconds`, 1, MAX_DURATION_SECONDS, 1);
  if (fromDuration !== null && fromInterval !== null && fromDuration !== fromInterval) {
    r.bad(`${at}.interval_seconds`, `says ${fromInterval} s where duration says ${fromDuration} s; give one of them`);
  }
  const seconds = fromInterval ?? fromDuration;
  if (seconds !== null) out.duration = seconds;
  return Object.keys(out).length === 0 ? null : out;
}

/** Go's duration units, in seconds. */
const UNIT_SECONDS: Record<string, number> = { ns: 1e-9, us: 1e-6, µs: 1e-6, ms: 1e-3, s: 1, m: 60, h: 3600 };
const GO_DURATION = /^(?:\d{1,9}(?:\.\d{1,9})?(?:ns|us|µs|ms|s|m|h))+$/;
const GO_DURATION_PART = /(\d{1,9}(?:\.\d{1,9})?)(ns|us|µs|ms|s|m|h)/g;

/** Whole seconds from 1 to a day, given as a Go duration ("10s", "1h3m") or a number of seconds. */
function durationSeconds(r: Reader, value: unknown, at: string): number | null {
  const problem = `must be whole seconds from 1 to ${MAX_DURATION_SECONDS}, as a number or a Go duration like "10s" or "1h3m"${got(value)}`;
  let seconds: number;
  if (typeof value === 'number') seconds = value;
  else if (typeof value === 'string' && /^\d{1,9}$/.test(value)) seconds = Number(value); // `${VAR}` in YAML
  else if (typeof value === 'string' && value.length <= 40 && GO_DURATION.test(value)) {
    seconds = 0;
    for (const [, amount, unit] of value.matchAll(GO_DURATION_PART)) seconds += Number(amount) * UNIT_SECONDS[unit!]!;
    // Units below a second add up with float error ("1500ms" is 1.5000000000000002 s otherwise).
    seconds = Math.round(seconds * 1e6) / 1e6;
  } else {
    r.bad(at, problem);
    return null;
  }
  if (Number.isInteger(seconds) && seconds >= 1 && seconds <= MAX_DURATION_SECONDS) return seconds;
  r.bad(at, problem);
  return null;
}

/** A filter with neither part (or only empty parts) matches everything: stored as none. */
function emptyToNull(f: SubscriptionFilter): SubscriptionFilter | null {
  const parts = [f.body, f.headers].filter((p) => p && Object.keys(p).length > 0);
  return parts.length === 0 ? null : f;
}

/** Checks a subscription given as JSON (API). */
export function parseSubscription(value: unknown): { subscription: SubscriptionDefinition | null; issues: SettingIssue[] } {
  const r = new Reader();
  const subscription = readSubscription(r, value, 'subscription');
  return { subscription: r.issues.length === 0 ? subscription : null, issues: r.issues };
}
