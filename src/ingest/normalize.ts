/**
 * Turns what a source received into an `EventInput`: Convoy's envelope (from the REST API or a
 * broker message) or a raw body. Every refusal is a WharfError naming the field, so the API answers
 * 400 with it and a broker source keeps it as the dead letter's reason.
 */
import { WharfError, invalid } from '../core/errors.ts';
import type { EventInput, MessageType } from '../core/types.ts';
import { RESERVED_HEADERS, headerValueProblem } from '../core/headers.ts';
import { TOKEN } from '../core/settings.ts';
import { headers as readHeaders, object, onlyKeys, string } from '../core/validate.ts';
import { checkDepth, checkEventType, checkPrintable, type IngestLimits } from './limits.ts';

const COMMON = ['event_type', 'data', 'custom_headers', 'idempotency_key'] as const;
const MESSAGE_TYPES: readonly MessageType[] = ['single', 'fanout', 'broadcast'];
/** Picks the routing of a broker message, as a broker header or inside `custom_headers`. */
const MESSAGE_TYPE_HEADER = 'x-convoy-message-type';

export interface EnvelopeOptions {
  project_id: string;
  source_id: string | null;
  /** The route's type (REST), or null to take it from the message (brokers). */
  message_type: MessageType | null;
  /** Broker headers, consulted for the message type when `message_type` is null. */
  headers?: Record<string, string>;
  /** REST refuses fields it does not know; broker messages may carry more and keep going. */
  strict: boolean;
  limits: IngestLimits;
}

/** Convoy's event envelope: `{endpoint_id?, owner_id?, event_type, data, custom_headers?, idempotency_key?}`. */
export function readEnvelope(raw: unknown, opts: EnvelopeOptions): EventInput {
  const body = object(raw, 'body');
  const custom = readHeaders(body, 'custom_headers');
  let type = opts.message_type ?? messageTypeOf(body, custom, opts.headers ?? {});
  // POST /events takes owner_id in place of endpoint_id (Convoy's event request has both): that
  // event goes to every endpoint of the owner, as a fanout does.
  if (type === 'single' && opts.message_type !== null && (body.endpoint_id === undefined || body.endpoint_id === null || body.endpoint_id === '')) {
    if (body.owner_id !== undefined && body.owner_id !== null && body.owner_id !== '') type = 'fanout';
  }
  if (opts.strict) {
    const target = opts.message_type === 'single' ? ['endpoint_id', 'owner_id'] : type === 'fanout' ? ['owner_id'] : [];
    onlyKeys(body, [...target, ...COMMON]);
  }
  const eventType = checkEventType(string(body, 'event_type', { required: true })!, 'event_type');
  if (!('data' in body) || body.data === undefined) throw invalid('data', 'is required');
  // Before it is serialised: JSON.stringify recurses, and every reader after it would too.
  checkDepth(body.data, 'data', opts.limits);
  const printable = (key: string, max: number): string | null => {
    const optional = key === 'idempotency_key';
    const v = string(body, key, { required: !optional, max, empty: optional });
    // Convoy's clients send "" for a key they do not set: empty means absent.
    return v === undefined || v === '' ? null : checkPrintable(v, key);
  };
  // The routing header chose the type; it is not sent on to endpoints.
  for (const name of Object.keys(custom)) if (name.toLowerCase() === MESSAGE_TYPE_HEADER) delete custom[name];
  return {
    project_id: opts.project_id,
    source_id: opts.source_id,
    message_type: type,
    endpoint_id: type === 'single' ? printable('endpoint_id', 200) : null,
    owner_id: type === 'fanout' ? printable('owner_id', 200) : null,
    event_type: eventType,
    data: JSON.stringify(body.data),
    custom_headers: custom,
    idempotency_key: printable('idempotency_key', 500),
  };
}

/**
 * The header says, where it is given; otherwise the envelope's own fields do: an `endpoint_id`
 * means single, an `owner_id` fanout, neither broadcast (routed by subscriptions).
 */
function messageTypeOf(body: Record<string, unknown>, custom: Record<string, string>, headers: Record<string, string>): MessageType {
  const fromCustom = Object.entries(custom).find(([k]) => k.toLowerCase() === MESSAGE_TYPE_HEADER)?.[1];
  const given = headers[MESSAGE_TYPE_HEADER] ?? fromCustom;
  if (given !== undefined) {
    const value = given.trim().toLowerCase() as MessageType;
    if (!MESSAGE_TYPES.includes(value)) {
      throw new WharfError('WHARF_ERR_INVALID', `${MESSAGE_TYPE_HEADER}: must be single, fanout or broadcast (got ${JSON.stringify(given)})`, {
        status: 400,
        field: MESSAGE_TYPE_HEADER,
      });
    }
    return value;
  }
  if (body.endpoint_id !== undefined && body.endpoint_id !== null) return 'single';
  if (body.owner_id !== undefined && body.owner_id !== null) return 'fanout';
  return 'broadcast';
}

/**
 * Broker headers a source forwards to endpoints as custom headers: the ones it names (or all for
 * '*'), except Wharf's own, routing headers, and values that cannot be sent as a header as they
 * are (control characters, non-ASCII): those stay in the event's `headers` for inspection only.
 */
export function forwardedHeaders(headers: Record<string, string>, forward: readonly string[] | '*'): Record<string, string> {
  const out: Record<string, string> = {};
  const wanted = forward === '*' ? null : new Set(forward.map((h) => h.toLowerCase()));
  for (const [name, value] of Object.entries(headers)) {
    const lower = name.toLowerCase();
    if (wanted && !wanted.has(lower)) continue;
    if (lower === MESSAGE_TYPE_HEADER || lower.startsWith('x-wharf-') || RESERVED_HEADERS.has(lower)) continue;
    if (!TOKEN.test(name) || headerValueProblem(value) !== null) continue;
    out[name] = value;
  }
  return out;
}
