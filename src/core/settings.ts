/**
 * Reading a block of settings (YAML or JSON) one value at a time: every problem is recorded with its
 * key path and checking goes on, so one pass reports everything wrong. The config loader, the
 * connectors and the API share it, so a value is judged the same wherever it is given.
 */

/**
 * One thing wrong inside a setting. `path` continues the setting's key (`[0].endpoints[1].url` under
 * `projects`, '' for the setting itself); `unknown` marks a key the schema does not have.
 */
export interface SettingIssue {
  path: string;
  message: string;
  unknown?: boolean;
}

/** `(got …)` for an error message; callers never pass a secret. */
export function got(value: unknown): string {
  if (typeof value === 'string') return ` (got ${JSON.stringify(value.length > 80 ? `${value.slice(0, 77)}...` : value)})`;
  if (value === undefined) return ' (got nothing)';
  if (Array.isArray(value)) return ' (got a list)';
  if (typeof value === 'object' && value !== null) return ' (got a mapping)';
  return ` (got ${String(value)})`;
}

/** `(got a number)`: what kind of value, for settings whose value must not be shown. */
export function kind(value: unknown): string {
  if (Array.isArray(value)) return ' (got a list)';
  if (value === null || value === undefined) return ` (got ${value === null ? 'null' : 'nothing'})`;
  return ` (got a${typeof value === 'object' ? ' mapping' : ` ${typeof value}`})`;
}


export const ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
export const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const INTEGER = /^-?\d+$/;

export type Fields = Record<string, unknown>;

// A key with no value (YAML `key:` or `~`) means "use the default", as if it were left out.
export const absent = (v: unknown): v is null | undefined => v === undefined || v === null;

/** Reads one value at a time, recording what is wrong and returning a stand-in so checking goes on. */
export class Reader {
  readonly issues: SettingIssue[] = [];

  bad(path: string, message: string): void {
    this.issues.push({ path, message });
  }

  /** null (after recording why) when `value` is not a mapping, so nothing inside it is checked. */
  fields(value: unknown, path: string, keys: readonly string[]): Fields | null {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      this.bad(path, `must be a mapping${got(value)}`);
      return null;
    }
    for (const key of Object.keys(value)) {
      if (!keys.includes(key)) this.issues.push({ path: `${path}.${key}`, message: '', unknown: true });
    }
    return value as Fields;
  }

  list(value: unknown, path: string, what: string): unknown[] {
    if (absent(value)) return [];
    if (Array.isArray(value)) return value;
    this.bad(path, `must be a list of ${what}${got(value)}`);
    return [];
  }

  id(value: unknown, path: string): string {
    if (typeof value === 'string' && ID.test(value)) return value;
    this.bad(path, `${absent(value) ? 'is required and ' : ''}must be 1-64 letters, digits, "_", "." or "-", starting with a letter or digit${absent(value) ? '' : got(value)}`);
    return '';
  }

  /** `secret` values are never quoted back. */
  text(value: unknown, path: string, fallback: string, opts: { max: number; empty?: boolean; secret?: boolean }): string {
    if (absent(value)) return fallback;
    if (typeof value !== 'string') this.bad(path, `must be a string${opts.secret ? kind(value) : got(value)}`);
    else if (!opts.empty && value.trim() === '') this.bad(path, 'must not be empty');
    else if (value.length > opts.max) this.bad(path, `must be at most ${opts.max} characters (got ${value.length})`);
    else return value;
    return fallback;
  }

  /** '' counts as unset, so `${VAR:-}` can leave an optional value out. */
  optional(value: unknown, path: string, max: number, secret = false): string | null {
    if (value === '') return null;
    const text = this.text(value, path, '', { max, secret });
    return text === '' ? null : text;
  }

  integer(value: unknown, path: string, min: number, max: number, fallback: number): number {
    if (absent(value)) return fallback;
    const n = typeof value === 'string' && INTEGER.test(value) ? Number(value) : value;
    if (typeof n === 'number' && Number.isInteger(n) && n >= min && n <= max) return n;
    this.bad(path, `must be an integer from ${min} to ${max}${got(value)}`);
    return fallback;
  }

  boolean(value: unknown, path: string, fallback: boolean): boolean {
    if (absent(value)) return fallback;
    if (typeof value === 'boolean') return value;
    if (value === 'true' || value === 'false') return value === 'true';
    this.bad(path, `must be true or false${got(value)}`);
    return fallback;
  }

  choice<T extends string>(value: unknown, path: string, choices: readonly T[], fallback: T): T {
    if (absent(value)) return fallback;
    if (choices.includes(value as T)) return value as T;
    this.bad(path, `must be one of ${choices.join(', ')}${got(value)}`);
    return fallback;
  }

  /** An http(s) URL; `what` says what it is for when it is required and missing. */
  url(value: unknown, path: string, what: string | null = 'the http or https URL deliveries are sent to'): string {
    if (absent(value)) {
      if (what !== null) this.bad(path, `is required: ${what}`);
      return '';
    }
    const text = this.text(value, path, '', { max: 2048 });
    if (text === '') return '';
    let url: URL;
    try {
      url = new URL(text);
    } catch {
      this.bad(path, `must be an absolute http or https URL${got(text)}`);
      return '';
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') this.bad(path, `must be an http or https URL (got ${JSON.stringify(url.protocol)})`);
    // The API refuses these too; credentials would also sit unencrypted in the endpoints table.
    else if (url.username || url.password) this.bad(path, 'must not carry credentials');
    return text;
  }
}

