/** The public shapes every part of Wharf shares. Rows use the REST API's snake_case names. */

export type ProjectType = 'outgoing' | 'incoming';
export type SignatureScheme = 'convoy' | 'standard-webhooks';
export type HashAlgorithm = 'SHA256' | 'SHA512';
export type SignatureEncoding = 'hex' | 'base64';

export interface SignatureSettings {
  scheme: SignatureScheme;
  /** Header that carries a Convoy signature (ignored by standard-webhooks, whose headers are fixed). */
  header: string;
  hash: HashAlgorithm;
  encoding: SignatureEncoding;
}

export type RetryStrategy = 'linear' | 'exponential';

export interface RetrySettings {
  strategy: RetryStrategy;
  /** Base delay in seconds. */
  duration: number;
  /** Retries after the first attempt; a delivery makes at most retry_count + 1 attempts. */
  retry_count: number;
}

/** A subscription's retry_config: the parts it gives override its project's `retry`. */
export type SubscriptionRetry = Partial<RetrySettings>;

/** When an endpoint that keeps failing is disabled (DESIGN.md §9: Convoy's circuit breaker). */
export interface BreakerSettings {
  /** Trip after this many consecutive failed attempts (0 = off). Default 10. */
  consecutive_failures: number;
  /**
   * Or when, over the last `window_seconds`, at least `minimum_requests` attempts were made and the
   * failure rate (percent) reached `failure_rate`. Defaults 60 s, 10, 50 %. failure_rate 0 = off.
   */
  window_seconds: number;
  minimum_requests: number;
  failure_rate: number;
  /**
   * An `endpoint.failing` alert goes out when this many attempts in a row have failed, once per
   * failing streak (0 = never). Default 5, so a team hears before the breaker disables at 10.
   */
  alert_after: number;
}

/** Wharf's alerts about endpoints (Convoy's meta events). */
export const ALERT_TYPES = ['endpoint.status_changed', 'endpoint.failing'] as const;
export type AlertType = (typeof ALERT_TYPES)[number];

/** Where a project's alerts go: its meta-event URL, signed with its own secret (sealed at rest). */
export interface MetaEventSettings {
  url: string;
  event_types: AlertType[];
  secret_enc: string;
}

export interface Project {
  id: string;
  name: string;
  type: ProjectType;
  /**
   * The config file named the type, so it decides the project's traffic, as Convoy's does: an
   * outgoing project takes events from the REST API and broker sources, an incoming one from HTTP
   * sources. A project that names none takes both (so configs written before this keep working).
   */
  type_enforced: boolean;
  signature: SignatureSettings;
  retry: RetrySettings;
  breaker: BreakerSettings;
  meta_events: MetaEventSettings | null;
}

export type EndpointContentType = 'application/json' | 'application/x-www-form-urlencoded';
export const CONTENT_TYPES: readonly EndpointContentType[] = ['application/json', 'application/x-www-form-urlencoded'];

/** An endpoint's settable keys, as the API and the config file both take them. */
export const ENDPOINT_SETTINGS = [
  'name',
  'url',
  'owner_id',
  'description',
  'secret',
  'http_timeout',
  'advanced_signatures',
  'support_email',
  'notification_url',
  'content_type',
  'rate_limit',
  'rate_limit_duration',
  'authentication',
  'mtls_client_cert',
  'ca_certificate',
  // Convoy's: is_disabled creates or turns an endpoint inactive; state changes are posted to the
  // chat webhook URLs (kept sealed with the credentials, dispatch/alerts.ts).
  'is_disabled',
  'slack_webhook_url',
  'teams_webhook_url',
  // Convoy's endpoint answer counts its events; a client that sends an answer back sends it too.
  'events',
] as const;

export type EndpointStatus = 'active' | 'inactive' | 'paused' | 'pending';

export interface Endpoint {
  id: string;
  project_id: string;
  name: string;
  url: string;
  owner_id: string | null;
  description: string;
  http_timeout: number;
  advanced_signatures: boolean;
  support_email: string | null;
  /** Where alerts about this endpoint go (signed with its secrets), besides the project's meta-event URL. */
  notification_url: string | null;
  /** The body as JSON, or form-encoded (nested data in bracket notation); signed as sent. */
  content_type: EndpointContentType;
  /** Deliveries per `rate_limit_duration` seconds, across all workers; 0 = no limit. */
  rate_limit: number;
  rate_limit_duration: number;
  status: EndpointStatus;
  created_at: string;
  updated_at: string;
}

/** The writable fields of an endpoint, already validated. */
export type EndpointFields = Pick<
  Endpoint,
  | 'name'
  | 'url'
  | 'owner_id'
  | 'description'
  | 'http_timeout'
  | 'advanced_signatures'
  | 'support_email'
  | 'notification_url'
  | 'content_type'
  | 'rate_limit'
  | 'rate_limit_duration'
>;

/** A secret as the signer needs it: plaintext, newest first among the live ones. */
export interface EndpointSecret {
  id: string;
  value: string;
  created_at: Date;
  expires_at: Date | null;
}

export type MessageType = 'single' | 'fanout' | 'broadcast';

export type DeliveryStatus = 'scheduled' | 'processing' | 'success' | 'failure' | 'retry' | 'discarded';
export const DELIVERY_STATUSES: readonly DeliveryStatus[] = ['scheduled', 'processing', 'success', 'failure', 'retry', 'discarded'];

/** What ingest needs to create an event, whatever its source. */
export interface EventInput {
  project_id: string;
  source_id: string | null;
  message_type: MessageType;
  endpoint_id?: string | null;
  owner_id?: string | null;
  event_type: string;
  /** The JSON text of `data`, exactly as it will be sent. */
  data: string;
  custom_headers: Record<string, string>;
  idempotency_key: string | null;
  /** Headers or attributes the message arrived with (kept for routing and inspection; not sent). */
  headers?: Record<string, string>;
}

export interface EventRecord {
  id: string;
  project_id: string;
  source_id: string | null;
  event_type: string;
  message_type: MessageType;
  endpoint_id: string | null;
  owner_id: string | null;
  idempotency_key: string | null;
  custom_headers: Record<string, string>;
  data: unknown;
  created_at: string;
}

export interface Delivery {
  id: string;
  project_id: string;
  event_id: string;
  endpoint_id: string;
  event_type: string;
  status: DeliveryStatus;
  attempts: number;
  next_attempt_at: string | null;
  last_status_code: number | null;
  last_error: string | null;
  created_at: string;
  updated_at: string;
}

export interface DeliveryAttempt {
  id: string;
  delivery_id: string;
  /** Its delivery's (an attempt's row does not repeat them: migration 020). */
  project_id: string;
  endpoint_id: string;
  attempt: number;
  url: string;
  request_headers: Record<string, string>;
  status_code: number | null;
  latency_ms: number;
  response_headers: Record<string, string>;
  response_body: string;
  error: string | null;
  error_code: string | null;
  created_at: string;
}

/**
 * Why a project may not take traffic of `kind` (events through the REST API and broker sources are
 * `outgoing`, HTTP ingest `incoming`), or null. Only a project whose type was named is held to it.
 */
export function trafficProblem(p: Pick<Project, 'id' | 'type' | 'type_enforced'>, kind: ProjectType): string | null {
  if (!p.type_enforced || p.type === kind) return null;
  return p.type === 'incoming'
    ? `project ${JSON.stringify(p.id)} is an incoming project: its events come from its HTTP sources, not the REST API or brokers`
    : `project ${JSON.stringify(p.id)} is an outgoing project: its events come from the REST API and broker sources, not HTTP ingest`;
}

/** The circuit breaker's settings where neither the config nor the project sets them. */
export const DEFAULT_BREAKER: BreakerSettings = Object.freeze({
  consecutive_failures: 10,
  window_seconds: 60,
  minimum_requests: 10,
  failure_rate: 50,
  alert_after: 5,
});
