import type { SealedSecret } from '../store/endpoints.ts';
import type { BreakerSettings, DeliveryStatus, EndpointContentType, EndpointStatus, RetrySettings, SignatureSettings, SubscriptionRetry } from '../core/types.ts';

/**
 * What the dispatcher needs to send a delivery: the delivery, its event, its endpoint and its
 * project's settings. A fetched job's are read by the work query (worker.ts `loadLive`); a
 * handoff's are put together by ingest from what it read and wrote in its own transaction
 * (ingest/persist.ts), so a first attempt needs no query to start.
 */
export interface WorkRow {
  id: string;
  project_id: string;
  endpoint_id: string;
  event_id: string;
  status: DeliveryStatus;
  attempts: number;
  event_type: string;
  data: string;
  custom_headers: Record<string, string>;
  url: string;
  http_timeout: number;
  advanced_signatures: boolean;
  content_type: EndpointContentType;
  rate_limit: number;
  rate_limit_duration: number;
  /** The endpoint's sealed credentials, or null when it has none. */
  credentials_enc: string | null;
  endpoint_status: EndpointStatus;
  settings: ProjectWorkSettings;
  /** The retry_config of the subscription that routed this delivery (null: the project's `retry`). */
  retry: SubscriptionRetry | null;
  /**
   * The endpoint's live secrets, sealed, newest first, as ingest read them with its routing. Absent
   * for a fetched job: the dispatcher reads them for the batch (store/endpoints.ts `liveSecretsOf`).
   */
  secrets?: SealedSecret[];
}

export interface ProjectWorkSettings {
  signature: SignatureSettings;
  retry: RetrySettings;
  breaker?: BreakerSettings;
}

/** An endpoint's part of a WorkRow. */
export type EndpointWork = Pick<
  WorkRow,
  'url' | 'http_timeout' | 'advanced_signatures' | 'content_type' | 'rate_limit' | 'rate_limit_duration' | 'credentials_enc' | 'endpoint_status' | 'settings'
> & { secrets: SealedSecret[] };

/** The columns of an endpoint (`alias`) that a WorkRow carries, under their WorkRow names. */
export const endpointWorkColumns = (alias: string): string =>
  ['url', 'http_timeout', 'advanced_signatures', 'content_type', 'rate_limit', 'rate_limit_duration', 'credentials_enc']
    .map((c) => `${alias}.${c}`)
    .concat(`${alias}.status AS endpoint_status`)
    .join(', ');
