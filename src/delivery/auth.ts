/**
 * Outbound authentication per endpoint, in Convoy's `authentication` shape: a static API key
 * header, HTTP Basic, or an OAuth2 bearer token from the receiver's token endpoint. Parsing is
 * synchronous and reports every problem with its path; secrets are never quoted back.
 */
import { createECDH } from 'node:crypto';
import type { JsonWebKey } from 'node:crypto';
import { TOKEN, absent, got, kind } from '../core/settings.ts';
import type { Fields, Reader } from '../core/settings.ts';
import type { OAuth2TokenSource } from './oauth2.ts';
import { RESERVED_HEADERS } from './request.ts';

/** What both OAuth2 client-credential modes send. */
interface OAuth2Common {
  type: 'oauth2';
  url: string;
  client_id: string;
  scope: string | null;
  audience: string | null;
}

export type EndpointAuth =
  | { type: 'api_key'; header_name: string; header_value: string }
  | { type: 'basic_auth'; username: string; password: string }
  | (OAuth2Common & { authentication_type: 'shared_secret'; client_secret: string })
  | (OAuth2Common & {
      authentication_type: 'client_assertion';
      /** EC P-256 private JWK, used to sign ES256 client assertions. */
      signing_key: JsonWebKey;
      issuer: string;
      subject: string;
    });

export interface AuthHeaders {
  /** The headers that authenticate one delivery; `cacheKey` names the endpoint (OAuth2 token cache). */
  headers(auth: EndpointAuth, cacheKey: string): Promise<Record<string, string>>;
  /** Drops an endpoint's cached token (the endpoint refused it), so the next delivery gets a new one. */
  invalidate(cacheKey: string): void;
  /** Drops every cached token. */
  close(): void;
}

const AUTH_TYPES = ['api_key', 'basic_auth', 'oauth2'] as const;
const AUTHENTICATION_TYPES = ['shared_secret', 'client_assertion'] as const;
const MAX_SECRET = 4096;
const OAUTH2_COMMON = ['url', 'client_id', 'scope', 'audience', 'authentication_type'];
// Convoy's API also sends these; only the values Wharf implements are accepted.
const OAUTH2_CONVOY = ['grant_type', 'signing_algorithm'];

const KEYS = {
  api_key: ['header_name', 'header_value'],
  basic_auth: ['username', 'password'],
  shared_secret: [...OAUTH2_COMMON, ...OAUTH2_CONVOY, 'client_secret'],
  client_assertion: [...OAUTH2_COMMON, ...OAUTH2_CONVOY, 'signing_key', 'issuer', 'subject'],
} as const;

/**
 * Convoy nests each type's fields under its name (`{type: "api_key", api_key: {header_name,
 * header_value}}`, `basic_auth: {…}`, `oauth2: {…}`) and sends the other types' keys as null;
 * Wharf's own flat shape (`{type, header_name, header_value}`) is the same block unnested. This
 * gives the flat one for either; anything else is returned as it is, for the parser to judge.
 */
export function flattenAuth(value: unknown): unknown {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return value;
  const v = value as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) {
    if ((AUTH_TYPES as readonly string[]).includes(k) && k !== v.type && x === null) continue; // another type's null block
    if (k === v.type && typeof x === 'object' && x !== null && !Array.isArray(x)) Object.assign(out, x);
    else out[k] = x;
  }
  return out;
}

/** An authentication block in Convoy's nested shape, as answers show it. */
export function nestAuth(flat: Record<string, unknown> | null): Record<string, unknown> | null {
  if (flat === null) return null;
  const { type, ...fields } = flat;
  return { type, [String(type)]: fields };
}

/**
 * Reads an endpoint's `authentication` block (Convoy's nested shape or Wharf's flat one);
 * problems go to `r` with paths under `at`. Null when
 * the block is absent, and also when its type cannot be read (then `r` says why: callers must look
 * at `r.issues` before using the result).
 */
export function parseEndpointAuth(r: Reader, given: unknown, at: string): EndpointAuth | null {
  if (absent(given)) return null;
  const value = flattenAuth(given);
  if (typeof value !== 'object' || Array.isArray(value)) {
    r.fields(value, at, []);
    return null;
  }
  const type = (value as Fields).type;
  if (absent(type)) {
    r.bad(`${at}.type`, `is required: one of ${AUTH_TYPES.join(', ')}`);
    return null;
  }
  if (!AUTH_TYPES.includes(type as (typeof AUTH_TYPES)[number])) {
    r.bad(`${at}.type`, `must be one of ${AUTH_TYPES.join(', ')}${got(type)}`);
    return null;
  }
  if (type === 'api_key') return apiKey(r, r.fields(value, at, ['type', ...KEYS.api_key])!, at);
  if (type === 'basic_auth') return basicAuth(r, r.fields(value, at, ['type', ...KEYS.basic_auth])!, at);
  return oauth2(r, value as Fields, at);
}

/** Dotted keys of an authentication block that hold secrets, relative to the block. */
export function authSecretKeys(auth: EndpointAuth | null): string[] {
  if (auth === null) return [];
  switch (auth.type) {
    case 'api_key':
      return ['header_value'];
    case 'basic_auth':
      return ['password'];
    case 'oauth2':
      return auth.authentication_type === 'shared_secret' ? ['client_secret'] : ['signing_key'];
  }
}

export function createAuthHeaders(deps: { oauth2: OAuth2TokenSource }): AuthHeaders {
  return {
    async headers(auth, cacheKey) {
      switch (auth.type) {
        case 'api_key':
          return { [auth.header_name]: auth.header_value };
        case 'basic_auth':
          // RFC 7617: user-id and password joined by a colon, as UTF-8.
          return { authorization: `Basic ${Buffer.from(`${auth.username}:${auth.password}`, 'utf8').toString('base64')}` };
        case 'oauth2':
          return { authorization: `Bearer ${await deps.oauth2.token(auth, cacheKey)}` };
      }
    },
    invalidate(cacheKey) {
      deps.oauth2.clear(cacheKey);
    },
    close() {
      deps.oauth2.clear();
    },
  };
}

function apiKey(r: Reader, v: Fields, at: string): EndpointAuth {
  return {
    type: 'api_key',
    header_name: headerName(r, v.header_name, `${at}.header_name`),
    header_value: headerValue(r, v.header_value, `${at}.header_value`),
  };
}

function basicAuth(r: Reader, v: Fields, at: string): EndpointAuth {
  const username = required(r, v.username, `${at}.username`, () => r.text(v.username, `${at}.username`, '', { max: 256 }));
  // RFC 7617: the first colon ends the user-id, so the receiver would split the name there.
  if (username.includes(':')) r.bad(`${at}.username`, 'must not contain ":"');
  else if (hasControl(username, false)) r.bad(`${at}.username`, 'must not contain control characters');
  const password = required(r, v.password, `${at}.password`, () =>
    r.text(v.password, `${at}.password`, '', { max: MAX_SECRET, secret: true }),
  );
  return { type: 'basic_auth', username, password };
}

function oauth2(r: Reader, raw: Fields, at: string): EndpointAuth {
  const authType = r.choice(raw.authentication_type, `${at}.authentication_type`, AUTHENTICATION_TYPES, 'shared_secret');
  // Every OAuth2 key is known; one that belongs to the other authentication_type is named as such.
  const v = r.fields(raw, at, ['type', ...new Set([...KEYS.shared_secret, ...KEYS.client_assertion])])!;
  for (const other of AUTHENTICATION_TYPES) {
    for (const key of KEYS[other]) {
      if (!KEYS[authType].includes(key as never) && !absent(v[key])) {
        r.bad(`${at}.${key}`, `applies to authentication_type ${other} only`);
      }
    }
  }
  r.choice(v.grant_type, `${at}.grant_type`, ['client_credentials'] as const, 'client_credentials');
  r.choice(v.signing_algorithm, `${at}.signing_algorithm`, ['ES256'] as const, 'ES256');
  const clientId = required(r, v.client_id, `${at}.client_id`, () => r.text(v.client_id, `${at}.client_id`, '', { max: 512 }));
  const common = {
    type: 'oauth2' as const,
    url: r.url(v.url, `${at}.url`, 'the OAuth2 token endpoint'),
    client_id: clientId,
    scope: r.optional(v.scope, `${at}.scope`, 1024),
    audience: r.optional(v.audience, `${at}.audience`, 1024),
  };
  if (authType === 'shared_secret') {
    const secret = required(r, v.client_secret, `${at}.client_secret`, () =>
      r.text(v.client_secret, `${at}.client_secret`, '', { max: MAX_SECRET, secret: true }),
    );
    return { ...common, authentication_type: authType, client_secret: secret };
  }
  // RFC 7523 §3: for client authentication both name the client, so client_id is the default.
  return {
    ...common,
    authentication_type: authType,
    signing_key: signingKey(r, v.signing_key, `${at}.signing_key`),
    issuer: r.optional(v.issuer, `${at}.issuer`, 1024) ?? clientId,
    subject: r.optional(v.subject, `${at}.subject`, 1024) ?? clientId,
  };
}

function required(r: Reader, value: unknown, path: string, read: () => string): string {
  if (absent(value)) {
    r.bad(path, 'is required');
    return '';
  }
  return read();
}

function headerName(r: Reader, value: unknown, path: string): string {
  const text = required(r, value, path, () => r.text(value, path, '', { max: 200 }));
  if (text === '') return '';
  const lower = text.toLowerCase();
  if (!TOKEN.test(text)) r.bad(path, `must be a header name${got(text)}`);
  else if (RESERVED_HEADERS.has(lower) || lower.startsWith('x-wharf-')) {
    r.bad(path, `names a header Wharf sets itself${got(text)}`);
  } else return text;
  return '';
}

function headerValue(r: Reader, value: unknown, path: string): string {
  const text = required(r, value, path, () => r.text(value, path, '', { max: MAX_SECRET, secret: true }));
  // CR or LF would split the header (and NUL is refused by HTTP clients); tabs and spaces are fine.
  if (hasControl(text, true)) {
    r.bad(path, 'must not contain control characters such as line breaks');
    return '';
  }
  return text;
}

/** C0 controls and DEL; a tab may be allowed, as header values may hold one. */
function hasControl(text: string, tabAllowed: boolean): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if ((c < 0x20 && !(tabAllowed && c === 0x09)) || c === 0x7f) return true;
  }
  return false;
}

/**
 * The private JWK that signs client assertions, as a mapping or as JSON text (so an environment
 * variable can hold it). Checked here with node:crypto, synchronously: the curve, that `d` is a
 * valid P-256 private key, and that `x`/`y` are its public half.
 */
function signingKey(r: Reader, value: unknown, path: string): JsonWebKey {
  if (absent(value)) {
    r.bad(path, 'is required: the EC P-256 private key (JWK) that signs client assertions');
    return {};
  }
  let jwk: unknown = value;
  if (typeof value === 'string') {
    try {
      jwk = JSON.parse(value);
    } catch {
      r.bad(path, 'must be a JWK mapping or its JSON text (got text that is not JSON)');
      return {};
    }
  }
  if (typeof jwk !== 'object' || jwk === null || Array.isArray(jwk)) {
    r.bad(path, `must be a JWK mapping${kind(jwk)}`);
    return {};
  }
  const problem = jwkProblem(jwk as Record<string, unknown>);
  if (problem !== null) {
    r.bad(path, problem);
    return {};
  }
  return jwk as JsonWebKey;
}

const B64URL_32 = /^[A-Za-z0-9_-]{43}$/;

function jwkProblem(jwk: Record<string, unknown>): string | null {
  if (jwk.kty !== 'EC') return `must be an EC key (kty "EC")${jwk.kty === undefined ? ', kty is missing' : ''}`;
  if (jwk.crv !== 'P-256') return 'must be on curve P-256 (crv "P-256"), as ES256 requires';
  if (jwk.alg !== undefined && jwk.alg !== 'ES256') return 'alg must be ES256 when given';
  if (jwk.use !== undefined && jwk.use !== 'sig') return 'use must be sig when given';
  if (jwk.kid !== undefined && typeof jwk.kid !== 'string') return 'kid must be a string when given';
  for (const field of ['x', 'y', 'd'] as const) {
    if (jwk[field] === undefined) return field === 'd' ? 'is a public key: d (the private part) is missing' : `${field} is missing`;
    if (typeof jwk[field] !== 'string' || !B64URL_32.test(jwk[field])) return `${field} must be 32 bytes of base64url`;
  }
  // Node keeps a JWK's x/y as given rather than deriving them from d, so the public point is
  // derived here: a mismatch would sign assertions the receiver's registered public key rejects.
  let point: Buffer;
  try {
    const ecdh = createECDH('prime256v1');
    ecdh.setPrivateKey(Buffer.from(jwk.d as string, 'base64url'));
    point = ecdh.getPublicKey();
  } catch {
    return 'is not a valid P-256 private key';
  }
  // Uncompressed point: 0x04, then 32 bytes of x and 32 of y.
  const x = point.subarray(1, 33).toString('base64url');
  const y = point.subarray(33).toString('base64url');
  return x === jwk.x && y === jwk.y ? null : 'x and y are not the public half of d';
}
