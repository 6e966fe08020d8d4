/**
 * One error base for Wharf. `code` is stable and never reused (callers and tests branch on it),
 * `retryable` tells a caller whether the same call may succeed later, `status` is the HTTP answer
 * the API gives for it. User-facing messages say what was wrong and where.
 */
export interface WharfErrorOptions {
  retryable?: boolean;
  status?: number;
  /** The JSON field or config key that was wrong. */
  field?: string;
  cause?: unknown;
}

export class WharfError extends Error {
  readonly code: string;
  readonly retryable: boolean;
  readonly status: number;
  readonly field: string | undefined;

  constructor(code: string, message: string, options: WharfErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'WharfError';
    this.code = code;
    this.retryable = options.retryable ?? false;
    this.status = options.status ?? 500;
    this.field = options.field;
  }
}

/** A config file that cannot be used: names the file, the key and what was expected. */
export class ConfigError extends WharfError {
  readonly file: string | undefined;
  constructor(message: string, options: { file?: string; key?: string; cause?: unknown } = {}) {
    super('WHARF_ERR_CONFIG', message, { field: options.key, cause: options.cause });
    this.name = 'ConfigError';
    this.file = options.file;
  }
}

export const invalid = (field: string, message: string): WharfError =>
  new WharfError('WHARF_ERR_INVALID', `${field}: ${message}`, { status: 400, field });

export const notFound = (what: string, id: string): WharfError =>
  new WharfError('WHARF_ERR_NOT_FOUND', `${what} ${JSON.stringify(id)} not found`, { status: 404 });

export const conflict = (message: string, field?: string): WharfError =>
  new WharfError('WHARF_ERR_CONFLICT', message, { status: 409, field });

export const unauthorized = (message = 'missing or invalid API key'): WharfError =>
  new WharfError('WHARF_ERR_UNAUTHORIZED', message, { status: 401 });

/** Seconds a client is told (`Retry-After`) to wait when the database cannot be reached. */
export const UNAVAILABLE_RETRY_AFTER_SECONDS = 5;

/**
 * Whether an error means the database cannot be reached right now (not that the request was
 * wrong): a refused or dropped connection, a server shutting down or starting (SQLSTATE class 08,
 * 57P01-57P03), or a pool that could not hand out a connection. Such a request is answered 503
 * with Retry-After, and a broker batch is left for redelivery.
 */
export function isDatabaseUnavailable(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    const { code, message } = e as { code?: unknown; message?: unknown };
    if (typeof code === 'string' && (/^08/.test(code) || /^57P0[123]$/.test(code))) return true;
    if (code === 'ECONNREFUSED' || code === 'ECONNRESET' || code === 'EPIPE' || code === 'ETIMEDOUT' || code === 'ENOTFOUND' || code === 'EAI_AGAIN') return true;
    if (typeof message === 'string' && /Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error|Connection ended unexpectedly/i.test(message)) return true;
  }
  return false;
}
