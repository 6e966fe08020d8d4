/**
 * `application/x-www-form-urlencoded` bodies for endpoints that want a form instead of JSON.
 *
 * Convention (the Rails / `qs` one, which PHP, Rails, Express and Laravel all decode):
 * - nested objects use brackets: `{a: {b: 1}}` → `a[b]=1`;
 * - arrays use indices: `{a: ['x', 'y']}` → `a[0]=x&a[1]=y` (indices keep arrays of objects
 *   unambiguous, which `a[]=` cannot);
 * - null → an empty value (`a=`); booleans and numbers → their JSON text (`true`, `1.5`);
 * - an empty object or array keeps its key with an empty value (`a=`) rather than vanishing;
 * - a top-level value that is not an object (array, string, number, boolean, null) is sent under
 *   the key `data` (`data=text`, `data[0]=x`), so every event can be delivered and nothing is lost;
 * - keys keep the object's own order (JavaScript's: integer-like keys first, then insertion order),
 *   so the same data always gives the same bytes and the same signature;
 * - escaping is the WHATWG urlencoded serializer's (URLSearchParams): space → `+`, brackets and
 *   everything outside `*-._` and alphanumerics percent-encoded as UTF-8.
 */
export function formEncode(data: unknown): string {
  const pairs: [string, string][] = [];
  if (isRecord(data)) {
    for (const [key, value] of Object.entries(data)) collect(pairs, key, value);
  } else {
    collect(pairs, 'data', data);
  }
  return new URLSearchParams(pairs).toString();
}

function collect(pairs: [string, string][], key: string, value: unknown): void {
  if (value === undefined) return;
  const children: [string, unknown][] | null = Array.isArray(value)
    ? value.map((v, i) => [String(i), v])
    : isRecord(value)
      ? Object.entries(value)
      : null;
  if (children === null) {
    pairs.push([key, scalar(value)]);
  } else if (children.length === 0) {
    pairs.push([key, '']);
  } else {
    for (const [child, v] of children) collect(pairs, `${key}[${child}]`, v);
  }
}

function scalar(value: unknown): string {
  if (value === null) return '';
  if (typeof value === 'string') return value;
  return String(value);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
