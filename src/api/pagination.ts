import { invalid } from '../core/errors.ts';

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
