/** Reading the delivery list's filters, and hiding what a page must not show of the headers sent. */
import { WharfError } from '../core/errors.ts';
import { filterText } from '../core/filter-params.ts';
import { DELIVERY_STATUSES, type DeliveryStatus } from '../core/types.ts';
import { UUID_RE } from '../core/ids.ts';
import { REDACTED } from '../core/redact.ts';
import type { FilterValues } from './delivery-pages.ts';
import type { DeliveryFilter } from './scope.ts';

/** `2026-01-31T09:00` (a datetime-local field, taken as UTC), with seconds, or ISO 8601 with a zone. */
const LOCAL_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,3})?)?$/;
const ZONED_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})$/i;

/**
 * A time as above, or null when it is not one (also for a day that does not exist). With
 * `zoned`, the time zone is required, so the same text means the same instant everywhere.
 */
export function parseTime(value: string, options: { zoned?: boolean } = {}): Date | null {
  const local = !options.zoned && LOCAL_TIME.test(value);
  if (!local && !ZONED_TIME.test(value)) return null;
  // Date rolls 2026-02-30 over into March; a day that does not exist is refused instead.
  const day = value.slice(0, 10);
  const midnight = new Date(`${day}T00:00:00Z`);
  if (Number.isNaN(midnight.getTime()) || midnight.toISOString().slice(0, 10) !== day) return null;
  const d = new Date(local ? `${value}Z` : value);
  return Number.isNaN(d.getTime()) ? null : d;
}

export const DEFAULT_PER_PAGE = 25;
const MAX_PER_PAGE = 100;

export interface ParsedFilters {
  values: FilterValues;
  filter: DeliveryFilter;
  /** What was wrong, naming the field, or null. */
  error: string | null;
}

/**
 * The list's query string as a filter. A wrong value is a message for the page, never a 500;
 * an endpoint outside the link's scope is refused like an unknown one.
 */
export function parseDeliveryFilters(q: Record<string, unknown>, inScope: (endpointId: string) => boolean): ParsedFilters {
  // Read as the API reads its filters: a parameter given twice is refused, never half-used.
  let unreadable: string | null = null;
  const text = (key: string): string => {
    try {
      return filterText(q, key)?.trim() ?? '';
    } catch (err) {
      if (!(err instanceof WharfError)) throw err;
      unreadable ??= err.message;
      return '';
    }
  };
  const values: FilterValues = {
    status: text('status'),
    endpoint_id: text('endpoint_id'),
    event_type: text('event_type'),
    from: text('from'),
    to: text('to'),
    per_page: text('per_page'),
  };
  const before = text('before');
  const filter: DeliveryFilter = { statuses: [], endpointId: null, eventType: null, from: null, to: null, before: null, perPage: DEFAULT_PER_PAGE };
  const fail = (error: string): ParsedFilters => ({ values, filter, error });
  if (unreadable !== null) return fail(unreadable);

  if (values.status !== '') {
    const list = values.status.split(',').map((s) => s.trim());
    const bad = list.find((s) => !DELIVERY_STATUSES.includes(s as DeliveryStatus));
    if (bad !== undefined) return fail(`status: must be one of ${DELIVERY_STATUSES.join(', ')} (got ${JSON.stringify(bad.slice(0, 40))})`);
    filter.statuses = list as DeliveryStatus[];
  }
  if (values.endpoint_id !== '') {
    if (values.endpoint_id.length > 200 || !inScope(values.endpoint_id)) return fail('endpoint_id: no such endpoint among yours');
    filter.endpointId = values.endpoint_id;
  }
  if (values.event_type !== '') {
    if (values.event_type.length > 200) return fail('event_type: must be at most 200 characters');
    filter.eventType = values.event_type;
  }
  for (const key of ['from', 'to'] as const) {
    if (values[key] === '') continue;
    const at = parseTime(values[key]);
    if (at === null) return fail(`${key}: must be a date and time such as 2026-01-31T09:00 (UTC)`);
    filter[key] = at;
  }
  if (filter.from && filter.to && filter.from >= filter.to) return fail('to: must be after from');
  if (values.per_page !== '') {
    const n = Number(values.per_page);
    if (!/^\d{1,3}$/.test(values.per_page) || n < 1 || n > MAX_PER_PAGE) return fail(`per_page: must be a whole number from 1 to ${MAX_PER_PAGE}`);
    filter.perPage = n;
  }
  if (before !== '') {
    if (!UUID_RE.test(before)) return fail('before: is not a page of this list; start again from the first page');
    filter.before = before;
  }
  return { values, filter, error: null };
}

/** Header names whose values are credentials or signatures, whatever the endpoint calls them. */
const SENSITIVE = /signature|authorization|cookie|secret|token|password|api[-_]?key/i;

/**
 * The headers of a sent request as the portal shows them: signatures (the project's header,
 * X-Convoy-Signature, webhook-signature) and credentials hidden. The worker already records
 * authentication headers as ********.
 */
export function redactRequestHeaders(headers: Record<string, string>, signatureHeader: string): Record<string, string> {
  const own = signatureHeader.toLowerCase();
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) out[name] = SENSITIVE.test(name) || name.toLowerCase() === own ? REDACTED : value;
  return out;
}
