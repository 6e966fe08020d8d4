/** Providers whose signatures carry a timestamp and their own header layout: Stripe, Standard Webhooks. */
import { hmac } from '../../core/hmac.ts';
import { standardKey } from '../../delivery/signatures.ts';
import { OK, anyEqual, fail, headerValue, timestampedSignatures, toleranceProblem, unixSeconds } from './request.ts';
import type { IncomingRequest, StandardWebhooksVerifier, StripeVerifier, VerifyResult } from './types.ts';

const STRIPE_HEADER = 'Stripe-Signature';

/**
 * `Stripe-Signature: t=<unix>,v1=<hex>[,v1=…][,v0=…]`, v1 being HMAC-SHA256 of `<t>.<body>` keyed
 * with the endpoint secret taken as text (its `whsec_` is part of the key, unlike Standard
 * Webhooks). Several v1 appear while a secret is being rolled; v0 (test mode's old scheme) is ignored.
 */
export function verifyStripe(config: StripeVerifier, req: IncomingRequest, now: number): VerifyResult {
  const found = headerValue(req, STRIPE_HEADER);
  if ('reason' in found) return fail(found.reason);

  const parsed = timestampedSignatures(found.value, STRIPE_HEADER);
  if ('reason' in parsed) return fail(parsed.reason);
  // Stripe's libraries only refuse old timestamps; future ones are refused here too (see request.ts).
  const stale = toleranceProblem(parsed.seconds, now, config.tolerance);
  if (stale !== null) return fail(stale);

  const signed = Buffer.concat([Buffer.from(`${parsed.rawTimestamp}.`, 'utf8'), req.body]);
  const expected = hmac('SHA256', config.secret, signed, 'hex');
  return anyEqual(parsed.signatures, expected) ? OK : fail('no v1 signature matches');
}

/** The three headers of a Standard Webhooks request. */
export interface StandardWebhooksHeaders {
  id: string;
  timestamp: string;
  signature: string;
}

/**
 * Which names a Standard Webhooks request uses: Svix sends the same scheme as `svix-id`,
 * `svix-timestamp` and `svix-signature`. The unbranded names win when both are there, so the id
 * that is signed is the one read as the idempotency key (an unsigned second id cannot change it).
 */
export function standardWebhooksHeaders(present: (name: string) => boolean): StandardWebhooksHeaders {
  const prefix = present('webhook-id') || !present('svix-id') ? 'webhook' : 'svix';
  return { id: `${prefix}-id`, timestamp: `${prefix}-timestamp`, signature: `${prefix}-signature` };
}

/**
 * Standard Webhooks: `webhook-signature` holds space-separated `v1,<base64>` entries, each an
 * HMAC-SHA256 of `<webhook-id>.<webhook-timestamp>.<body>` keyed with the base64-decoded secret.
 * Other versions (`v1a`, asymmetric) are skipped, as the specification asks.
 */
export function verifyStandardWebhooks(config: StandardWebhooksVerifier, req: IncomingRequest, now: number): VerifyResult {
  const names = standardWebhooksHeaders((name) => (req.headers[name]?.length ?? 0) > 0);
  const id = headerValue(req, names.id);
  if ('reason' in id) return fail(id.reason);
  const rawTimestamp = headerValue(req, names.timestamp);
  if ('reason' in rawTimestamp) return fail(rawTimestamp.reason);
  const header = headerValue(req, names.signature);
  if ('reason' in header) return fail(header.reason);

  const timestamp = unixSeconds(rawTimestamp.value, names.timestamp);
  if ('reason' in timestamp) return fail(timestamp.reason);
  const signatures = header.value
    .split(' ')
    .filter((entry) => entry.startsWith('v1,'))
    .map((entry) => entry.slice(3));
  if (signatures.length === 0) return fail(`${names.signature} header has no v1 signature`);
  const stale = toleranceProblem(timestamp.seconds, now, config.tolerance);
  if (stale !== null) return fail(stale);

  const key = standardKey(config.secret);
  if (key.length === 0) return fail('verifier is not configured: secret holds no key');
  const signed = Buffer.concat([Buffer.from(`${id.value}.${rawTimestamp.value}.`, 'utf8'), req.body]);
  return anyEqual(signatures, hmac('SHA256', key, signed, 'base64')) ? OK : fail('no v1 signature matches');
}
