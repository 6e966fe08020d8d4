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
 *   1.6 KB order written inside a text[] literal cost 27 µs of Wharf's CPU a webhook.
 *
 * - the other text arrays (project ids, event types, statuses) are quoted here, each element once,
 *   and the literal joined flat; an element with no quote or backslash in it (nearly all) is
 *   wrapped as it is, with no regex pass.
 */
import { UUID_RE } from '../core/ids.ts';

/** `what` names one element, article included ("a uuid"). */
function literal<T>(values: readonly (T | null | undefined)[], ok: (v: T) => boolean, what: string): string {
  let nulls = false;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (v === null || v === undefined) nulls = true;
    else if (!ok(v)) throw new TypeError(`array parameter: element ${i} is not ${what} (${typeof v})`);
  }
  // One join: the literal is written flat, not element by element.
  return `{${(nulls ? values.map((v) => v ?? 'NULL') : values).join(',')}}`;
}

const isUuid = (v: string): boolean => typeof v === 'string' && UUID_RE.test(v);

/** A uuid[] parameter's literal; throws on an element that is not a uuid. */
export const uuidArray = (ids: readonly (string | null | undefined)[]): string => literal(ids, isUuid, 'a uuid');

/** An int[] parameter's literal; throws on an element that is not a safe integer. */
export const intArray = (values: readonly (number | null | undefined)[]): string => literal(values, Number.isSafeInteger, 'an integer');

/** A float8[] parameter's literal; throws on an element that is not a finite number. */
export const floatArray = (values: readonly (number | null | undefined)[]): string => literal(values, Number.isFinite, 'a finite number');

/**
 * A timestamptz[] parameter's literal, each time in UTC as toISOString writes it (node-postgres
 * writes a Date in the local zone, field by field); throws on an invalid Date.
 */
export function timestampArray(values: readonly (Date | null | undefined)[]): string {
  const parts: string[] = new Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (v === null || v === undefined) parts[i] = 'NULL';
    else if (v instanceof Date && Number.isFinite(v.getTime())) parts[i] = v.toISOString();
    else throw new TypeError(`array parameter: element ${i} is not a valid Date (${typeof v})`);
  }
  return `{${parts.join(',')}}`;
}

/** One element of a text[] literal: always quoted, so `NULL`, braces, commas and spaces stay text. */
function quoted(v: string): string {
  if (v.indexOf('"') === -1 && v.indexOf('\\') === -1) return `"${v}"`;
  return `"${v.replaceAll('\\', '\\\\').replaceAll('"', '\\"')}"`;
}

/**
 * A text[] parameter's literal (null: NULL), with the quoting node-postgres would give it; throws
 * on an element that is not a string. A NUL in an element reaches Postgres as it did through
 * node-postgres, which refuses it (text holds none): the API's NUL guard (nul-guard.ts) and
 * ingest's printable checks keep a tenant's out before this.
 */
export function textArray(values: readonly (string | null | undefined)[]): string {
  const parts: string[] = new Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (v === null || v === undefined) parts[i] = 'NULL';
    else if (typeof v === 'string') parts[i] = quoted(v);
    else throw new TypeError(`array parameter: element ${i} is not a string (${typeof v})`);
  }
  return `{${parts.join(',')}}`;
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
