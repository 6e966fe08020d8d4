/**
 * The `http:` block of an HTTP ingest source: how requests to its URL are verified, where the event
 * type and the idempotency key come from, and what the sender is answered.
 */
import { generateMaskId } from '../core/ids.ts';
import type { Reader} from '../core/settings.ts';
import { TOKEN, absent, got } from '../core/settings.ts';
import { parseVerifier, verifierSecretKeys, type VerifierConfig } from './verifiers/index.ts';

/** Where a value is read from a request: a header, a body path (dotted), or a query parameter. */
export type Location = { header: string } | { body: string } | { query: string };

export interface HttpSourceConfig {
  /** The unguessable part of `/ingest/{mask_id}`; '' until saved, when the stored one is kept or one is generated. */
  mask_id: string;
  verifier: VerifierConfig;
  /** Where each request carries its event type; the source's `event_type` when absent. */
  event_type_location: Location | null;
  /** Values that together identify a request, so a provider's retry stores nothing new. */
  idempotency_keys: Location[];
  /** What a stored request is answered (else Wharf's JSON). */
  custom_response: { body: string; content_type: string } | null;
}

/**
 * Media types a `custom_response` may declare: inert ones only. HTML, SVG and XML (which can
 * carry XHTML) would run a tenant's markup on Wharf's origin.
 */
export const CUSTOM_RESPONSE_TYPES = ['text/plain', 'application/json'] as const;
/** `type/subtype` optionally followed by `; charset=…`: nothing a browser could read as another type. */
const CUSTOM_RESPONSE_TYPE = /^(text\/plain|application\/json)\s*(?:;\s*charset\s*=\s*"?[A-Za-z0-9._-]{1,40}"?\s*)?$/i;

/** Why a `custom_response` may not declare `type`, or null when it may. */
export function customResponseTypeProblem(type: string): string | null {
  if (CUSTOM_RESPONSE_TYPE.test(type)) return null;
  return `must be ${CUSTOM_RESPONSE_TYPES.join(' or ')}, optionally with "; charset=…" (answers are served from Wharf's origin, so nothing a browser would run)${got(type)}`;
}

const KEYS = ['mask_id', 'verifier', 'event_type_location', 'idempotency_keys', 'custom_response'];
/** An ingest URL's unguessable part: what `mask_id` must look like, and all a lookup by mask accepts. */
export const MASK_ID = /^[A-Za-z0-9_-]{16,64}$/;
const PATH = /^[A-Za-z0-9_$-]+(?:\.[A-Za-z0-9_$-]+)*$/;

export { generateMaskId };

export function readLocation(r: Reader, value: unknown, at: string): Location | null {
  const f = r.fields(value, at, ['header', 'body', 'query']);
  if (f === null) return null;
  const given = (['header', 'body', 'query'] as const).filter((k) => !absent(f[k]));
  if (given.length !== 1) {
    r.bad(at, 'must name exactly one of header, body (a dotted path) or query');
    return null;
  }
  const kind = given[0]!;
  const text = r.text(f[kind], `${at}.${kind}`, '', { max: 200 });
  if (!text) return null;
  if (kind === 'header' && !TOKEN.test(text)) r.bad(`${at}.header`, `must be a header name${got(text)}`);
  if (kind === 'body' && !PATH.test(text)) r.bad(`${at}.body`, `must be a dotted path like data.id${got(text)}`);
  if (kind === 'header') return { header: text.toLowerCase() };
  return kind === 'body' ? { body: text } : { query: text };
}

export function parseHttpSource(r: Reader, value: unknown, at: string): HttpSourceConfig {
  const b = r.fields(value, at, KEYS) ?? {};
  let mask = '';
  if (!absent(b.mask_id)) {
    const text = r.text(b.mask_id, `${at}.mask_id`, '', { max: 64, secret: true });
    if (MASK_ID.test(text)) mask = text;
    else r.bad(`${at}.mask_id`, 'must be 16-64 letters, digits, "_" or "-" (it is what keeps the URL unguessable)');
  }
  const verifier = parseVerifier(r, b.verifier, `${at}.verifier`);
  const location = absent(b.event_type_location) ? null : readLocation(r, b.event_type_location, `${at}.event_type_location`);
  const keys = r
    .list(b.idempotency_keys, `${at}.idempotency_keys`, 'locations ({header}, {body} or {query})')
    .flatMap((k, i) => readLocation(r, k, `${at}.idempotency_keys[${i}]`) ?? []);
  let response: HttpSourceConfig['custom_response'] = null;
  if (!absent(b.custom_response)) {
    const c = r.fields(b.custom_response, `${at}.custom_response`, ['body', 'content_type']) ?? {};
    response = {
      body: r.text(c.body, `${at}.custom_response.body`, '', { max: 10_000, empty: true }),
      content_type: r.text(c.content_type, `${at}.custom_response.content_type`, 'text/plain; charset=utf-8', { max: 200 }),
    };
    const problem = customResponseTypeProblem(response.content_type);
    if (problem) r.bad(`${at}.custom_response.content_type`, problem);
  }
  return { mask_id: mask, verifier, event_type_location: location, idempotency_keys: keys, custom_response: response };
}

/** Keys of the block that hold secrets: the verifier's. */
export function httpSecretKeys(config: { verifier?: { type?: unknown } } | undefined): string[] {
  const type = config?.verifier?.type;
  return typeof type === 'string' ? verifierSecretKeys(type as VerifierConfig['type']).map((k) => `verifier.${k}`) : [];
}
