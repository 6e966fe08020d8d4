/**
 * Endpoint verification: before an endpoint is saved with a new URL, Wharf sends it a signed,
 * authenticated `ping` (exactly what a delivery would meet: egress guard, TLS settings, content
 * type) and refuses the endpoint unless it answers 2xx. `skip_ping_validation` saves it untried.
 */
import { invalid } from '../core/errors.ts';
import { uuidv7 } from '../core/ids.ts';
import type { Endpoint, EndpointSecret, SignatureSettings } from '../core/types.ts';
import type { EndpointCredentials } from './credentials.ts';
import { sendWithCredentials, type OutboundDeps } from './outbound.ts';
import { buildRequest } from './request.ts';

/** The event type a ping carries (header `X-Wharf-Event-Type`), so a receiver can tell it apart. */
export const PING_EVENT_TYPE = 'ping';
/** A ping waits at most this long, whatever the endpoint's own timeout. */
const MAX_PING_SECONDS = 10;

export type PingTarget = Pick<Endpoint, 'project_id' | 'id' | 'url' | 'http_timeout' | 'content_type' | 'advanced_signatures'>;

/** Why the endpoint cannot be reached, or null when it answered 2xx. */
export async function ping(
  deps: OutboundDeps,
  signature: SignatureSettings,
  e: PingTarget,
  secrets: Pick<EndpointSecret, 'value'>[],
  credentials: EndpointCredentials,
): Promise<string | null> {
  const id = uuidv7();
  const { headers, body } = buildRequest({
    eventId: id,
    deliveryId: id,
    eventType: PING_EVENT_TYPE,
    data: JSON.stringify({ event_type: PING_EVENT_TYPE, endpoint_id: e.id, message: 'Wharf checks that this endpoint can be reached' }),
    customHeaders: {},
    signature,
    advanced: e.advanced_signatures,
    secrets: secrets.map((s) => ({ id: 'ping', value: s.value, created_at: new Date(), expires_at: null })),
    contentType: e.content_type,
  });
  const timeoutMs = Math.min(e.http_timeout, MAX_PING_SECONDS) * 1000;
  const { result: r } = await sendWithCredentials(deps, { url: e.url, timeoutMs, cacheKey: `${e.project_id}/${e.id}` }, credentials, headers, body);
  if (r.ok) return null;
  return r.statusCode !== null ? `it answered HTTP ${r.statusCode}` : (r.error ?? 'no answer');
}

/** A 400 naming `url` when the endpoint does not answer its ping. */
export async function requireReachable(...args: Parameters<typeof ping>): Promise<void> {
  const why = await ping(...args);
  if (why !== null) {
    throw invalid('url', `could not be reached (${why}); fix the URL or the receiver, or set skip_ping_validation: true to save the endpoint without this check`);
  }
}
