/** Sources that present a shared credential instead of a signature: HTTP Basic and an API key header. */
import { OK, fail, headerValue, sameCredential } from './request.ts';
import type { ApiKeyVerifier, BasicAuthVerifier, IncomingRequest, VerifyResult } from './types.ts';

// RFC 7617: the scheme name is case-insensitive; the token is base64 of `user-id:password`.
const BASIC = /^basic[ ]+([A-Za-z0-9+/]+=*)[ ]*$/i;

/**
 * Checks `Authorization: Basic …`. Username and password are compared as one string, so the reason
 * (and the time taken) never tells which of the two was wrong.
 */
export function verifyBasicAuth(config: BasicAuthVerifier, req: IncomingRequest): VerifyResult {
  const found = headerValue(req, 'Authorization');
  if ('reason' in found) return fail(found.reason);
  const token = BASIC.exec(found.value)?.[1];
  if (token === undefined) return fail('Authorization header is not Basic credentials');
  const given = Buffer.from(token, 'base64').toString('utf8');
  return sameCredential(given, `${config.username}:${config.password}`) ? OK : fail('credentials do not match');
}

/** The configured header carries exactly the configured value (e.g. `Bearer …`). */
export function verifyApiKey(config: ApiKeyVerifier, req: IncomingRequest): VerifyResult {
  const found = headerValue(req, config.header_name);
  if ('reason' in found) return fail(found.reason);
  return sameCredential(found.value, config.header_value) ? OK : fail(`${config.header_name} header does not match`);
}
