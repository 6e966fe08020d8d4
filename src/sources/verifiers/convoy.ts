import { hmac } from '../../core/hmac.ts';
import type { HashAlgorithm, SignatureEncoding } from '../../core/types.ts';
import { anyEqual, timestampedSignatures, toleranceProblem } from './request.ts';

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
  /** The header's name, for reasons ("X-Convoy-Signature header has no t"); "signature" if not given. */
  header?: string;
}

export type ConvoyVerifyResult = { ok: true } | { ok: false; reason: string };

/** Checks a Convoy signature header over the exact request bytes. */
export function verifyConvoySignature(
  header: string | undefined,
  body: Buffer,
  options: ConvoyVerifyOptions,
): ConvoyVerifyResult {
  const name = options.header ?? 'signature';
  if (header === undefined || header === '') return { ok: false, reason: `${name} header is missing` };
  if (options.secrets.length === 0) return { ok: false, reason: 'no secret to verify with' };
  // Every secret is tried (no early exit on a match's position) so the time taken says nothing
  // about which secret, if any, came close.
  const matchesAny = (candidates: readonly string[], signed: Buffer): boolean =>
    options.secrets.reduce((matched, secret) => anyEqual(candidates, hmac(options.hash, secret, signed, options.encoding)) || matched, false);

  if (!options.advanced) {
    return matchesAny([header], body) ? { ok: true } : { ok: false, reason: 'signature does not match' };
  }

  const parsed = timestampedSignatures(header, name);
  if ('reason' in parsed) return { ok: false, reason: parsed.reason };
  const stale = toleranceProblem(parsed.seconds, options.now ?? Math.floor(Date.now() / 1000), options.toleranceSeconds);
  if (stale !== null) return { ok: false, reason: stale };

  const signed = Buffer.concat([Buffer.from(`${parsed.rawTimestamp},`, 'utf8'), body]);
  return matchesAny(parsed.signatures, signed) ? { ok: true } : { ok: false, reason: 'no v1 signature matches' };
}
