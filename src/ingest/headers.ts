/**
 * Headers as Wharf keeps them with an event and shows them to subscription filters: one string per
 * lower-cased name.
 */

/** What a header map may hold: Node's request headers, broker attributes, a JSON sample. */
export type HeaderInput = Readonly<Record<string, string | readonly string[] | number | undefined>>;

/**
 * Names lower-cased, a repeated header's values joined with ", " (as HTTP combines them), and NUL
 * replaced by U+FFFD in names and values (Postgres text and jsonb cannot hold it). Absent values are
 * left out; when two names differ only in case, the later one wins.
 */
export function cleanHeaders(headers: HeaderInput): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined) continue;
    const text = typeof value === 'string' ? value : Array.isArray(value) ? value.join(', ') : String(value);
    out[noNul(name.toLowerCase())] = noNul(text);
  }
  return out;
}

/** `text` with NUL replaced by U+FFFD, for what is kept for inspection in text or jsonb columns. */
export const noNul = (text: string): string => text.replaceAll('\0', '\uFFFD');
