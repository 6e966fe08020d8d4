/**
 * OAuth2 client-credentials tokens for endpoints that want `Authorization: Bearer …` (RFC 6749
 * §4.4), with the client authenticated by a shared secret or by a signed JWT assertion (RFC 7523
 * §2.2). A token is fetched once and shared by every delivery to the endpoint until shortly before
 * it expires; a burst of deliveries waiting for one shares a single request to the token endpoint.
 */
import { createHash, randomUUID } from 'node:crypto';
import { SignJWT, importJWK } from 'jose';
import type { JWK } from 'jose';
import { request } from 'undici';
import type { Dispatcher } from 'undici';
import { WharfError } from '../core/errors.ts';
import { USER_AGENT } from '../core/version.ts';
import { readCapped } from './sender.ts';
import type { EndpointAuth } from './auth.ts';

export type OAuth2Auth = Extract<EndpointAuth, { type: 'oauth2' }>;

export interface OAuth2TokenSource {
  /** A usable access token for `auth`; `cacheKey` names the endpoint whose deliveries share it. */
  token(auth: OAuth2Auth, cacheKey: string): Promise<string>;
  /** Forgets the tokens of one endpoint (e.g. after it answered 401), or of all. */
  clear(cacheKey?: string): void;
}

export interface OAuth2Options {
  /** Carries the token requests; give one built with the egress guard. Default: undici's global one. */
  dispatcher?: Dispatcher;
  /** Milliseconds since the epoch; tests move it to reach expiry. */
  now?: () => number;
  /** A token is replaced this long before it expires (at most half its lifetime). Default 60. */
  refreshBeforeSeconds?: number;
  /** Bound on one token request. Default 10000. */
  timeoutMs?: number;
}

const OAUTH2_ERROR = 'WHARF_ERR_OAUTH2';
const JWT_BEARER = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
const DEFAULT_LIFETIME_SECONDS = 3600;
const ASSERTION_LIFETIME_SECONDS = 300;
const MAX_ANSWER_BYTES = 64 * 1024;

interface Cached {
  token: string;
  refreshAt: number;
}

interface Fetched {
  token: string;
  expiresIn: number;
}

export function createOAuth2TokenSource(options: OAuth2Options = {}): OAuth2TokenSource {
  const now = options.now ?? Date.now;
  const refreshBefore = options.refreshBeforeSeconds ?? 60;
  const timeoutMs = options.timeoutMs ?? 10_000;
  const cache = new Map<string, Cached>();
  const inflight = new Map<string, Promise<string>>();

  const forget = (cacheKey: string): void => {
    const prefix = `${cacheKey}\u0000`;
    for (const key of cache.keys()) if (key.startsWith(prefix)) cache.delete(key);
    for (const key of inflight.keys()) if (key.startsWith(prefix)) inflight.delete(key);
  };

  return {
    token(auth, cacheKey) {
      // The settings' hash is part of the key, so a changed secret or URL never gets the old token.
      const key = `${cacheKey}\u0000${settingsHash(auth)}`;
      const hit = cache.get(key);
      if (hit && now() < hit.refreshAt) return Promise.resolve(hit.token);
      const pending = inflight.get(key);
      if (pending) return pending;

      const fetching: Promise<string> = fetchToken(auth, { dispatcher: options.dispatcher, now, timeoutMs })
        .then(({ token, expiresIn }) => {
          // clear() while this was in flight means the answer may be stale: hand it out, keep nothing.
          if (inflight.get(key) === fetching) {
            forget(cacheKey);
            const lead = Math.min(refreshBefore, expiresIn / 2);
            cache.set(key, { token, refreshAt: now() + (expiresIn - lead) * 1000 });
          }
          return token;
        })
        .finally(() => {
          if (inflight.get(key) === fetching) inflight.delete(key);
        });
      inflight.set(key, fetching);
      return fetching;
    },
    clear(cacheKey) {
      if (cacheKey === undefined) {
        cache.clear();
        inflight.clear();
      } else {
        forget(cacheKey);
      }
    },
  };
}

interface FetchContext {
  dispatcher: Dispatcher | undefined;
  now: () => number;
  timeoutMs: number;
}

async function fetchToken(auth: OAuth2Auth, ctx: FetchContext): Promise<Fetched> {
  const where = `token endpoint ${shownUrl(auth.url)}`;
  const form = new URLSearchParams({ grant_type: 'client_credentials', client_id: auth.client_id });
  if (auth.scope !== null) form.set('scope', auth.scope);
  if (auth.audience !== null) form.set('audience', auth.audience);
  const secrets: string[] = [];
  if (auth.authentication_type === 'shared_secret') {
    form.set('client_secret', auth.client_secret);
    secrets.push(auth.client_secret);
  } else {
    const assertion = await clientAssertion(auth, Math.floor(ctx.now() / 1000), where);
    form.set('client_assertion_type', JWT_BEARER);
    form.set('client_assertion', assertion);
    secrets.push(assertion);
  }
  // A token endpoint that echoes the request must not put our secret into an error message.
  const fail = (message: string, retryable: boolean, cause?: unknown): WharfError =>
    // Redacted before it is cut short, so a secret cannot survive in part at the cut.
    new WharfError(OAUTH2_ERROR, redact(message, secrets).slice(0, 500), { retryable, cause });

  const signal = AbortSignal.timeout(ctx.timeoutMs);
  let status: number;
  let text: string;
  try {
    const res = await request(auth.url, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        accept: 'application/json',
        'user-agent': USER_AGENT,
      },
      body: form.toString(),
      dispatcher: ctx.dispatcher,
      signal,
      headersTimeout: ctx.timeoutMs,
      bodyTimeout: ctx.timeoutMs,
    });
    status = res.statusCode;
    text = await readCapped(res.body, MAX_ANSWER_BYTES);
  } catch (err) {
    if (signal.aborted) throw fail(`${where} did not answer within ${ctx.timeoutMs / 1000} s`, true, err);
    const e = err as { code?: string; message?: string };
    throw fail(`${where} could not be reached: ${e.message ?? String(err)}${e.code ? ` (${e.code})` : ''}`, true, err);
  }
  return readAnswer(status, text, where, fail);
}

function readAnswer(
  status: number,
  text: string,
  where: string,
  fail: (message: string, retryable: boolean) => WharfError,
): Fetched {
  const body = parseJson(text);
  if (status < 200 || status > 299) {
    // RFC 6749 §5.2: `error` is a code such as invalid_client; the description is optional.
    const code = typeof body?.error === 'string' ? `: ${body.error}` : '';
    const description = typeof body?.error_description === 'string' ? ` (${body.error_description})` : '';
    throw fail(`${where} answered ${status}${code}${description}`, status >= 500 || status === 429);
  }
  if (body === null) throw fail(`${where} answered ${status} with a body that is not a JSON object`, false);
  const token = body.access_token;
  if (typeof token !== 'string' || token === '') throw fail(`${where} answered without access_token`, false);
  if (!/^[\x21-\x7e]+$/.test(token)) throw fail(`${where} answered an access_token that cannot be sent in a header`, false);
  const type = body.token_type;
  if (typeof type === 'string' && type.toLowerCase() !== 'bearer') {
    throw fail(`${where} answered token_type ${JSON.stringify(type.slice(0, 40))}; only Bearer tokens can be sent`, false);
  }
  return { token, expiresIn: lifetime(body.expires_in) };
}

/** RFC 7523 §3: iss and sub name the client, aud is the token endpoint, jti makes it single-use. */
async function clientAssertion(
  auth: Extract<OAuth2Auth, { authentication_type: 'client_assertion' }>,
  nowSeconds: number,
  where: string,
): Promise<string> {
  let key: Awaited<ReturnType<typeof importJWK>>;
  try {
    key = await importJWK(auth.signing_key as JWK, 'ES256');
  } catch (err) {
    throw new WharfError(OAUTH2_ERROR, `signing_key for ${where} is not a usable ES256 private key`, { cause: err });
  }
  const kid = typeof auth.signing_key.kid === 'string' ? { kid: auth.signing_key.kid } : {};
  return new SignJWT({})
    .setProtectedHeader({ alg: 'ES256', typ: 'JWT', ...kid })
    .setIssuer(auth.issuer)
    .setSubject(auth.subject)
    .setAudience(auth.url)
    .setJti(randomUUID())
    .setIssuedAt(nowSeconds)
    .setExpirationTime(nowSeconds + ASSERTION_LIFETIME_SECONDS)
    .sign(key);
}

/** `expires_in` in seconds (a number or numeric text); an hour when absent or unreadable. */
function lifetime(value: unknown): number {
  const n = typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : value;
  return typeof n === 'number' && Number.isFinite(n) && n >= 0 ? n : DEFAULT_LIFETIME_SECONDS;
}

function settingsHash(auth: OAuth2Auth): string {
  return createHash('sha256').update(stableJson(auth)).digest('base64url');
}

/** JSON with keys sorted at every level, so equal settings hash equally whatever their order. */
function stableJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    typeof v === 'object' && v !== null && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : v,
  );
}

/** The URL without its query, which may carry credentials of its own. */
function shownUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.origin}${u.pathname}`;
  } catch {
    return 'URL';
  }
}

function redact(message: string, secrets: string[]): string {
  // Control characters from the answer would break a log line.
  let out = [...message].map((ch) => (ch < ' ' || ch === '\x7f' ? ' ' : ch)).join('');
  // A token server that echoes the form sends the secret back URL-encoded.
  const forms = secrets.filter((s) => s !== '').flatMap((s) => [s, encodeURIComponent(s), new URLSearchParams({ s }).toString().slice(2)]);
  for (const s of new Set(forms)) out = out.split(s).join('[redacted]');
  return out;
}

function parseJson(text: string): Record<string, unknown> | null {
  try {
    const v: unknown = JSON.parse(text);
    return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

