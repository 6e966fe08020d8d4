/**
 * Array parameters of the hot statements (ingest's insert, the recorder's update and insert),
 * written the cheap way (issue 15). node-postgres writes a JS array as an array literal, every
 * element through two regex replaces and a quoting (pg's `escapeElement`), numbers and uuids
 * included, and Postgres unescapes them again: about 9 µs of Wharf's CPU a webhook and a sixth of
 * everything it allocated in the REST bench (a sampled heap profile). Here:
 *
 * - ids and numbers that Wharf made itself become the literal directly (`{1,2,NULL}`): nothing in
 *   them needs escaping, and each is checked for its shape, so no text can end up in a literal
 *   unescaped;
 * - texts full of quotes (JSON headers, bodies) go as one binary bytea of their UTF-8 bytes with
 *   where each starts and how long it is, cut by `substring` and `convert_from` in SQL: no
 *   escaping either way. The events' data went first (the late-morning stop of 2026-12-05): a
 *   1.6 KB order written inside a text[] literal cost 27 µs of Wharf's CPU a webhook;
 * - the other text arrays (project ids, event types, statuses) are quoted here, each element once,
 *   and the literal joined flat; an element with no quote or backslash in it (nearly all) is
 *   wrapped as it is, with no regex pass.
 */
import { UUID_RE } from '../core/ids.ts';

/**
 * An array parameter's literal: NULL for null, otherwise what `element` writes of the value, or a
 * TypeError naming the element when it gives undefined (`what` names one, article included: "a uuid").
 */
function literal<T>(values: readonly (T | null | undefined)[], element: (v: T) => string | undefined, what: string): string {
  const parts: string[] = new Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    const part = v === null || v === undefined ? 'NULL' : element(v);
    if (part === undefined) throw new TypeError(`array parameter: element ${i} is not ${what} (${typeof v})`);
    parts[i] = part;
  }
  // One join: the literal is written flat, not element by element.
  return `{${parts.join(',')}}`;
}

/** A uuid[] parameter's literal; throws on an element that is not a uuid. */
export const uuidArray = (ids: readonly (string | null | undefined)[]): string =>
  literal(ids, (v) => (typeof v === 'string' && UUID_RE.test(v) ? v : undefined), 'a uuid');

/** An int[] parameter's literal; throws on an element that is not a safe integer. */
export const intArray = (values: readonly (number | null | undefined)[]): string =>
  literal(values, (v) => (Number.isSafeInteger(v) ? String(v) : undefined), 'an integer');

/** A float8[] parameter's literal; throws on an element that is not a finite number. */
export const floatArray = (values: readonly (number | null | undefined)[]): string =>
  literal(values, (v) => (Number.isFinite(v) ? String(v) : undefined), 'a finite number');

/**
 * A timestamptz[] parameter's literal, each time in UTC as toISOString writes it (node-postgres
 * writes a Date in the local zone, field by field); throws on an invalid Date.
 */
export const timestampArray = (values: readonly (Date | null | undefined)[]): string =>
  literal(values, (v) => (v instanceof Date && Number.isFinite(v.getTime()) ? v.toISOString() : undefined), 'a valid Date');

/**
 * A text[] parameter's literal, with the quoting node-postgres would give it; throws on an element
 * that is not a string. Every element is quoted, so `NULL`, braces, commas and spaces stay text;
 * one with no quote or backslash in it (nearly all) is wrapped as it is, with no regex pass. A NUL
 * in an element reaches Postgres as it did through node-postgres, which refuses it (text holds
 * none): the API's NUL guard (nul-guard.ts) and ingest's printable checks keep a tenant's out
 * before this.
 */
export const textArray = (values: readonly (string | null | undefined)[]): string =>
  literal(values, (v) => (typeof v === 'string' ? quoted(v) : undefined), 'a string');

function quoted(v: string): string {
  if (v.indexOf('"') === -1 && v.indexOf('\\') === -1) return `"${v}"`;
  return `"${v.replaceAll('\\', '\\\\').replaceAll('"', '\\"')}"`;
}

/** Texts as one buffer: where each starts (from 1, as `substring` counts) and how many bytes it takes (intArray them). */
export interface PackedTexts {
  bytes: Buffer;
  starts: (number | null)[];
  lengths: (number | null)[];
}

/**
 * Texts (null: NULL) as one buffer of their UTF-8 bytes, for
 * `convert_from(substring($bytes FROM u.at FOR u.len), 'UTF8')`; a NULL start gives NULL. Every
 * text must be valid UTF-16 (JSON.stringify's output, or bytes decoded as UTF-8), so its bytes
 * decode back to the same text, and hold no NUL, which convert_from refuses.
 */
export function packTexts(texts: readonly (string | null)[]): PackedTexts {
  let total = 0;
  const lengths: (number | null)[] = new Array(texts.length);
  for (let i = 0; i < texts.length; i++) {
    const t = texts[i];
    lengths[i] = t === null || t === undefined ? null : Buffer.byteLength(t, 'utf8');
    total += lengths[i] ?? 0;
  }
  const bytes = Buffer.allocUnsafe(total);
  const starts: (number | null)[] = new Array(texts.length);
  let at = 0;
  for (let i = 0; i < texts.length; i++) {
    const t = texts[i];
    if (t === null || t === undefined) {
      starts[i] = null;
      continue;
    }
    starts[i] = at + 1;
    at += bytes.write(t, at, 'utf8');
  }
  return { bytes, starts, lengths };
}
