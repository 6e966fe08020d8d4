/**
 * What every ingress (REST, HTTP ingest, broker messages, replayed dead letters) demands of an
 * event before it is stored, so nothing is accepted that could not be delivered or read back: an
 * event type that fits in a header, keys without control characters, and JSON nested no deeper
 * than `ingest.max_json_depth`. Checks are iterative: no tenant input drives a recursion.
 */
import { invalid } from '../core/errors.ts';

export interface IngestLimits {
  /** Deepest nesting of objects and arrays an event's data may have (config `ingest.max_json_depth`). */
  maxJsonDepth: number;
}

export const DEFAULT_MAX_JSON_DEPTH = 128;
/** The largest `ingest.max_json_depth` allowed: what every reader of stored events is sure to handle. */
export const MAX_JSON_DEPTH_LIMIT = 1000;
export const MAX_EVENT_TYPE_LENGTH = 200;

/**
 * Printable ASCII, 1-200 characters, no leading or trailing space: an event type goes out in a
 * header (`X-Wharf-Event-Type`, Convoy's `X-Convoy-Event-Type`) on every attempt, so a type that
 * could not be sent there is refused at the door instead of failing every delivery later.
 */
const EVENT_TYPE = /^[\x21-\x7e](?:[\x20-\x7e]{0,198}[\x21-\x7e])?$/;
/** C0 controls, DEL and C1 controls: never in a key or an id a person reads or a header carries. */
// eslint-disable-next-line no-control-regex -- finding control characters is the point
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

/** Why `value` cannot be an event type, or null. */
export function eventTypeProblem(value: string): string | null {
  if (EVENT_TYPE.test(value)) return null;
  if (value.length === 0 || value.trim() === '') return 'must not be empty';
  if (value.length > MAX_EVENT_TYPE_LENGTH) return `must be at most ${MAX_EVENT_TYPE_LENGTH} characters (got ${value.length})`;
  if (CONTROL.test(value)) return 'must not contain control characters (line breaks, NUL, tabs)';
  if (value !== value.trim()) return 'must not start or end with a space';
  return 'must be printable ASCII (letters, digits, punctuation such as "order.created"); other characters cannot be sent in the event type header';
}

/**
 * Why `pattern` cannot pick event types (a subscription's `event_types`), or null: `*`, an event
 * type, or an event type's prefix followed by `.*` (`order.*`); a star anywhere else is refused.
 */
export function eventTypePatternProblem(pattern: string): string | null {
  if (pattern === '*') return null;
  const exact = pattern.endsWith('.*') ? pattern.slice(0, -2) : pattern;
  if (exact.includes('*')) return 'may hold "*" only alone or as a final ".*" (as in "order.*")';
  return eventTypeProblem(exact);
}

/** Throws a 400 naming `field` when `value` is not a usable event type. */
export function checkEventType(value: string, field: string): string {
  const problem = eventTypeProblem(value);
  if (problem) throw invalid(field, problem);
  return value;
}

/** Throws a 400 naming `field` when a key or id holds control characters (NUL included). */
export function checkPrintable(value: string, field: string): string {
  if (CONTROL.test(value)) throw invalid(field, 'must not contain control characters (line breaks, NUL, tabs)');
  return value;
}

/** Whether a parsed JSON value nests objects and arrays deeper than `max` (a scalar is depth 0). */
export function deeperThan(value: unknown, max: number): boolean {
  const stack: [unknown, number][] = [[value, 0]];
  while (stack.length > 0) {
    const [v, depth] = stack.pop()!;
    if (typeof v !== 'object' || v === null) continue;
    if (depth + 1 > max) return true;
    for (const child of Array.isArray(v) ? v : Object.values(v)) {
      if (typeof child === 'object' && child !== null) stack.push([child, depth + 1]);
    }
  }
  return false;
}

/** The same for JSON text, without parsing it: brackets outside strings are counted. */
export function textDeeperThan(text: string, max: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++; // backslash: the next character is escaped
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x7b || c === 0x5b) {
      if (++depth > max) return true;
    } else if (c === 0x7d || c === 0x5d) depth--;
  }
  return false;
}

/** Throws a 400 naming `field` when data (parsed, or its JSON text) nests deeper than the limit. */
export function checkDepth(data: unknown, field: string, limits: IngestLimits, asText = false): void {
  const deep = asText ? textDeeperThan(data as string, limits.maxJsonDepth) : deeperThan(data, limits.maxJsonDepth);
  if (deep) throw invalid(field, `nests objects and arrays deeper than ${limits.maxJsonDepth} levels (ingest.max_json_depth)`);
}
