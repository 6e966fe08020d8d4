/**
 * The source form: its fields, what a source from the API fills them with, and the API body they
 * become. Nothing is checked here: the sources API checks the body and its 400 names the field,
 * which the form shows. Secrets are never put back into a page: their inputs are always blank,
 * and blank keeps the stored secret (the API's "********") while the verifier keeps its type.
 */
import { REDACTED, redactKeys } from '../core/redact.ts';
import { sourceSecretKeys, type SourceType } from '../sources/settings.ts';
import { VERIFIER_KEYS, VERIFIER_TYPES, verifierSecretKeys, type VerifierType } from '../sources/verifiers/index.ts';
import { ApiRefusal, type ApiData } from './api-client.ts';

export { VERIFIER_TYPES };

/** What a custom response may be served as (the API refuses anything a browser would run). */
export const RESPONSE_TYPES = ['text/plain; charset=utf-8', 'application/json'] as const;

/** A verifier's fields on the form are its API keys with this prefix (`v_secret`). */
const V = 'v_';

export interface SourceForm {
  id: string;
  name: string;
  type: string;
  event_type: string;
  /** `header:X-Event-Type`, `body:data.type` or `query:type`. */
  event_type_location: string;
  /** Such locations, one per line or comma-separated. */
  idempotency_keys: string;
  /** Header names, comma-separated, or `*`. */
  forward_headers: string;
  max_body_bytes: string;
  verifier_type: string;
  /** The verifier's own fields: v_header, v_secret, v_username… (VERIFIER_KEYS). */
  verifier: Record<string, string>;
  custom_response_body: string;
  custom_response_type: string;
  /** Broker sources: envelope or raw, the header with the event type, and the type's block as JSON. */
  format: string;
  event_type_header: string;
  settings: string;
}

const TEXT_FIELDS = [
  'id', 'name', 'type', 'event_type', 'event_type_location', 'idempotency_keys', 'forward_headers', 'max_body_bytes', 'verifier_type',
  'custom_response_body', 'custom_response_type', 'format', 'event_type_header', 'settings',
] as const;

/** Every verifier key of any type, once. */
const ALL_VERIFIER_KEYS = [...new Set(Object.values(VERIFIER_KEYS).flat())];

export function readSourceForm(body: unknown): SourceForm {
  const b = (body ?? {}) as Record<string, unknown>;
  const str = (k: string): string => (typeof b[k] === 'string' ? (b[k] as string).replace(/\r\n/g, '\n') : '');
  const out = { verifier: {} } as SourceForm;
  for (const k of TEXT_FIELDS) out[k] = str(k);
  for (const k of ALL_VERIFIER_KEYS) out.verifier[k] = str(`${V}${k}`);
  return out;
}

export const EMPTY_SOURCE: SourceForm = { ...readSourceForm({}), type: 'http', verifier_type: 'hmac', custom_response_type: RESPONSE_TYPES[0], format: 'envelope' };

type Location = { header?: string; body?: string; query?: string };
const locationText = (l: Location | null | undefined): string => {
  if (!l) return '';
  const kind = (['header', 'body', 'query'] as const).find((k) => typeof l[k] === 'string');
  return kind ? `${kind}:${l[kind]}` : '';
};

/** `kind:value` as the API's location; anything else as typed, for the API to refuse by name. */
function location(text: string): unknown {
  const m = /^\s*(header|body|query)\s*:\s*(\S+)\s*$/.exec(text);
  return m ? { [m[1]!]: m[2] } : text.trim();
}

/** The form filled from a source as the API answers it (credentials left blank). */
export function sourceFormOf(s: ApiData): SourceForm {
  const str = (v: unknown): string => (v === null || v === undefined ? '' : String(v));
  const forward = s.forward_headers === '*' ? '*' : ((s.forward_headers ?? []) as string[]).join(', ');
  const common = { ...EMPTY_SOURCE, id: str(s.uid), name: str(s.name), type: str(s.type), event_type: str(s.event_type), forward_headers: forward, max_body_bytes: str(s.max_body_bytes) };
  if (s.type !== 'http') {
    // The block as the API shows it: its credentials already "********", which keep them when sent back.
    return { ...common, format: str(s.format), event_type_header: str(s.event_type_header), settings: JSON.stringify(s[s.type] ?? {}, null, 2) };
  }
  const http = (s.http ?? {}) as ApiData;
  const v = (http.verifier ?? { type: 'none' }) as Record<string, unknown>;
  const secrets = verifierSecretKeys(v.type as VerifierType);
  const verifier: Record<string, string> = {};
  for (const k of ALL_VERIFIER_KEYS) verifier[k] = secrets.includes(k) ? '' : str(v[k]);
  return {
    ...common,
    verifier_type: str(v.type),
    verifier,
    event_type_location: locationText(http.event_type_location),
    idempotency_keys: ((http.idempotency_keys ?? []) as Location[]).map(locationText).join('\n'),
    custom_response_body: str(http.custom_response?.body),
    custom_response_type: str(http.custom_response?.content_type) || RESPONSE_TYPES[0],
  };
}

const opt = (v: string): string | undefined => (v.trim() === '' ? undefined : v.trim());
/** Whole numbers as numbers; anything else as typed, for the API to refuse by name. */
const num = (v: string): number | string | undefined => (v.trim() === '' ? undefined : /^\d{1,12}$/.test(v.trim()) ? Number(v.trim()) : v.trim());

/** Whether the stored source's verifier has a secret at `key` (a blank field keeps it). */
export function keepsSecret(stored: ApiData | null, key: string): boolean {
  const type = stored?.http?.verifier?.type as VerifierType | undefined;
  return type !== undefined && verifierSecretKeys(type).includes(key);
}

/** The verifier block; a blank secret keeps the stored one only when `stored` has this type. */
function verifierBody(f: SourceForm, stored: ApiData | null): Record<string, unknown> {
  const type = f.verifier_type as VerifierType;
  const keys = VERIFIER_KEYS[type] ?? [];
  const secrets = verifierSecretKeys(type);
  const keeps = stored?.http?.verifier?.type === type;
  const out: Record<string, unknown> = { type: f.verifier_type };
  for (const k of keys) {
    const value = f.verifier[k] ?? '';
    if (secrets.includes(k)) out[k] = value === '' && keeps ? REDACTED : value;
    else if (k === 'tolerance') out[k] = num(value);
    else if (k === 'prefix') out[k] = value === '' ? undefined : value;
    else out[k] = opt(value);
  }
  return out;
}

/** A JSON field of the form, parsed; a 400 naming `field` when it is not JSON. */
export function jsonField(value: string, field: string, blank: unknown): unknown {
  if (value.trim() === '') return blank;
  try {
    return JSON.parse(value) as unknown;
  } catch (err) {
    throw new ApiRefusal(400, `${field}: is not JSON (${(err as Error).message.slice(0, 120)})`, field);
  }
}

/** The API body for a create (`stored` null) or an edit of `stored`. */
export function sourceBody(f: SourceForm, stored: ApiData | null): Record<string, unknown> {
  const forward = f.forward_headers.trim() === '*' ? '*' : f.forward_headers.split(',').map((h) => h.trim()).filter((h) => h !== '');
  const body: Record<string, unknown> = {
    ...(stored === null && opt(f.id) ? { id: opt(f.id) } : {}),
    name: f.name.trim(),
    type: f.type,
    event_type: opt(f.event_type),
    forward_headers: forward,
    max_body_bytes: num(f.max_body_bytes),
  };
  if (f.type === 'http') {
    const keys = f.idempotency_keys.split(/[\n,]/).map((k) => k.trim()).filter((k) => k !== '');
    const response = f.custom_response_body !== '' ? { body: f.custom_response_body, content_type: f.custom_response_type || RESPONSE_TYPES[0] } : undefined;
    body.http = {
      verifier: verifierBody(f, stored),
      event_type_location: f.event_type_location.trim() === '' ? undefined : location(f.event_type_location),
      idempotency_keys: keys.map(location),
      custom_response: response,
    };
  } else {
    body.format = f.format || undefined;
    body.event_type_header = opt(f.event_type_header);
    body[f.type] = jsonField(f.settings, `${f.type}`, {});
  }
  return body;
}

/**
 * The broker block as typed, fit to show again after the API refused it: the type's credentials
 * replaced ("********" on an edit of the same type, which keeps the stored ones; blank on a new
 * source, to be typed again). Text that is not JSON cannot be searched for secrets and is dropped.
 */
export function shownSettings(f: SourceForm, stored: ApiData | null): string {
  if (f.type === 'http') return '';
  let block: unknown;
  try {
    block = JSON.parse(f.settings);
  } catch {
    return '';
  }
  if (!block || typeof block !== 'object' || Array.isArray(block)) return '';
  const keys = sourceSecretKeys(f.type as SourceType, block as Record<string, unknown>);
  const keep = stored?.type === f.type;
  return JSON.stringify(redactKeys(block, keys), (_k, v: unknown) => (v === REDACTED && !keep ? '' : v), 2);
}
