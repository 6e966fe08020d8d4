/**
 * What every verifier reads from a request: one header's value, a unix timestamp, a `t=…,v1=…`
 * header, the tolerance check. Reasons name the header and what was wrong, never a secret or an expected signature.
 */
import { createHash } from 'node:crypto';
import { safeEqual } from '../../core/hmac.ts';
import type { IncomingRequest, VerifyResult } from './types.ts';

export const OK: VerifyResult = { ok: true };
export const fail = (reason: string): VerifyResult => ({ ok: false, reason });

/** The value of header `name` (matched case-insensitively), or why there is none to check. */
export function headerValue(req: IncomingRequest, name: string): { value: string } | { reason: string } {
  const raw = req.headers[name.toLowerCase()];
  if (raw === undefined || (Array.isArray(raw) && raw.length === 0)) return { reason: `${name} header is missing` };
  // Two copies of a signature header cannot both be what the sender meant; picking one would let a
  // proxy or attacker choose which is checked.
  if (Array.isArray(raw) && raw.length > 1) return { reason: `${name} header is given more than once` };
  const value = Array.isArray(raw) ? raw[0] : raw;
  if (value === '') return { reason: `${name} header is empty` };
  return { value };
}

// Digits only: Number() alone would accept "1e9", " 17", "0x10" or "Infinity", and a timestamp
// that parses loosely can be steered past the tolerance check.
const UNIX_SECONDS = /^[1-9][0-9]*$/;

/** `raw` as unix seconds, or why it is not. `what` names where it came from. */
export function unixSeconds(raw: string, what: string): { seconds: number } | { reason: string } {
  const seconds = Number(raw);
  if (UNIX_SECONDS.test(raw) && Number.isSafeInteger(seconds)) return { seconds };
  const shown = raw.length > 40 ? `${raw.slice(0, 37)}...` : raw;
  return { reason: `${what} ${JSON.stringify(shown)} is not unix seconds` };
}

/** A `t=…,v1=…` header read: the timestamp as sent (it is what was signed) and as seconds, and every v1. */
export interface TimestampedSignatures {
  rawTimestamp: string;
  seconds: number;
  signatures: string[];
}

/**
 * Reads Stripe's and Convoy's advanced layout, `t=<unix>,v1=<sig>[,v1=…]`, from the value of header
 * `header` (named in reasons). Key-based and order-free (Convoy's own vectors put t after v1); other
 * keys (Stripe's v0, a future v2) are skipped; a second t is refused, since two cannot both be
 * what the sender meant.
 */
export function timestampedSignatures(value: string, header: string): TimestampedSignatures | { reason: string } {
  let rawTimestamp: string | undefined;
  const signatures: string[] = [];
  for (const part of value.split(',')) {
    const eq = part.indexOf('=');
    if (eq <= 0) return { reason: `${header} header has a malformed part ${JSON.stringify(part.slice(0, 40))}` };
    const key = part.slice(0, eq).trim();
    const v = part.slice(eq + 1).trim();
    if (key === 't') {
      if (rawTimestamp !== undefined) return { reason: `${header} header has more than one t` };
      rawTimestamp = v;
    } else if (key === 'v1') {
      signatures.push(v);
    }
  }
  if (rawTimestamp === undefined) return { reason: `${header} header has no t` };
  const timestamp = unixSeconds(rawTimestamp, `${header} timestamp`);
  if ('reason' in timestamp) return timestamp;
  if (signatures.length === 0) return { reason: `${header} header has no v1 signature` };
  return { rawTimestamp, seconds: timestamp.seconds, signatures };
}

/**
 * Why `timestamp` is too far from `now`, or null. Both directions count: a timestamp far in the
 * future would otherwise stay replayable until long after it was sent.
 */
export function toleranceProblem(timestamp: number, now: number, tolerance: number): string | null {
  return Math.abs(now - timestamp) <= tolerance ? null : `timestamp ${timestamp} is outside the tolerance of ${tolerance}s`;
}

/**
 * Whether `candidates` holds `expected`, comparing every candidate (no early exit) so the time
 * taken says nothing about which one came close.
 */
export function anyEqual(candidates: readonly string[], expected: string): boolean {
  let matched = false;
  for (const candidate of candidates) {
    if (safeEqual(candidate, expected)) matched = true;
  }
  return matched;
}

const digest = (text: string): string => createHash('sha256').update(text, 'utf8').digest('hex');

/**
 * Constant-time equality of a presented credential and the configured one. Both are hashed first
 * because, unlike a signature's, a password's length is private and safeEqual returns early on a
 * length mismatch.
 */
export function sameCredential(given: string, expected: string): boolean {
  return safeEqual(digest(given), digest(expected));
}
