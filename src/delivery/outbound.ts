/**
 * One signed request to an endpoint with its credentials: the authentication headers (added after
 * the signature, which covers the body only) and its TLS settings. Deliveries and the reachability
 * ping both go through here, so a ping meets exactly what a delivery would.
 */
import type { Dispatcher as HttpDispatcher } from 'undici';
import { REDACTED } from '../core/redact.ts';
import type { AuthHeaders } from './auth.ts';
import { tlsOf, type EndpointCredentials } from './credentials.ts';
import { withHeaders } from './request.ts';
import { unanswered, type SendResult, type Sender } from './sender.ts';
import type { TlsOptions } from './tls.ts';

export interface OutboundDeps {
  sender: Sender;
  /** Outbound authentication headers (OAuth2 tokens cached per endpoint). */
  auth: AuthHeaders;
  /** The connection pool for an endpoint's TLS settings (client certificate, CA), or the shared one. */
  agents: { forTls(tls: TlsOptions | null): HttpDispatcher };
}

export interface OutboundTarget {
  url: string;
  timeoutMs: number;
  /** Names the endpoint for the OAuth2 token cache. */
  cacheKey: string;
}

/**
 * Sends `body` with `headers` plus the endpoint's authentication. Answers the outcome and the
 * headers to record: those sent, with the authentication headers' values as `********` (which
 * headers went, never their credentials). A token that cannot be had is a failed attempt with its
 * reason, like a refused connection.
 */
export async function sendWithCredentials(
  deps: OutboundDeps,
  target: OutboundTarget,
  credentials: EndpointCredentials,
  headers: Record<string, string>,
  body: Buffer,
): Promise<{ result: SendResult; recorded: Record<string, string> }> {
  const auth = credentials.authentication;
  const send = (sent: Record<string, string>) =>
    deps.sender.send({ url: target.url, headers: sent, body, timeoutMs: target.timeoutMs, dispatcher: deps.agents.forTls(tlsOf(credentials)) });
  // No authentication (most endpoints): the headers go and are recorded as they are.
  if (!auth) return { result: await send(headers), recorded: headers };
  let extra: Record<string, string>;
  try {
    extra = await deps.auth.headers(auth, target.cacheKey);
  } catch (err) {
    const e = err as { code?: string; message?: string };
    return { result: unanswered(e.message ?? String(err), e.code ?? 'WHARF_ERR_AUTH'), recorded: headers };
  }
  const result = await send(withHeaders(headers, extra));
  // A refused token (revoked, rotated at the issuer) is not used again until it expires.
  if (auth.type === 'oauth2' && result.statusCode === 401) deps.auth.invalidate(target.cacheKey);
  return { result, recorded: withHeaders(headers, Object.fromEntries(Object.keys(extra).map((k) => [k, REDACTED]))) };
}
