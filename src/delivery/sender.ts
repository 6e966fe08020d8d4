import { request } from 'undici';
import type { Dispatcher } from 'undici';

/** One HTTP attempt, made once and classified; retry decisions belong to the dispatcher. */
export interface SendRequest {
  url: string;
  headers: Record<string, string>;
  body: Buffer;
  timeoutMs: number;
  /** The endpoint's own connection pool (TLS settings); the sender's shared one otherwise. */
  dispatcher?: Dispatcher;
}

export interface SendResult {
  ok: boolean;
  statusCode: number | null;
  latencyMs: number;
  responseHeaders: Record<string, string>;
  /** The start of the response body, at most `maxResponseBytes`. */
  responseBody: string;
  error: string | null;
  /** Stable code for a failure without a status: undici's UND_ERR_*, a system code, or WHARF_ERR_TIMEOUT. */
  errorCode: string | null;
  /** Seconds from a `Retry-After` header, when the receiver sent one. */
  retryAfterSeconds: number | null;
}

/** The result of an attempt that failed before any request went out (no token, an internal error). */
export function failedBeforeSending(error: string, errorCode: string): SendResult {
  return { ok: false, statusCode: null, latencyMs: 0, responseHeaders: {}, responseBody: '', error, errorCode, retryAfterSeconds: null };
}

export interface SenderOptions {
  dispatcher: Dispatcher;
  maxResponseBytes: number;
}

export interface Sender {
  send(req: SendRequest): Promise<SendResult>;
}

export function createSender(options: SenderOptions): Sender {
  const { dispatcher, maxResponseBytes } = options;
  return {
    async send(req) {
      const started = performance.now();
      const signal = AbortSignal.timeout(req.timeoutMs);
      try {
        const res = await request(req.url, {
          method: 'POST',
          headers: req.headers,
          body: req.body,
          dispatcher: req.dispatcher ?? dispatcher,
          signal,
          // The signal bounds the whole exchange; these only stop undici's own longer defaults.
          headersTimeout: req.timeoutMs,
          bodyTimeout: req.timeoutMs,
        });
        const responseBody = await readCapped(res.body, maxResponseBytes);
        const statusCode = res.statusCode;
        const responseHeaders = flattenHeaders(res.headers);
        return {
          ok: statusCode >= 200 && statusCode < 300,
          statusCode,
          latencyMs: Math.round(performance.now() - started),
          responseHeaders,
          responseBody,
          error: statusCode >= 200 && statusCode < 300 ? null : `endpoint answered ${statusCode}`,
          errorCode: null,
          retryAfterSeconds: parseRetryAfter(responseHeaders['retry-after']),
        };
      } catch (err) {
        const e = err as { code?: string; message?: string; cause?: { code?: string; message?: string } };
        // undici's own header/body timers are set to the same bound and may fire first.
        const undiciCode = e.cause?.code ?? e.code;
        const timedOut = signal.aborted || undiciCode === 'UND_ERR_HEADERS_TIMEOUT' || undiciCode === 'UND_ERR_BODY_TIMEOUT';
        const code = timedOut ? 'WHARF_ERR_TIMEOUT' : (e.cause?.code ?? e.code ?? 'WHARF_ERR_SEND');
        const message = timedOut
          ? `no complete answer within ${req.timeoutMs} ms`
          : (e.cause?.message ?? e.message ?? String(err));
        return {
          ok: false,
          statusCode: null,
          latencyMs: Math.round(performance.now() - started),
          responseHeaders: {},
          responseBody: '',
          error: message,
          errorCode: code,
          retryAfterSeconds: null,
        };
      }
    },
  };
}

/** The start of a response body, at most `max` bytes; the rest is not read. */
export async function readCapped(body: Dispatcher.ResponseData['body'], max: number): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    const buf = chunk as Buffer;
    if (size < max) chunks.push(buf.subarray(0, max - size));
    size += buf.length;
    // Stop reading a huge body; the start is all an operator needs to see.
    if (size >= max) {
      body.destroy();
      break;
    }
  }
  return Buffer.concat(chunks).toString('utf8');
}

function flattenHeaders(headers: Record<string, string | string[] | undefined>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(headers)) {
    if (v !== undefined) out[k] = Array.isArray(v) ? v.join(', ') : v;
  }
  return out;
}

/** `Retry-After` is either delay-seconds or an HTTP date (RFC 9110 §10.2.3). */
export function parseRetryAfter(value: string | undefined, now = Date.now()): number | null {
  if (!value) return null;
  const trimmed = value.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed);
  // Every HTTP-date form starts with a day name; Date.parse alone would take "-5" or "1.5" as years.
  if (!/^[A-Za-z]{3}/.test(trimmed)) return null;
  const at = Date.parse(trimmed);
  if (Number.isNaN(at)) return null;
  return Math.max(0, Math.ceil((at - now) / 1000));
}
