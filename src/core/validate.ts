import { WharfError, invalid } from './errors.ts';
import { MAX_CUSTOM_HEADERS_LENGTH, RESERVED_HEADERS, headerValueProblem } from './headers.ts';
import { TOKEN, type SettingIssue } from './settings.ts';

/** Small validators for JSON bodies; every failure names the field (400). */
export type Json = Record<string, unknown>;

export function object(value: unknown, field: string): Json {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw invalid(field, 'must be a JSON object');
  return value as Json;
}

export function onlyKeys(body: Json, allowed: readonly string[], prefix = ''): void {
  for (const key of Object.keys(body)) {
    if (!allowed.includes(key)) throw invalid(`${prefix}${key}`, `unknown field (allowed: ${allowed.join(', ')})`);
  }
}

export function string(body: Json, key: string, opts: { required?: boolean; max?: number; empty?: boolean } = {}): string | undefined {
  const v = body[key];
  if (v === undefined || v === null) {
    if (opts.required) throw invalid(key, 'is required');
    return undefined;
  }
  if (typeof v !== 'string') throw invalid(key, `must be a string (got ${typeName(v)})`);
  if (!opts.empty && v.trim() === '') throw invalid(key, 'must not be empty');
  if (opts.max !== undefined && v.length > opts.max) throw invalid(key, `must be at most ${opts.max} characters`);
  return v;
}

export function integer(body: Json, key: string, min: number, max: number): number | undefined {
  const v = body[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw invalid(key, `must be an integer from ${min} to ${max} (got ${JSON.stringify(v)})`);
  }
  return v;
}

export function boolean(body: Json, key: string): boolean | undefined {
  const v = body[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'boolean') throw invalid(key, `must be true or false (got ${typeName(v)})`);
  return v;
}

/**
 * Custom headers to forward: names must be HTTP tokens and may not replace what Wharf sets; values
 * must be sendable as they are (headerValueProblem), and all of them together fit in a request.
 */
export function headers(body: Json, key: string): Record<string, string> {
  const v = body[key];
  if (v === undefined || v === null) return {};
  const obj = object(v, key);
  const out: Record<string, string> = {};
  let length = 0;
  for (const [name, value] of Object.entries(obj)) {
    const field = `${key}.${name}`;
    if (!TOKEN.test(name)) throw invalid(field, 'is not a valid HTTP header name');
    if (RESERVED_HEADERS.has(name.toLowerCase()) || name.toLowerCase().startsWith('x-wharf-')) {
      throw invalid(field, 'is set by Wharf and cannot be overridden');
    }
    if (typeof value !== 'string') throw invalid(field, `must be a string (got ${typeName(value)})`);
    const problem = headerValueProblem(value);
    if (problem) throw invalid(field, problem);
    length += name.length + value.length;
    if (length > MAX_CUSTOM_HEADERS_LENGTH) throw invalid(key, `must be at most ${MAX_CUSTOM_HEADERS_LENGTH} characters in all, names and values`);
    out[name] = value;
  }
  return out;
}

function typeName(v: unknown): string {
  return v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v;
}

/**
 * A 400 for settings checked by a `Reader` (sources, subscriptions): the first wrong value named
 * (before any unknown key, which says less), with how many more there are.
 */
export function settingsError(found: SettingIssue[], root: string): WharfError {
  const issues = [...found.filter((i) => !i.unknown), ...found.filter((i) => i.unknown)];
  const strip = (path: string): string => path.replace(new RegExp(`^${root}\\.?`), '');
  const first = issues[0];
  if (!first) return invalid(root, 'is not valid');
  const field = strip(first.path);
  const message = first.unknown ? `${field}: unknown field` : `${field}: ${first.message}`;
  const rest = issues.length > 1 ? ` (and ${issues.length - 1} more: ${issues.slice(1).map((i) => strip(i.path)).join(', ')})` : '';
  return new WharfError('WHARF_ERR_INVALID', message + rest, { status: 400, field });
}
