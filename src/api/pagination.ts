import { invalid } from '../core/errors.ts';
import { UUID_RE } from '../core/ids.ts';
import type { Queryable } from '../store/queryable.ts';

export interface PageRequest {
  perPage: number;
  cursor: string | undefined;
}

export interface Page<T> {
  content: T[];
  pagination: { per_page: number; has_next_page: boolean; next_page_cursor: string | null };
}

export function pageRequest(query: Record<string, unknown>): PageRequest {
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

/** Rows were fetched with limit perPage + 1: the extra one only says whether more exist. */
export function toPage<T>(rows: T[], perPage: number, cursorOf: (row: T) => string): Page<T> {
  const hasNext = rows.length > perPage;
  const content = hasNext ? rows.slice(0, perPage) : rows;
  return {
    content,
    pagination: {
      per_page: perPage,
      has_next_page: hasNext,
      next_page_cursor: hasNext ? cursorOf(content[content.length - 1]!) : null,
    },
  };
}

/** A filter on a column: equal to `value`, or, with `anyOf`, to any element of the array. */
export interface ColumnFilter {
  column: string;
  value: unknown;
  anyOf?: boolean;
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
    where.push(f.anyOf ? `${f.column} = ANY($${params.length})` : `${f.column} = $${params.length}`);
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

/**
 * A filter's text value: null when absent or "" (Convoy's clients send empty for unset), the
 * string when it is one, and a 400 naming the key for anything else (a number, an object, a
 * repeated parameter): a filter that cannot be read must never quietly widen to everything.
 */
export function filterText(q: Record<string, unknown>, key: string): string | null {
  const v = q[key];
  if (v === undefined || v === null || v === '') return null;
  if (typeof v !== 'string') {
    throw invalid(key, `must be a string (got ${Array.isArray(v) ? 'a list: give it once' : v === null ? 'null' : typeof v})`);
  }
  return v;
}

/** Filters for the query parameters named in `keys` that are present; see `filterText`. */
export function stringFilters(q: Record<string, unknown>, keys: readonly string[]): ColumnFilter[] {
  return keys.flatMap((k) => {
    const value = filterText(q, k);
    return value === null ? [] : [{ column: k, value }];
  });
}
