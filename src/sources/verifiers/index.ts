/**
 * Request verifiers for HTTP ingest sources: a source's `verifier:` block says how a request to its
 * ingest URL proves where it came from. Every check runs over the raw request bytes and compares in
 * constant time; reasons name what failed and never carry a secret or an expected signature.
 */
import { TOKEN, absent, got } from '../../core/settings.ts';
import type { Reader } from '../../core/settings.ts';
import { MIN_SECRET_LENGTH, shortSecretProblem } from '../../core/secrets.ts';
import { MAX_SECRET_LENGTH, STANDARD_PREFIX, newSecretProblem } from '../../delivery/signatures.ts';
import { verifyApiKey, verifyBasicAuth } from './credentials.ts';
import { verifyGithub, verifyHmac, verifyShopify } from './hmac.ts';
import { verifyStandardWebhooks, verifyStripe } from './presets.ts';
import { OK, fail } from './request.ts';
import { VERIFIER_TYPES } from './types.ts';
import type { IncomingRequest, VerifierConfig, VerifierType, VerifyResult } from './types.ts';

export { VERIFIER_TYPES } from './types.ts';
export type {
  AdvancedHmacVerifier,
  ApiKeyVerifier,
  BasicAuthVerifier,
  GithubVerifier,
  HmacVerifier,
  IncomingRequest,
  NoneVerifier,
  ShopifyVerifier,
  SimpleHmacVerifier,
  StandardWebhooksVerifier,
  StripeVerifier,
  VerifierConfig,
  VerifierType,
  VerifyResult,
} from './types.ts';

export const DEFAULT_TOLERANCE_SECONDS = 300;
// A ceiling, not a recommendation: a century lets fixed test vectors (signed at t=1700000000) and
// archived requests be replayed on purpose, as Convoy's conformance vectors do.
const MAX_TOLERANCE_SECONDS = 3_153_600_000;

/** Each verifier type's keys besides `type`. */
export const VERIFIER_KEYS: Record<VerifierType, readonly string[]> = {
  none: [],
  hmac: ['header', 'hash', 'encoding', 'secret', 'mode', 'prefix', 'tolerance'],
  basic_auth: ['username', 'password'],
  api_key: ['header_name', 'header_value'],
  github: ['secret'],
  shopify: ['secret'],
  stripe: ['secret', 'tolerance'],
  standard_webhooks: ['secret', 'tolerance'],
};

const SECRET_KEYS: Record<VerifierType, readonly string[]> = Object.freeze({
  none: Object.freeze([]),
  hmac: Object.freeze(['secret']),
  basic_auth: Object.freeze(['password']),
  api_key: Object.freeze(['header_value']),
  github: Object.freeze(['secret']),
  shopify: Object.freeze(['secret']),
  stripe: Object.freeze(['secret']),
  standard_webhooks: Object.freeze(['secret']),
});

const isVerifierType = (value: unknown): value is VerifierType => VERIFIER_TYPES.includes(value as VerifierType);

/**
 * What parseVerifier returns for a block it could not read at all. Its empty secret makes verify
 * refuse every request, so a caller that forgets to look at `r.issues` fails closed, not open.
 */
const UNUSABLE: VerifierConfig = { type: 'github', secret: '' };

/** Checks a `verifier` block; problems go to r with paths under `at` (e.g. `projects[0].sources[1].http.verifier.secret`). */
export function parseVerifier(r: Reader, value: unknown, at: string): VerifierConfig {
  if (absent(value)) {
    r.bad(at, 'is required; use type: none to accept unverified requests');
    return UNUSABLE;
  }
  if (typeof value !== 'object' || Array.isArray(value)) {
    r.fields(value, at, []);
    return UNUSABLE;
  }
  const type = (value as Record<string, unknown>).type;
  if (absent(type)) {
    r.bad(`${at}.type`, `is required: one of ${VERIFIER_TYPES.join(', ')}`);
    return UNUSABLE;
  }
  if (!isVerifierType(type)) {
    r.bad(`${at}.type`, `must be one of ${VERIFIER_TYPES.join(', ')}${got(type)}`);
    return UNUSABLE;
  }
  const v = r.fields(value, at, ['type', ...VERIFIER_KEYS[type]])!;
  const tolerance = (): number =>
    r.integer(v.tolerance, `${at}.tolerance`, 1, MAX_TOLERANCE_SECONDS, DEFAULT_TOLERANCE_SECONDS);

  switch (type) {
    case 'none':
      return { type };
    case 'hmac': {
      const common = {
        type,
        header: headerName(r, v.header, `${at}.header`, 'the request header that carries the signature'),
        hash: r.choice(v.hash, `${at}.hash`, ['SHA256', 'SHA512'] as const, 'SHA256'),
        encoding: r.choice(v.encoding, `${at}.encoding`, ['hex', 'base64'] as const, 'hex'),
        secret: secret(r, v.secret, `${at}.secret`),
      };
      const mode = r.choice(v.mode, `${at}.mode`, ['simple', 'advanced'] as const, 'simple');
      if (mode === 'advanced') {
        if (!absent(v.prefix) && v.prefix !== '') r.bad(`${at}.prefix`, 'applies to mode simple only (advanced headers are t=…,v1=…)');
        return { ...common, mode, tolerance: tolerance() };
      }
      if (!absent(v.tolerance)) r.bad(`${at}.tolerance`, 'applies to mode advanced only (simple signatures carry no timestamp)');
      return { ...common, mode, prefix: r.text(v.prefix, `${at}.prefix`, '', { max: 100, empty: true }) };
    }
    case 'basic_auth': {
      const username = required(r, v.username, `${at}.username`, () => r.text(v.username, `${at}.username`, '', { max: 256 }));
      // RFC 7617: the first colon ends the user-id, so one inside it could never be matched.
      if (username.includes(':')) r.bad(`${at}.username`, 'must not contain ":"');
      return { type, username, password: secret(r, v.password, `${at}.password`) };
    }
    case 'api_key':
      return {
        type,
        header_name: headerName(r, v.header_name, `${at}.header_name`, 'the request header that carries the key'),
        header_value: secret(r, v.header_value, `${at}.header_value`),
      };
    case 'github':
    case 'shopify':
      return { type, secret: secret(r, v.secret, `${at}.secret`) };
    case 'stripe':
      return { type, secret: secret(r, v.secret, `${at}.secret`), tolerance: tolerance() };
    case 'standard_webhooks':
      return { type, secret: standardSecret(r, v.secret, `${at}.secret`), tolerance: tolerance() };
  }
}

function required(r: Reader, value: unknown, path: string, read: () => string, what = ''): string {
  if (absent(value)) {
    r.bad(path, `is required${what ? `: ${what}` : ''}`);
    return '';
  }
  return read();
}

/** A verifier's secret, password or API key: at least MIN_SECRET_LENGTH characters, never quoted. */
function secret(r: Reader, value: unknown, path: string): string {
  const text = required(r, value, path, () => r.text(value, path, '', { max: MAX_SECRET_LENGTH, secret: true }));
  const short = text === '' ? null : shortSecretProblem(text, MIN_SECRET_LENGTH);
  if (short) {
    r.bad(path, `${short}: a short secret can be guessed`);
    return '';
  }
  return text;
}

function headerName(r: Reader, value: unknown, path: string, what: string): string {
  const text = required(r, value, path, () => r.text(value, path, '', { max: 200 }), what);
  if (text === '' || TOKEN.test(text)) return text;
  r.bad(path, `must be a header name${got(text)}`);
  return '';
}

/**
 * The prefix is required here though the standardwebhooks library makes it optional: it is how a
 * Standard Webhooks secret is shown to the operator, and a bare string is more likely a Stripe or
 * Convoy secret pasted into the wrong source.
 */
function standardSecret(r: Reader, value: unknown, path: string): string {
  const text = secret(r, value, path);
  if (text === '') return '';
  if (!text.startsWith(STANDARD_PREFIX)) {
    r.bad(path, `must start with "${STANDARD_PREFIX}" followed by the base64 key`);
    return '';
  }
  const problem = newSecretProblem('standard-webhooks', text);
  if (problem === null) return text;
  r.bad(path, problem);
  return '';
}

/** Dotted keys of a verifier block that hold secrets (relative to the verifier block), per type. */
export function verifierSecretKeys(type: VerifierType): readonly string[] {
  // Callers pass the type of a stored block unchecked; an unknown one has no keys to redact.
  return Object.hasOwn(SECRET_KEYS, type) ? SECRET_KEYS[type] : [];
}

/**
 * Whether `req` passes `config`. `nowSeconds` defaults to the clock. Reasons name what failed
 * ("X-Hub-Signature-256 header is missing", "signature does not match", "timestamp … is outside
 * the tolerance of 300s") and never include secrets or expected signatures.
 */
export function verify(config: VerifierConfig, req: IncomingRequest, nowSeconds?: number): VerifyResult {
  const now = nowSeconds ?? Math.floor(Date.now() / 1000);
  if (!isVerifierType(config.type)) return fail('verifier type is unknown');
  // An empty secret would make an HMAC anyone can compute; refuse rather than trust it.
  for (const key of SECRET_KEYS[config.type]) {
    const value = (config as Record<string, unknown>)[key];
    if (typeof value !== 'string' || value === '') return fail(`verifier is not configured: ${key} is empty`);
  }
  switch (config.type) {
    case 'none':
      return OK;
    case 'hmac':
      return verifyHmac(config, req, now);
    case 'basic_auth':
      return verifyBasicAuth(config, req);
    case 'api_key':
      return verifyApiKey(config, req);
    case 'github':
      return verifyGithub(config, req, now);
    case 'shopify':
      return verifyShopify(config, req, now);
    case 'stripe':
      return verifyStripe(config, req, now);
    case 'standard_webhooks':
      return verifyStandardWebhooks(config, req, now);
  }
}
