/**
 * Reading the filters of a list or a bulk operation (query parameters, or a JSON body for batch
 * retry and replay), strictly: a filter that cannot be read is a 400 naming it, never a filter
 * left out. A number, an object (`{"$ne": 1}`), null, an empty list or a key the operation does
 * not know would otherwise each mean "every row", and a batch retry then retries everything.
 * Absent and "" (Convoy's clients send "" for unset) are the only ways to say "any".
 */
import { invalid } from './errors.ts';

const kind = (v: unknown): string => (v === null ? 'null' : Array.isArray(v) ? 'a list' : typeof v);

/** A filter's text: null when absent or "", the string when it is one, a 400 for anything else. */
export function filterText(q: Record<string, unknown>, key: string): string | null {
  const v = q[key];
  if (v === undefined || v === '') return null;
  if (typeof v !== 'string') {
    throw invalid(key, `must be a string (got ${kind(v)}${Array.isArray(v) ? ': give it once' : v === null ? ': leave it out to match any' : ''})`);
  }
  return v;
}

/**
 * `key` given once or repeated (Convoy's `endpointId=a&endpointId=b`, a JSON list, or a comma
 * list): the values, or null when absent or "". Anything that is not text, and a list that names
 * nothing (`[]`, `","`), is a 400.
 */
export function filterList(q: Record<string, unknown>, key: string): string[] | null {
  const v = q[key];
  if (v === undefined || v === '') return null;
  const given = Array.isArray(v) ? v : [v];
  if (!given.every((x) => typeof x === 'string')) {
    throw invalid(key, `must be a string or a list of strings (got ${Array.isArray(v) ? `a list holding ${kind(given.find((x) => typeof x !== 'string'))}` : kind(v)})`);
  }
  const list = (given as string[]).flatMap((x) => x.split(',')).map((x) => x.trim()).filter(Boolean);
  if (list.length === 0) throw invalid(key, 'names nothing: give at least one value, or leave it out to match any');
  return list;
}

/** Keys an operation ignores (paging, for a bulk operation that takes a list's parameters). */
export const PAGING_PARAMS = ['per_page', 'page', 'sort', 'direction', 'next_page_cursor', 'prev_page_cursor'] as const;

/** A 400 for the first key that is neither a filter of the operation nor ignored by it. */
export function onlyFilters(q: Record<string, unknown>, filters: readonly string[], ignored: readonly string[] = PAGING_PARAMS): void {
  for (const key of Object.keys(q)) {
    if (!filters.includes(key) && !ignored.includes(key)) throw invalid(key, `is not a filter here (filters: ${filters.join(', ')})`);
  }
}
