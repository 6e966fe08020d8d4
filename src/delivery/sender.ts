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

/**
 * The result of an attempt that got no answer, after `latencyMs`; 0 for one that failed before any
 * request went out (no token, an internal error).
 */
export function unanswered(error: string, errorCode: string, latencyMs = 0): SendResult {
  return { ok: false, statusCode: null, latencyMs, responseHeaders: {}, responseBody: '', error, errorCode, retryAfterSeconds: null };
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
    send(req) {
      return new Promise<SendResult>((resolve) => {
        const exchange = new Exchange(resolve, req.timeoutMs, maxResponseBytes);
        let url: URL;
        try {
          url = new URL(req.url);
        } catch (err) {
          exchange.failed(err);
          return;
        }
        try {
          (req.dispatcher ?? dispatcher).dispatch(
            {
              origin: url.origin,
              path: url.pathname + url.search,
              method: 'POST',
              headers: req.headers,
              body: req.body,
              // The exchange's own timer bounds the whole exchange; these only stop undici's own
              // longer defaults.
              headersTimeout: req.timeoutMs,
              bodyTimeout: req.timeoutMs,
            },
            exchange,
          );
        } catch (err) {
          exchange.failed(err);
        }
      });
    },
  };
}

/**
 * One request's life, as undici's dispatch handler: the status and headers, the start of the body
 * (at most `maxBytes`), a timer over the whole exchange, queueing for a connection included, and
 * one answer, the first. Driving undici's handler interface directly, rather than `request()`,
 * spares each attempt a body stream, its async iterator and an `AbortSignal` with its listener:
 * a quarter to a third of the CPU a request takes here (`bench/sender.ts`).
 */
class Exchange implements Dispatcher.DispatchHandler {
  private readonly started = performance.now();
  private readonly timer: NodeJS.Timeout;
  private controller: Dispatcher.DispatchController | null = null;
  private settled = false;
  private statusCode = 0;
  private headers: Record<string, string> = {};
  private readonly chunks: Buffer[] = [];
  private size = 0;
  private readonly resolve: (result: SendResult) => void;
  private readonly timeoutMs: number;
  private readonly maxBytes: number;

  constructor(resolve: (result: SendResult) => void, timeoutMs: number, maxBytes: number) {
    this.resolve = resolve;
    this.timeoutMs = timeoutMs;
    this.maxBytes = maxBytes;
    this.timer = setTimeout(timedOut, timeoutMs, this);
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    // Answered while it waited for a connection (the timer fired): it is never sent.
    if (this.settled) controller.abort(new Error('the exchange was over before it started'));
  }

  // Called once for each 1xx (informational) answer too; the final answer's start comes last and
  // replaces what they set, and nothing is answered before the body's end (or its cap).
  onResponseStart(_c: Dispatcher.DispatchController, statusCode: number, headers: Record<string, string | string[] | undefined>): void {
    this.statusCode = statusCode;
    this.headers = flattenHeaders(headers);
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.settled) return;
    if (this.size < this.maxBytes) this.chunks.push(chunk.subarray(0, this.maxBytes - this.size));
    this.size += chunk.length;
    // Stop reading a huge body; the start is all an operator needs to see.
    if (this.size >= this.maxBytes) {
      this.answered();
      controller.abort(new Error('the response body is over the cap'));
    }
  }

  onResponseEnd(): void {
    this.answered();
  }

  onResponseError(_c: Dispatcher.DispatchController, err: Error): void {
    const code = (err as { cause?: { code?: string } }).cause?.code ?? (err as { code?: string }).code;
    // undici's own header/body timers are set to the same bound and may fire first.
    if (code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT') this.timedOut();
    else this.failed(err);
  }

  timedOut(): void {
    if (this.settled) return;
    this.finish(this.failure(`no complete answer within ${this.timeoutMs} ms`, 'WHARF_ERR_TIMEOUT'));
    this.controller?.abort(new Error('timed out'));
  }

  failed(err: unknown): void {
    const e = err as { code?: string; message?: string; cause?: { code?: string; message?: string } };
    this.finish(this.failure(e.cause?.message ?? e.message ?? String(err), e.cause?.code ?? e.code ?? 'WHARF_ERR_SEND'));
  }

  private answered(): void {
    const statusCode = this.statusCode;
    const ok = statusCode >= 200 && statusCode < 300;
    const body = this.chunks.length === 1 ? this.chunks[0] : Buffer.concat(this.chunks);
    this.finish({
      ok,
      statusCode,
      latencyMs: Math.round(performance.now() - this.started),
      responseHeaders: this.headers,
      responseBody: body.toString('utf8'),
      error: ok ? null : `endpoint answered ${statusCode}`,
      errorCode: null,
      retryAfterSeconds: parseRetryAfter(this.headers['retry-after']),
    });
  }

  private failure(error: string, errorCode: string): SendResult {
    return unanswered(error, errorCode, Math.round(performance.now() - this.started));
  }

  private finish(result: SendResult): void {
    if (this.settled) return;
    this.settled = true;
    clearTimeout(this.timer);
    this.resolve(result);
  }
}

function timedOut(exchange: Exchange): void {
  exchange.timedOut();
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
