import { invalid } from '../core/errors.ts';
import { filterList, filterText } from '../core/filter-params.ts';
import { UUID_RE } from '../core/ids.ts';
import type { Queryable } from '../store/queryable.ts';

// The strict readers live in core/, where the portal's list reads them too.
export { filterList, filterText, onlyFilters } from '../core/filter-params.ts';

export interface PageRequest {
  perPage: number;
  cursor: string | undefined;
}

export interface Page<T> {
  content: T[];
  // Cursors are "" when there is no such page: Convoy's schema types them as strings, never null.
  pagination: { per_page: number; has_next_page: boolean; next_page_cursor: string; has_prev_page: boolean; prev_page_cursor: string };
}

export function pageRequest(query: Record<string, unknown>): PageRequest {
  // Newest first, forwards only; Convoy's backward paging and other orders are refused, not ignored.
  unsupported(query, ['prev_page_cursor'], 'is not supported: pages go forwards (newest first) with next_page_cursor');
  if (query.direction !== undefined && query.direction !== 'next') throw invalid('direction', 'must be "next": pages go forwards, newest first');
  if (query.sort !== undefined && !['DESC', 'desc'].includes(query.sort as string)) throw invalid('sort', 'must be DESC: lists are newest first');
  const raw = query.per_page ?? query.perPage;
  let perPage = 20;
  if (raw !== undefined) {
    perPage = Number(raw);
    if (!Number.isInteger(perPage) || perPage < 1 || perPage > 100) {
      throw invalid('per_page', 'must be an integer from 1 to 100');
    }
  }
  const cursor = query.next_page_cursor;
  if (cursor !== undefined && (typeof cursor !== 'string' || cursor.length > 200)) {
    throw invalid('next_page_cursor', 'must be a cursor from a previous page');
  }
  return { perPage, cursor: cursor || undefined };
}

/** The pagination object of a list that comes whole (one page). */
export function wholeList<T>(content: T[]): Page<T> {
  return { content, pagination: { per_page: content.length, has_next_page: false, next_page_cursor: '', has_prev_page: false, prev_page_cursor: '' } };
}

/** Rows were fetched with limit perPage + 1: the extra one only says whether more exist. */
export function toPage<T>(rows: T[], perPage: number, cursorOf: (row: T) => string): Page<T> {
  const hasNext = rows.length > perPage;
  const content = hasNext ? rows.slice(0, perPage) : rows;
  return {
    content,
    pagination: {
      per_page: perPage,
      has_next_page: hasNext,
      next_page_cursor: hasNext ? cursorOf(content[content.length - 1]!) : '',
      // Convoy's pagination object; pages go forwards only here.
      has_prev_page: false,
      prev_page_cursor: '',
    },
  };
}

/**
 * A filter on a column: equal to `value`, or, with `anyOf`, to any element of the array; with
 * `op`, compared (`>=`, `<=`: time ranges).
 */
export interface ColumnFilter {
  column: string;
  value: unknown;
  anyOf?: boolean;
  op?: '>=' | '<=';
}

/**
 * Convoy's list parameters, as openapi3.yaml names them and convoy-go sends them, to Wharf's
 * snake_case names (both are taken). convoy-go sends every parameter of its struct: "" for an
 * unset string, and Go's zero time (`0001-01-01T00:00:00`) for an unset date; both mean absent.
 */
const CONVOY_QUERY: Readonly<Record<string, string>> = {
  ownerId: 'owner_id',
  endpointId: 'endpoint_id',
  eventId: 'event_id',
  eventType: 'event_type',
  idempotencyKey: 'idempotency_key',
  sourceId: 'source_id',
  subscriptionId: 'subscription_id',
  perPage: 'per_page',
  startDate: 'start_date',
  endDate: 'end_date',
  query: 'q',
};
const GO_ZERO_TIME = /^0001-01-01(T00:00:00(\.0+)?(Z|[+-]00:00)?)?$/;

export function convoyQuery(query: unknown): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries((query ?? {}) as Record<string, unknown>)) {
    const name = CONVOY_QUERY[key] ?? key;
    // An empty JSON list names nothing: kept, so that the filter's reader refuses it.
    if (Array.isArray(value) && value.length === 0) {
      out[name] = value;
      continue;
    }
    const values = (Array.isArray(value) ? value : [value]).filter((v) => v !== '' && !(typeof v === 'string' && GO_ZERO_TIME.test(v)));
    if (values.length === 0) continue;
    const merged = [...(out[name] === undefined ? [] : Array.isArray(out[name]) ? (out[name] as unknown[]) : [out[name]]), ...values];
    out[name] = merged.length === 1 ? merged[0] : merged;
  }
  return out;
}

/** A time bound in Convoy's layout (`2006-01-02T15:04:05`, UTC) or ISO 8601; null when absent. */
export function filterTime(q: Record<string, unknown>, key: string): string | null {
  const v = filterText(q, key);
  if (v === null) return null;
  // Convoy's layout has no zone: it is UTC.
  const text = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?$/.test(v) ? `${v}Z` : v;
  const d = new Date(text);
  if (Number.isNaN(d.getTime())) throw invalid(key, `must be a time such as 2006-01-02T15:04:05 (UTC) or ISO 8601 (got ${JSON.stringify(v.slice(0, 40))})`);
  return d.toISOString();
}

/** Convoy parameters Wharf cannot honour: refused when given, never quietly ignored. */
export function unsupported(q: Record<string, unknown>, keys: readonly string[], why: string): void {
  for (const k of keys) if (q[k] !== undefined) throw invalid(k, why);
}

/** `created_at` between `start_date` and `end_date`, where given. */
export function timeRange(q: Record<string, unknown>): ColumnFilter[] {
  const from = filterTime(q, 'start_date');
  const to = filterTime(q, 'end_date');
  return [...(from ? [{ column: 'created_at', value: from, op: '>=' as const }] : []), ...(to ? [{ column: 'created_at', value: to, op: '<=' as const }] : [])];
}

/** Filters for columns that take one value or several (`anyOf`). */
export function listFilters(q: Record<string, unknown>, keys: readonly string[]): ColumnFilter[] {
  return keys.flatMap((k): ColumnFilter[] => {
    const values = filterList(q, k);
    if (values === null) return [];
    return values.length === 1 ? [{ column: k, value: values[0] }] : [{ column: k, value: values, anyOf: true }];
  });
}

/**
 * One page of a project's rows, newest first. Ids are UUIDv7 (time-ordered), so the last id of a
 * page is the cursor of the next. `table`, `columns` and filter columns come from code, never input.
 */
export async function pageByIdDesc<T extends { id: string }>(
  db: Queryable,
  query: { table: string; columns: string; projectId: string; filters: ColumnFilter[]; page: PageRequest },
): Promise<Page<T>> {
  const params: unknown[] = [query.projectId];
  const where = ['project_id = $1'];
  for (const f of query.filters) {
    params.push(f.value);
    where.push(f.anyOf ? `${f.column} = ANY($${params.length})` : `${f.column} ${f.op ?? '='} $${params.length}`);
  }
  if (query.page.cursor) {
    if (!UUID_RE.test(query.page.cursor)) throw invalid('next_page_cursor', 'must be a cursor from a previous page');
    params.push(query.page.cursor);
    where.push(`id < $${params.length}`);
  }
  params.push(query.page.perPage + 1);
  const { rows } = await db.query<T>(
    `SELECT ${query.columns} FROM ${query.table} WHERE ${where.join(' AND ')} ORDER BY id DESC LIMIT $${params.length}`,
    params,
  );
  return toPage(rows, query.page.perPage, (r) => r.id);
}

/** Filters for the query parameters named in `keys` that are present; see `filterText`. */
export function stringFilters(q: Record<string, unknown>, keys: readonly string[]): ColumnFilter[] {
  return keys.flatMap((k) => {
    const value = filterText(q, k);
    return value === null ? [] : [{ column: k, value }];
  });
}

/** A delivery's or meta event's status as Convoy spells it in answers (`Success`); stored lower-case. */
export const convoyStatus = (status: string): string => status.charAt(0).toUpperCase() + status.slice(1);

/**
 * `status` as a list (repeated or comma-separated), each of `allowed` in Convoy's spelling or
 * Wharf's stored one (`Success`, `success`, any case), or null when absent; 400 names the field.
 */
export function statusList<S extends string>(q: Record<string, unknown>, allowed: readonly S[]): S[] | null {
  const list = filterList(q, 'status');
  if (list === null) return null;
  return list.map((s) => {
    const status = s.toLowerCase() as S;
    if (!allowed.includes(status)) throw invalid('status', `must be one of ${allowed.map(convoyStatus).join(', ')} (got ${JSON.stringify(s.slice(0, 40))})`);
    return status;
  });
}
