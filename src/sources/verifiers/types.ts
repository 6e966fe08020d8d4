/**
 * The shapes of a source's `verifier:` block once checked. Each is plain JSON: the block is stored
 * encrypted as JSON and read back as these types.
 */
import type { HashAlgorithm, SignatureEncoding } from '../../core/types.ts';

export const VERIFIER_TYPES = [
  'none',
  'hmac',
  'basic_auth',
  'api_key',
  'github',
  'shopify',
  'stripe',
  'standard_webhooks',
] as const;
export type VerifierType = (typeof VERIFIER_TYPES)[number];

/** Accepts every request, said explicitly so an unverified source is never an accident. */
export type NoneVerifier = { type: 'none' };

type HmacCommon = {
  type: 'hmac';
  /** As written (for messages); looked up lower-cased. */
  header: string;
  hash: HashAlgorithm;
  encoding: SignatureEncoding;
  secret: string;
};
/** The header holds `prefix` + the digest of the raw body. */
export type SimpleHmacVerifier = HmacCommon & { mode: 'simple'; prefix: string };
/** Convoy's `t=<unix>,v1=<sig>[,v1=…]` over `<t>,<body>`. */
export type AdvancedHmacVerifier = HmacCommon & { mode: 'advanced'; tolerance: number };
export type HmacVerifier = SimpleHmacVerifier | AdvancedHmacVerifier;

export type BasicAuthVerifier = { type: 'basic_auth'; username: string; password: string };
export type ApiKeyVerifier = { type: 'api_key'; header_name: string; header_value: string };
export type GithubVerifier = { type: 'github'; secret: string };
export type ShopifyVerifier = { type: 'shopify'; secret: string };
export type StripeVerifier = { type: 'stripe'; secret: string; tolerance: number };
/** `secret` is `whsec_` + base64 of the HMAC key. */
export type StandardWebhooksVerifier = { type: 'standard_webhooks'; secret: string; tolerance: number };

export type VerifierConfig =
  | NoneVerifier
  | HmacVerifier
  | BasicAuthVerifier
  | ApiKeyVerifier
  | GithubVerifier
  | ShopifyVerifier
  | StripeVerifier
  | StandardWebhooksVerifier;

export interface IncomingRequest {
  /** The exact bytes received; every scheme signs these, never a re-serialisation. */
  body: Buffer;
  /** lower-cased names */
  headers: Record<string, string | string[] | undefined>;
}

export type VerifyResult = { ok: true } | { ok: false; reason: string };
