import { hmac, safeEqual } from '../../core/hmac.ts';
import type { HashAlgorithm, SignatureEncoding } from '../../core/types.ts';

export interface ConvoyVerifyOptions {
  /** Every secret a sender may currently sign with; any one matching is enough. */
  secrets: string[];
  hash: HashAlgorithm;
  encoding: SignatureEncoding;
  /** `t=…,v1=…` headers rather than a bare signature. */
  advanced: boolean;
  /** Largest accepted |now − t| in seconds (advanced only; simple headers carry no time). */
  toleranceSeconds: number;
  /** Unix seconds; defaults to the clock. */
  now?: number;
}

export type ConvoyVerifyResult = { ok: true } | { ok: false; reason: string };

// Digits only: Number() alone would accept "Infinity", "1e9", " 17", "0x10" and hex-looking
// signatures, and a timestamp that parses loosely can be steered past the tolerance check.
const UNIX_SECONDS = /^[1-9][0-9]*$/;

/** Checks a Convoy signature header over the exact request bytes. */
export function verifyConvoySignature(
  header: string | undefined,
  body: Buffer,
  options: ConvoyVerifyOptions,
): ConvoyVerifyResult {
  if (header === undefined || header === '') return { ok: false, reason: 'signature header is missing' };
  if (options.secrets.length === 0) return { ok: false, reason: 'no secret to verify with' };

  if (!options.advanced) {
    // Every secret is tried (no early exit on a match's position) so the time taken says nothing
    // about which secret, if any, came close.
    let matched = false;
    for (const secret of options.secrets) {
      if (safeEqual(header, hmac(options.hash, secret, body, options.encoding))) matched = true;
    }
    return matched ? { ok: true } : { ok: false, reason: 'signature does not match' };
  }

  const parsed = parseAdvanced(header);
  if ('reason' in parsed) return { ok: false, reason: parsed.reason };
  const { timestamp, signatures } = parsed;

  const now = options.now ?? Math.floor(Date.now() / 1000);
  if (!(Math.abs(now - timestamp) <= options.toleranceSeconds)) {
    return { ok: false, reason: `timestamp ${timestamp} is outside the tolerance of ${options.toleranceSeconds}s` };
  }

  const signed = Buffer.concat([Buffer.from(`${timestamp},`, 'utf8'), body]);
  let matched = false;
  for (const secret of options.secrets) {
    const expected = hmac(options.hash, secret, signed, options.encoding);
    for (const signature of signatures) {
      if (safeEqual(signature, expected)) matched = true;
    }
  }
  return matched ? { ok: true } : { ok: false, reason: 'no v1 signature matches' };
}

function parseAdvanced(header: string): { timestamp: number; signatures: string[] } | { reason: string } {
  let rawTimestamp: string | undefined;
  const signatures: string[] = [];
  // Key-based, order-free parse: Convoy's own vectors put t after v1, and unknown keys (v2, …) are
  // left for future schemes rather than rejected.
  for (const part of header.split(',')) {
    const eq = part.indexOf('=');
    if (eq <= 0) return { reason: `malformed signature header part ${JSON.stringify(part)}` };
    const key = part.slice(0, eq).trim();
    const value = part.slice(eq + 1).trim();
    if (key === 't') {
      if (rawTimestamp !== undefined) return { reason: 'signature header has more than one t' };
      rawTimestamp = value;
    } else if (key === 'v1') {
      signatures.push(value);
    }
  }
  if (rawTimestamp === undefined) return { reason: 'signature header has no t' };
  const timestamp = Number(rawTimestamp);
  if (!UNIX_SECONDS.test(rawTimestamp) || !Number.isSafeInteger(timestamp)) {
    return { reason: `signature timestamp ${JSON.stringify(rawTimestamp)} is not unix seconds` };
  }
  if (signatures.length === 0) return { reason: 'signature header has no v1' };
  return { timestamp, signatures };
}
