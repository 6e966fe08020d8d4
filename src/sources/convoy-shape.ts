/**
 * Convoy's HTTP source, as its API and convoy-go send it, read as Wharf's: `{name, type: "http",
 * provider?, is_disabled, verifier: {type, hmac | basic_auth | api_key: {…}}, custom_response?,
 * event_type_location?: "request.header.X-Type", idempotency_keys?: ["request.body.id"]}`
 * becomes `{name, type: "http", event_type, http: {verifier, custom_response, event_type_location,
 * idempotency_keys}}`. A body in Wharf's own shape is returned unchanged. What cannot be mapped is
 * refused naming the field, never dropped.
 */
import { invalid } from '../core/errors.ts';
import { customResponseTypeProblem } from './http-settings.ts';

type Json = Record<string, unknown>;

/** The Convoy keys that say a body is in Convoy's shape (Wharf's keeps them under `http`). */
const CONVOY_KEYS = ['verifier', 'provider', 'is_disabled', 'custom_response', 'event_type_location', 'idempotency_keys', 'body_function', 'header_function'];

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
const unset = (v: unknown): boolean => v === undefined || v === null || v === '';

export function fromConvoySource(given: Json): Json {
  // Wharf's shape wins: Convoy's names that answers show beside `http` (mask_id, verifier,
  // provider) come back when an answer is sent back whole, and say nothing `http` does not.
  const { mask_id: _mask, ...body } = given;
  if (body.http !== undefined && body.type === 'http') {
    const { verifier: _v, provider: _p, ...wharf } = body;
    if (!CONVOY_KEYS.some((k) => k in wharf)) return wharf;
  }
  if (body.type !== 'http' || !CONVOY_KEYS.some((k) => k in body)) return given;
  if (body.http !== undefined) {
    const mixed = CONVOY_KEYS.find((k) => k in body)!;
    throw invalid(mixed, 'is Convoy\'s shape; give it inside "http" with the rest of Wharf\'s, or leave "http" out');
  }
  const { verifier, provider, is_disabled, custom_response, event_type_location, idempotency_keys, body_function, header_function, ...rest } = body;
  if (is_disabled === true) throw invalid('is_disabled', 'is not supported: delete the source, or give its URL to no one');
  if (!unset(body_function) || !unset(header_function)) {
    throw invalid(unset(body_function) ? 'header_function' : 'body_function', 'is not supported: Wharf runs no tenant code; subscriptions filter, endpoints receive the body as sent');
  }
  const http: Json = { verifier: verifierOf(verifier, provider) };
  if (!unset(custom_response)) {
    // Named as the caller sent it (Wharf's own reading would name http.custom_response).
    const type = isObject(custom_response) ? custom_response.content_type : undefined;
    const problem = typeof type === 'string' && type !== '' ? customResponseTypeProblem(type) : null;
    if (problem) throw invalid('custom_response.content_type', problem);
    http.custom_response = custom_response;
  }
  if (!unset(event_type_location)) http.event_type_location = locationOf(event_type_location, 'event_type_location');
  if (Array.isArray(idempotency_keys) && idempotency_keys.length > 0) {
    http.idempotency_keys = idempotency_keys.map((k, i) => locationOf(k, `idempotency_keys[${i}]`));
  } else if (!unset(idempotency_keys) && !Array.isArray(idempotency_keys)) {
    throw invalid('idempotency_keys', 'must be a list such as ["request.header.X-Delivery-Id"]');
  }
  // Convoy types such an event with the source's mask; the source's own id serves here.
  const eventType = unset(rest.event_type) && http.event_type_location === undefined ? rest.id : rest.event_type;
  return { ...rest, ...(eventType === undefined ? {} : { event_type: eventType }), http };
}

/** Convoy's `request.header.X`, `request.query.x`, `request.body.a.b` as a Wharf location. */
function locationOf(value: unknown, field: string): Json {
  const m = typeof value === 'string' ? /^(?:request|req)\.(header|query|queryparam|body)\.(.+)$/i.exec(value) : null;
  if (!m) throw invalid(field, `must be request.header.<name>, request.query.<name> or request.body.<path> (got ${JSON.stringify(value)})`);
  const kind = m[1]!.toLowerCase();
  return kind === 'header' ? { header: m[2] } : kind === 'body' ? { body: m[2] } : { query: m[2] };
}

/** Convoy's nested verifier (and provider presets) as Wharf's flat one. */
function verifierOf(verifier: unknown, provider: unknown): Json {
  const v = isObject(verifier) ? verifier : {};
  if (!unset(provider)) {
    if (provider !== 'github' && provider !== 'shopify') throw invalid('provider', `must be github or shopify (got ${JSON.stringify(provider)})`);
    const hmac = isObject(v.hmac) ? v.hmac : {};
    return { type: provider, secret: hmac.secret };
  }
  switch (v.type) {
    case 'hmac': {
      const h = isObject(v.hmac) ? v.hmac : {};
      return { type: 'hmac', header: h.header, hash: h.hash, secret: h.secret, ...(unset(h.encoding) ? {} : { encoding: h.encoding }) };
    }
    case 'basic_auth': {
      const b = isObject(v.basic_auth) ? v.basic_auth : {};
      return { type: 'basic_auth', username: b.username, password: b.password };
    }
    case 'api_key': {
      const a = isObject(v.api_key) ? v.api_key : {};
      return { type: 'api_key', header_name: a.header_name, header_value: a.header_value };
    }
    case 'noop':
      return { type: 'none' };
    default:
      throw invalid('verifier.type', `must be one of noop, hmac, basic_auth, api_key (got ${JSON.stringify(v.type)})`);
  }
}

/** A source's verifier in Convoy's nested shape, for answers (secrets already redacted). */
export function convoyVerifier(flat: Json | undefined): Json | null {
  if (!flat) return null;
  const { type, ...fields } = flat;
  switch (type) {
    case 'hmac':
      return { type: 'hmac', hmac: { header: fields.header, hash: fields.hash, secret: fields.secret, encoding: fields.encoding }, basic_auth: null, api_key: null };
    case 'basic_auth':
      return { type: 'basic_auth', hmac: null, basic_auth: { username: fields.username, password: fields.password }, api_key: null };
    case 'api_key':
      return { type: 'api_key', hmac: null, basic_auth: null, api_key: { header_name: fields.header_name, header_value: fields.header_value } };
    case 'none':
      return { type: 'noop', hmac: null, basic_auth: null, api_key: null };
    default:
      // Presets (github, shopify, stripe, standard_webhooks) verify an HMAC of their own.
      return { type: 'hmac', hmac: { secret: fields.secret }, basic_auth: null, api_key: null };
  }
}
