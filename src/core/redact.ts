/**
 * Secrets inside a settings block, named by dotted keys: hidden in API answers, and kept when a
 * client sends the hidden value back unchanged.
 */
type Mapping = Record<string, unknown>;

/** What a secret looks like in an API answer; sending it back unchanged keeps the stored value. */
export const REDACTED = '********';

/** The mapping that holds the last segment of a dotted `key`, and that segment; null where absent. */
function holder(root: unknown, key: string): { node: Mapping; last: string } | null {
  const path = key.split('.');
  const last = path.pop()!;
  let node = root;
  for (const p of path) node = node && typeof node === 'object' ? (node as Mapping)[p] : undefined;
  return node && typeof node === 'object' && !Array.isArray(node) ? { node: node as Mapping, last } : null;
}

/** A copy of `value` with every present secret replaced by REDACTED. */
export function redactKeys<T>(value: T, keys: readonly string[]): T {
  const out = structuredClone(value);
  for (const key of keys) {
    const at = holder(out, key);
    if (at && at.node[at.last] !== undefined && at.node[at.last] !== null) at.node[at.last] = REDACTED;
  }
  return out;
}

/** A copy of `next` where every secret given as REDACTED takes the stored value again. */
export function restoreRedacted(next: unknown, stored: unknown, keys: readonly string[]): unknown {
  if (!next || typeof next !== 'object' || Array.isArray(next)) return next;
  const out = structuredClone(next) as Mapping;
  for (const key of keys) {
    const to = holder(out, key);
    if (to && to.node[to.last] === REDACTED) to.node[to.last] = holder(stored, key)?.node[to.last];
  }
  return out;
}
