/**
 * Generic HMAC sources (Convoy's simple and advanced schemes) and the providers that are simple HMAC
 * with a fixed header, prefix and encoding (GitHub, Shopify).
 */
import { verifyConvoySignature } from './convoy.ts';
import { fail, headerValue } from './request.ts';
import type { GithubVerifier, HmacVerifier, IncomingRequest, ShopifyVerifier, VerifyResult } from './types.ts';

export function verifyHmac(config: HmacVerifier, req: IncomingRequest, now: number): VerifyResult {
  const found = headerValue(req, config.header);
  if ('reason' in found) return fail(found.reason);
  const common = { secrets: [config.secret], hash: config.hash, encoding: config.encoding, header: config.header };

  if (config.mode === 'advanced') {
    return verifyConvoySignature(found.value, req.body, { ...common, advanced: true, toleranceSeconds: config.tolerance, now });
  }

  if (!found.value.startsWith(config.prefix)) {
    return fail(`${config.header} header does not start with ${JSON.stringify(config.prefix)}`);
  }
  const signature = found.value.slice(config.prefix.length);
  if (signature === '') return fail(`${config.header} header has no signature after ${JSON.stringify(config.prefix)}`);
  return verifyConvoySignature(signature, req.body, { ...common, advanced: false, toleranceSeconds: 0 });
}

/** `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>`. */
export function verifyGithub(config: GithubVerifier, req: IncomingRequest, now: number): VerifyResult {
  return verifyHmac(
    { type: 'hmac', header: 'X-Hub-Signature-256', hash: 'SHA256', encoding: 'hex', secret: config.secret, mode: 'simple', prefix: 'sha256=' },
    req,
    now,
  );
}

/** `X-Shopify-Hmac-SHA256: <base64 HMAC-SHA256 of the body>`, keyed with the app's client secret. */
export function verifyShopify(config: ShopifyVerifier, req: IncomingRequest, now: number): VerifyResult {
  return verifyHmac(
    { type: 'hmac', header: 'X-Shopify-Hmac-SHA256', hash: 'SHA256', encoding: 'base64', secret: config.secret, mode: 'simple', prefix: '' },
    req,
    now,
  );
}
