/**
 * The endpoint form: what its fields are called, what an endpoint from the API fills them with,
 * and the API body they become. Nothing is checked here: the API checks the body and its 400
 * names the field, which the form shows.
 */
import { REDACTED } from '../core/redact.ts';
import type { ApiData } from './api-client.ts';

/** The form's authentication kinds: OAuth2 by how the client authenticates (auth.ts). */
export const AUTH_TYPES = ['', 'api_key', 'basic_auth', 'oauth2', 'oauth2_assertion'] as const;
/** How signatures are sent (the API's advanced_signatures): `t=…,v1=…` over time and body, or over the body alone. */
export const SIGNATURE_FORMATS = ['advanced', 'simple'] as const;
export const CONTENT_TYPES = ['application/json', 'application/x-www-form-urlencoded'] as const;

export interface EndpointForm {
  name: string;
  url: string;
  owner_id: string;
  description: string;
  http_timeout: string;
  rate_limit: string;
  rate_limit_duration: string;
  content_type: string;
  support_email: string;
  notification_url: string;
  /**
   * '' none, api_key, basic_auth, oauth2 (client credentials with a shared secret),
   * oauth2_assertion (client credentials with an ES256-signed JWT assertion, RFC 7523).
   */
  auth_type: string;
  header_name: string;
  header_value: string;
  username: string;
  password: string;
  oauth2_url: string;
  client_id: string;
  client_secret: string;
  scope: string;
  audience: string;
  /** The EC P-256 private JWK (JSON) that signs assertions; blank keeps the stored one. */
  signing_key: string;
  /** The assertion's iss and sub; blank: the client id. */
  issuer: string;
  subject: string;
  /** advanced, simple; '' leaves it as it is. */
  signature_format: string;
  client_cert: string;
  client_key: string;
  ca_certificate: string;
  /** "on": take mTLS off; "on" for the CA: trust only the public CAs again. */
  remove_mtls: string;
  remove_ca: string;
  skip_ping: string;
}

const FIELDS: (keyof EndpointForm)[] = [
  'name', 'url', 'owner_id', 'description', 'http_timeout', 'rate_limit', 'rate_limit_duration', 'content_type', 'support_email',
  'notification_url', 'auth_type', 'header_name', 'header_value', 'username', 'password', 'oauth2_url', 'client_id', 'client_secret', 'scope',
  'audience', 'signing_key', 'issuer', 'subject', 'signature_format', 'client_cert', 'client_key', 'ca_certificate',
  'remove_mtls', 'remove_ca', 'skip_ping',
];

export function readForm(body: unknown): EndpointForm {
  const b = (body ?? {}) as Record<string, unknown>;
  const out = {} as EndpointForm;
  // Browsers send a textarea's lines ending in CRLF; PEM is stored as it would be from a file.
  for (const k of FIELDS) out[k] = typeof b[k] === 'string' ? (b[k] as string).replace(/\r\n/g, '\n') : '';
  return out;
}

export const EMPTY_FORM: EndpointForm = {
  ...readForm({}),
  http_timeout: '30',
  rate_limit: '0',
  rate_limit_duration: '60',
  content_type: 'application/json',
  signature_format: 'advanced',
};

/** The form's authentication kind of an endpoint as the API answers it ('' none). */
export function authKindOf(e: ApiData): string {
  const a = e?.authentication as ApiData;
  if (!a) return '';
  return a.type === 'oauth2' && a.oauth2?.authentication_type === 'client_assertion' ? 'oauth2_assertion' : String(a.type);
}

/** The form filled from an endpoint as the API answers it (secrets left blank: blank keeps them). */
export function formOf(e: ApiData): EndpointForm {
  const a = e.authentication as ApiData;
  const oauth2 = a?.type === 'oauth2' ? (a.oauth2 as ApiData) : null;
  const str = (v: unknown): string => (v === null || v === undefined ? '' : String(v));
  return {
    ...EMPTY_FORM,
    name: str(e.name),
    url: str(e.url),
    owner_id: str(e.owner_id),
    description: str(e.description),
    http_timeout: str(e.http_timeout),
    rate_limit: str(e.rate_limit),
    rate_limit_duration: str(e.rate_limit_duration),
    content_type: str(e.content_type),
    support_email: str(e.support_email),
    notification_url: str(e.notification_url),
    auth_type: authKindOf(e),
    header_name: str(a?.api_key?.header_name),
    username: str(a?.basic_auth?.username),
    oauth2_url: str(oauth2?.url),
    client_id: str(oauth2?.client_id),
    scope: str(oauth2?.scope),
    audience: str(oauth2?.audience),
    issuer: str(oauth2?.issuer),
    subject: str(oauth2?.subject),
    signature_format: e.advanced_signatures === false ? 'simple' : 'advanced',
    client_cert: str(e.mtls_client_cert?.client_cert),
  };
}

/** Whole numbers as numbers; anything else as typed, for the API to refuse by name. */
const num = (v: string): number | string => (/^\d{1,9}$/.test(v.trim()) ? Number(v.trim()) : v);
const opt = (v: string): string | null => (v.trim() === '' ? null : v.trim());

/**
 * The API body for a create (`stored` null) or an edit of `stored`. On an edit a blank secret
 * field sends back REDACTED, which the API reads as "keep what is stored", but only while the
 * authentication keeps its kind: another kind's blank secret is sent blank, for the API to ask for.
 */
export function bodyOf(f: EndpointForm, stored: ApiData | null): Record<string, unknown> {
  const editing = stored !== null;
  const body: Record<string, unknown> = {
    name: f.name,
    url: f.url.trim(),
    http_timeout: num(f.http_timeout),
    rate_limit: num(f.rate_limit),
    rate_limit_duration: num(f.rate_limit_duration),
    content_type: f.content_type,
  };
  for (const k of ['owner_id', 'description', 'support_email', 'notification_url'] as const) {
    const v = opt(f[k]);
    if (v !== null || editing) body[k] = v;
  }
  const keeps = editing && authKindOf(stored) === f.auth_type;
  const secret = (v: string, kept = keeps): string => (v === '' && kept ? REDACTED : v);
  if (f.auth_type === 'api_key') body.authentication = { type: 'api_key', header_name: f.header_name.trim(), header_value: secret(f.header_value) };
  else if (f.auth_type === 'basic_auth') body.authentication = { type: 'basic_auth', username: f.username, password: secret(f.password) };
  else if (f.auth_type === 'oauth2' || f.auth_type === 'oauth2_assertion') {
    const common = { type: 'oauth2', url: f.oauth2_url.trim(), client_id: f.client_id.trim(), scope: opt(f.scope), audience: opt(f.audience) };
    body.authentication =
      f.auth_type === 'oauth2'
        ? { ...common, authentication_type: 'shared_secret', client_secret: secret(f.client_secret) }
        : { ...common, authentication_type: 'client_assertion', signing_key: secret(f.signing_key.trim()), issuer: opt(f.issuer), subject: opt(f.subject) };
  }
  else if (f.auth_type === '' && editing) body.authentication = null;
  if (f.remove_mtls === 'on') {
    if (editing) body.mtls_client_cert = null;
  } else if (f.client_cert.trim() !== '') {
    body.mtls_client_cert = { client_cert: f.client_cert.trim(), client_key: secret(f.client_key.trim(), editing && Boolean(stored.mtls_client_cert)) };
  }
  if (f.remove_ca === 'on') {
    if (editing) body.ca_certificate = null;
  } else if (f.ca_certificate.trim() !== '') {
    body.ca_certificate = f.ca_certificate.trim();
  }
  if (f.signature_format === 'advanced' || f.signature_format === 'simple') body.advanced_signatures = f.signature_format === 'advanced';
  if (f.skip_ping === 'on') body.skip_ping_validation = true;
  return body;
}
