import type { EndpointContentType, EndpointSecret, SignatureSettings } from '../core/types.ts';
import { formEncode } from './form.ts';
import { USER_AGENT } from '../core/version.ts';
import { signatureHeaders } from './signatures.ts';
import { RESERVED_HEADERS } from '../core/headers.ts';
import { TOKEN } from '../core/settings.ts';

export { RESERVED_HEADERS };


export interface OutgoingWebhook {
  eventId: string;
  deliveryId: string;
  eventType: string;
  /** JSON text of the payload, exactly as stored. */
  data: string;
  customHeaders: Record<string, string>;
  signature: SignatureSettings;
  advanced: boolean;
  secrets: EndpointSecret[];
  /** Default JSON; form bodies are the data in bracket notation. */
  contentType?: EndpointContentType;
  now?: number;
}

/** The body sent for an event's JSON text: as stored, or form-encoded for a form endpoint. Throws if a form's data is not JSON. */
export function bodyFor(data: string, contentType: EndpointContentType = 'application/json'): string {
  return contentType === 'application/x-www-form-urlencoded' ? formEncode(JSON.parse(data)) : data;
}

/**
 * A value that can go out in a header whatever it holds: ingest refuses event types and custom
 * headers that could not (limits.ts, core/headers.ts), but an event stored before those checks
 * must not fail every attempt, so anything outside visible ASCII, space and tab is percent-encoded
 * (UTF-8), as RFC 8187 does.
 */
export function headerSafe(value: string): string {
  return /^[\t\x20-\x7e]*$/.test(value) ? value : value.replace(/[^\t\x20-\x7e]/gu, (c) => {
        try {
          return encodeURIComponent(c);
        } catch {
          return '%EF%BF%BD'; // a lone surrogate: U+FFFD
        }
      });
}

const EVENT_ID_HEADER = 'x-wharf-event-id';
const DELIVERY_ID_HEADER = 'x-wharf-delivery-id';
const EVENT_TYPE_HEADER = 'x-wharf-event-type';

/**
 * The request headers an attempt's row keeps: every header sent, but the three its delivery
 * determines (event id, delivery id, event type) when they hold exactly that; about half the
 * headers' bytes of a row, and of its WAL (issue 15). `REQUEST_HEADERS_SQL` puts them back.
 */
export function storedRequestHeaders(headers: Record<string, string>, of: { eventId: string; deliveryId: string; eventType: string }): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(headers)) {
    if ((k === EVENT_ID_HEADER && v === of.eventId) || (k === DELIVERY_ID_HEADER && v === of.deliveryId) || (k === EVENT_TYPE_HEADER && v === of.eventType)) continue;
    out[k] = v;
  }
  return out;
}

/**
 * An attempt's request headers as sent, from `a` (its row of the view `attempts`) and `d` (its
 * delivery, whose event_type is its event's): what the row keeps wins, so rows written before the
 * three were left out read the same.
 */
export const REQUEST_HEADERS_SQL = `jsonb_build_object('${EVENT_ID_HEADER}', d.event_id::text, '${DELIVERY_ID_HEADER}', d.id::text, '${EVENT_TYPE_HEADER}', d.event_type) || a.request_headers`;

/** Fixes the body once and signs exactly those bytes. */
export function buildRequest(w: OutgoingWebhook): { headers: Record<string, string>; body: Buffer } {
  const form = w.contentType === 'application/x-www-form-urlencoded';
  const body = Buffer.from(bodyFor(w.data, w.contentType), 'utf8');
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(w.customHeaders)) {
    if (!RESERVED_HEADERS.has(k.toLowerCase()) && TOKEN.test(k)) headers[k] = headerSafe(v);
  }
  headers['content-type'] = form ? 'application/x-www-form-urlencoded' : 'application/json';
  headers['user-agent'] = USER_AGENT;
  headers[EVENT_ID_HEADER] = w.eventId;
  headers[DELIVERY_ID_HEADER] = w.deliveryId;
  headers[EVENT_TYPE_HEADER] = headerSafe(w.eventType);
  // A custom header named like the signature header in another case must not ride along.
  const signed = withHeaders(
    headers,
    signatureHeaders({
      settings: w.signature,
      advanced: w.advanced,
      secrets: w.secrets.map((s) => s.value),
      body,
      timestamp: Math.floor((w.now ?? Date.now()) / 1000),
      messageId: w.eventId,
    }),
  );
  return { headers: signed, body };
}

/**
 * `base` with `extra` set on top; a name already present in another letter case is replaced, not
 * sent twice (header names are case-insensitive, so a receiver would see both values).
 */
export function withHeaders(base: Record<string, string>, extra: Record<string, string>): Record<string, string> {
  const names = new Set(Object.keys(extra).map((k) => k.toLowerCase()));
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(base)) if (!names.has(k.toLowerCase())) out[k] = v;
  return Object.assign(out, extra);
}
