import { randomBytes } from 'node:crypto';
import { hmac } from '../core/hmac.ts';
import { invalid } from '../core/errors.ts';
import { MIN_SECRET_LENGTH, shortKeyProblem, shortSecretProblem } from '../core/secrets.ts';
import type { SignatureScheme, SignatureSettings } from '../core/types.ts';

export interface SignInput {
  /** The project's scheme, header, hash and encoding. */
  settings: SignatureSettings;
  /** The endpoint's `advanced_signatures`; only the convoy scheme looks at it. */
  advanced: boolean;
  /** The endpoint's live secrets, newest first (at least one). */
  secrets: string[];
  /** The exact bytes sent. */
  body: Buffer;
  /** Unix seconds. */
  timestamp: number;
  /** Standard Webhooks' `webhook-id` (the event id, so retries of one event share it). */
  messageId: string;
}

/** The longest secret accepted anywhere: endpoint signing secrets and ingest verifier secrets. */
export const MAX_SECRET_LENGTH = 1024;
/** How a Standard Webhooks secret starts: `whsec_` + base64 of the HMAC key. */
export const STANDARD_PREFIX = 'whsec_';
// Strict, padded standard base64: the standardwebhooks library rejects anything else, so a secret
// Node's lenient decoder would accept could still never be verified by a receiver.
const STRICT_BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** The headers that sign one request. Throws WHARF_ERR_INVALID when the input cannot be signed. */
export function signatureHeaders(input: SignInput): Record<string, string> {
  const { settings, secrets, body, timestamp } = input;
  if (secrets.length === 0) throw invalid('secrets', 'at least one live secret is needed to sign');
  // The timestamp is written into the signed bytes, so a fractional or negative one would produce a
  // header no receiver parses the same way.
  if (!Number.isSafeInteger(timestamp) || timestamp <= 0) {
    throw invalid('timestamp', `must be a positive integer of unix seconds, got ${timestamp}`);
  }

  if (settings.scheme === 'standard-webhooks') {
    if (input.messageId === '') throw invalid('messageId', 'must not be empty');
    const signed = Buffer.concat([Buffer.from(`${input.messageId}.${timestamp}.`, 'utf8'), body]);
    const signatures = secrets.map((secret) => `v1,${hmac('SHA256', signingKey(secret), signed, 'base64')}`);
    return {
      'webhook-id': input.messageId,
      'webhook-timestamp': String(timestamp),
      'webhook-signature': signatures.join(' '),
    };
  }

  if (!input.advanced) {
    // Simple mode has room for one signature only; the newest secret is the one receivers move to.
    return { [settings.header]: hmac(settings.hash, secrets[0], body, settings.encoding) };
  }

  const signed = Buffer.concat([Buffer.from(`${timestamp},`, 'utf8'), body]);
  const v1 = secrets.map((secret) => `,v1=${hmac(settings.hash, secret, signed, settings.encoding)}`);
  return { [settings.header]: `t=${timestamp}${v1.join('')}` };
}

/** A fresh secret in the shape the scheme's receivers expect. */
export function generateSecret(scheme: SignatureScheme): string {
  if (scheme === 'standard-webhooks') return STANDARD_PREFIX + randomBytes(24).toString('base64');
  return randomBytes(32).toString('base64url');
}

/**
 * Why a secret a user gives (an endpoint's, a rotation's, an alert target's) is refused, or null:
 * `validateSecret`, plus a minimum strength. Secrets stored before the minimum still sign.
 */
export function newSecretProblem(scheme: SignatureScheme, secret: string): string | null {
  const why = validateSecret(scheme, secret);
  if (why !== null) return why;
  if (scheme === 'standard-webhooks') return shortKeyProblem(standardKey(secret), MIN_SECRET_LENGTH);
  return shortSecretProblem(secret, MIN_SECRET_LENGTH);
}

/** `null` if `secret` can sign under `scheme`, otherwise why not (for a 400 naming the field). */
export function validateSecret(scheme: SignatureScheme, secret: string): string | null {
  if (secret.length === 0) return 'must not be empty';
  if (secret.length > MAX_SECRET_LENGTH) return `must be at most ${MAX_SECRET_LENGTH} characters`;
  if (scheme === 'convoy') return null;

  const encoded = secret.startsWith(STANDARD_PREFIX) ? secret.slice(STANDARD_PREFIX.length) : secret;
  if (encoded.length === 0) return `must have base64 key material after "${STANDARD_PREFIX}"`;
  if (!STRICT_BASE64.test(encoded)) {
    return `must be "${STANDARD_PREFIX}" followed by standard padded base64 (A-Z a-z 0-9 + /)`;
  }
  return null;
}

/**
 * The HMAC key of a Standard Webhooks secret: the base64 after an optional `whsec_` prefix, decoded
 * as is (an empty Buffer when nothing decodes). Check the secret with validateSecret first.
 */
export function standardKey(secret: string): Buffer {
  return Buffer.from(secret.startsWith(STANDARD_PREFIX) ? secret.slice(STANDARD_PREFIX.length) : secret, 'base64');
}

/** standardKey for signing: throws WHARF_ERR_INVALID (naming `secret`) when the secret is not valid. */
function signingKey(secret: string): Buffer {
  const reason = validateSecret('standard-webhooks', secret);
  if (reason !== null) throw invalid('secret', reason);
  return standardKey(secret);
}
