/**
 * A subscription as YAML (`projects[].subscriptions[]`) and the API give it, in Convoy's shape:
 * `{ name, endpoint_id, source_id?, filter_config: { event_types, filter: { body, headers } } }`.
 */
import { Reader, absent, got, type SettingIssue } from '../core/settings.ts';
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
  // Convoy's per-subscription alert and retry settings (convoy-go sends them, null when unset):
  // checked, and not used. Wharf alerts per endpoint (breaker.alert_after) and retries per
  // project (retry); the README lists them among the Convoy fields Wharf ignores.
  if (!absent(s.alert_config)) {
    const a = r.fields(s.alert_config, `${at}.alert_config`, ['count', 'threshold']);
    if (a && !absent(a.count)) r.integer(a.count, `${at}.alert_config.count`, 0, 1_000_000, 0);
  }
  if (!absent(s.retry_config)) {
    const rc = r.fields(s.retry_config, `${at}.retry_config`, ['type', 'duration', 'retry_count']);
    if (rc && !absent(rc.type)) r.choice(rc.type, `${at}.retry_config.type`, ['linear', 'exponential'], 'linear');
    if (rc && !absent(rc.retry_count)) r.integer(rc.retry_count, `${at}.retry_config.retry_count`, 0, 50, 0);
  }
  return { id, name, endpoint_id: endpointId, source_id: sourceId, event_types: eventTypes, filter };
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
