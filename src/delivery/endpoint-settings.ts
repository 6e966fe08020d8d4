/**
 * An endpoint's settings as the REST API and the config file both take them: one set of rules
 * (bounds, formats) and one set of defaults, so the two can never disagree.
 */
import { absent, got, type Reader } from '../core/settings.ts';
import { CONTENT_TYPES, type EndpointFields, type SignatureScheme } from '../core/types.ts';
import { CREDENTIAL_KEYS, readCredentials, type EndpointCredentials } from './credentials.ts';
import { newSecretProblem } from './signatures.ts';

/** What an endpoint gets for each setting left out (`name` and `url` have none). */
export const ENDPOINT_DEFAULTS: Omit<EndpointFields, 'name' | 'url'> = Object.freeze({
  owner_id: null,
  description: '',
  http_timeout: 10,
  advanced_signatures: true,
  support_email: null,
  notification_url: null,
  content_type: 'application/json',
  rate_limit: 0,
  rate_limit_duration: 60,
});

const EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;

export type EndpointSettings = Partial<EndpointFields> & { secret?: string; credentials?: EndpointCredentials; is_disabled?: boolean };

/**
 * The settings present in `e`, checked; absent ones are left out (a PUT keeps them). A nullable
 * setting given as null is cleared. Problems go to `r` under `at` (`at.http_timeout`).
 */
export function readEndpointSettings(r: Reader, e: Record<string, unknown>, at: string, scheme: SignatureScheme): EndpointSettings {
  const out: EndpointSettings = {};
  const has = (k: string): boolean => k in e && (e[k] !== null || NULLABLE.has(k));
  const path = (k: string): string => `${at}.${k}`;
  if (has('name')) out.name = r.text(e.name, path('name'), '', { max: 200 });
  if (has('url')) out.url = r.url(e.url, path('url'));
  if (has('owner_id')) out.owner_id = r.optional(e.owner_id, path('owner_id'), 200);
  if (has('description')) out.description = r.text(e.description, path('description'), '', { max: 2000, empty: true });
  if (has('secret')) {
    const secret = r.optional(e.secret, path('secret'), 1024, true);
    const why = secret === null ? null : newSecretProblem(scheme, secret);
    if (why) r.bad(path('secret'), `${why} for the ${scheme} scheme`);
    if (secret !== null) out.secret = secret;
  }
  if (has('http_timeout')) out.http_timeout = r.integer(e.http_timeout, path('http_timeout'), 1, 300, ENDPOINT_DEFAULTS.http_timeout);
  if (has('advanced_signatures')) out.advanced_signatures = r.boolean(e.advanced_signatures, path('advanced_signatures'), true);
  if (has('support_email')) {
    const email = r.optional(e.support_email, path('support_email'), 320);
    if (email !== null && !EMAIL.test(email)) r.bad(path('support_email'), `must be an email address${got(email)}`);
    out.support_email = email;
  }
  if (has('notification_url')) out.notification_url = absent(e.notification_url) ? null : r.url(e.notification_url, path('notification_url'), null) || null;
  if (has('content_type')) out.content_type = r.choice(e.content_type, path('content_type'), CONTENT_TYPES, ENDPOINT_DEFAULTS.content_type);
  if (has('rate_limit')) out.rate_limit = r.integer(e.rate_limit, path('rate_limit'), 0, 1_000_000, 0);
  if (has('rate_limit_duration')) out.rate_limit_duration = r.integer(e.rate_limit_duration, path('rate_limit_duration'), 1, 86_400, 60);
  if (CREDENTIAL_KEYS.some((k) => k in e)) out.credentials = readCredentials(r, e, at);
  if (has('is_disabled')) out.is_disabled = r.boolean(e.is_disabled, path('is_disabled'), false);
  if (has('events')) r.integer(e.events, path('events'), 0, Number.MAX_SAFE_INTEGER, 0);
  return out;
}

const NULLABLE = new Set(['owner_id', 'support_email', 'notification_url', 'description', 'secret']);
