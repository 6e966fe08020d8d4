/**
 * Every portal query goes through a link's scope: its project, and the endpoints of its owner
 * (read at request time, so endpoints added later appear) or its listed endpoints. An id from a
 * URL or a form outside the scope is simply not found.
 */
import type { DeliveryStatus, EndpointContentType, EndpointStatus } from '../core/types.ts';
import { UUID_RE } from '../core/ids.ts';
import type { PortalLink } from '../store/portal-links.ts';
import type { Queryable } from '../store/queryable.ts';

export interface Scope {
  projectId: string;
  ownerId: string | null;
  endpointIds: string[];
}

export const scopeOf = (link: PortalLink): Scope => ({ projectId: link.project_id, ownerId: link.owner_id, endpointIds: link.endpoint_ids });

/** The scope as SQL over `endpoints e`, with its three parameters starting at `$first`. */
function scopeSql(scope: Scope, first: number): { sql: string; params: unknown[] } {
  return {
    sql: `e.project_id = $${first} AND (e.owner_id = $${first + 1} OR e.id = ANY($${first + 2}::text[]))`,
    params: [scope.projectId, scope.ownerId, scope.endpointIds],
  };
}

export interface PortalEndpoint {
  id: string;
  name: string;
  url: string;
  status: EndpointStatus;
  http_timeout: number;
  content_type: EndpointContentType;
  support_email: string | null;
  description: string;
  created_at: Date;
  updated_at: Date;
}

const ENDPOINT_COLUMNS = 'e.id, e.name, e.url, e.status, e.http_timeout, e.content_type, e.support_email, e.description, e.created_at, e.updated_at';
/** A portal page lists an owner's endpoints whole; this bounds one page of them. */
export const MAX_ENDPOINTS = 500;

export async function scopedEndpoints(db: Queryable, scope: Scope): Promise<PortalEndpoint[]> {
  const s = scopeSql(scope, 1);
  const { rows } = await db.query<PortalEndpoint>(
    `SELECT ${ENDPOINT_COLUMNS} FROM endpoints e WHERE ${s.sql} ORDER BY e.name, e.id LIMIT ${MAX_ENDPOINTS}`,
    s.params,
  );
  return rows;
}

/** One endpoint of the scope, or null (also for every id outside it). */
export async function scopedEndpoint(db: Queryable, scope: Scope, id: string, options: { forUpdate?: boolean } = {}): Promise<PortalEndpoint | null> {
  const s = scopeSql(scope, 2);
  const { rows } = await db.query<PortalEndpoint>(
    `SELECT ${ENDPOINT_COLUMNS} FROM endpoints e WHERE e.id = $1 AND ${s.sql}${options.forUpdate ? ' FOR UPDATE' : ''}`,
    [id, ...s.params],
  );
  return rows[0] ?? null;
}

export interface DeliveryFilter {
  statuses: DeliveryStatus[];
  endpointId: string | null;
  eventType: string | null;
  from: Date | null;
  to: Date | null;
  /** Keyset cursor: deliveries older than this id (UUIDv7 ids sort by creation). */
  before: string | null;
  /** Rows per page. */
  perPage: number;
}

export interface DeliveryListRow {
  id: string;
  endpoint_id: string;
  endpoint_name: string;
  event_type: string;
  status: DeliveryStatus;
  attempts: number;
  last_status_code: number | null;
  latency_ms: number | null;
  created_at: Date;
}

/** One page of the scope's deliveries, newest first; `limit + 1` rows tell whether more exist. */
export async function scopedDeliveries(db: Queryable, scope: Scope, f: DeliveryFilter): Promise<DeliveryListRow[]> {
  const s = scopeSql(scope, 1);
  const params = [...s.params];
  const where = [`d.project_id = $1`, s.sql];
  const add = (sql: (n: number) => string, value: unknown): void => {
    params.push(value);
    where.push(sql(params.length));
  };
  if (f.statuses.length > 0) add((n) => `d.status = ANY($${n}::text[])`, f.statuses);
  if (f.endpointId !== null) add((n) => `d.endpoint_id = $${n}`, f.endpointId);
  if (f.eventType !== null) add((n) => `d.event_type = $${n}`, f.eventType);
  if (f.from !== null) add((n) => `d.created_at >= $${n}`, f.from);
  if (f.to !== null) add((n) => `d.created_at < $${n}`, f.to);
  if (f.before !== null) add((n) => `d.id < $${n}`, f.before);
  params.push(f.perPage + 1);
  // The latest attempt's latency comes from the attempts index, one row per listed delivery.
  const { rows } = await db.query<DeliveryListRow>(
    `SELECT d.id, d.endpoint_id, e.name AS endpoint_name, d.event_type, d.status, d.attempts, d.last_status_code,
            a.latency_ms, d.created_at
     FROM deliveries d
     JOIN endpoints e ON e.project_id = d.project_id AND e.id = d.endpoint_id
     LEFT JOIN LATERAL (
       SELECT latency_ms FROM delivery_attempts WHERE delivery_id = d.id ORDER BY attempt DESC, created_at DESC LIMIT 1
     ) a ON true
     WHERE ${where.join(' AND ')}
     ORDER BY d.id DESC LIMIT $${params.length}`,
    params,
  );
  return rows;
}

/** The endpoint id of a delivery in the scope, or null (not a UUID, another owner's, another project's). */
export async function deliveryEndpointInScope(db: Queryable, scope: Scope, deliveryId: string): Promise<string | null> {
  if (!UUID_RE.test(deliveryId)) return null;
  const s = scopeSql(scope, 2);
  const { rows } = await db.query<{ endpoint_id: string }>(
    `SELECT d.endpoint_id FROM deliveries d JOIN endpoints e ON e.project_id = d.project_id AND e.id = d.endpoint_id
     WHERE d.id = $1 AND d.project_id = $2 AND ${s.sql}`,
    [deliveryId, ...s.params],
  );
  return rows[0]?.endpoint_id ?? null;
}

export interface EventPayload {
  id: string;
  event_type: string;
  data: string;
  custom_headers: Record<string, string>;
  created_at: Date;
}

export async function eventOf(db: Queryable, projectId: string, eventId: string): Promise<EventPayload | null> {
  const { rows } = await db.query<EventPayload>(
    'SELECT id, event_type, data, custom_headers, created_at FROM events WHERE project_id = $1 AND id = $2',
    [projectId, eventId],
  );
  return rows[0] ?? null;
}

export interface AttemptRow {
  id: string;
  attempt: number;
  url: string;
  request_headers: Record<string, string>;
  status_code: number | null;
  latency_ms: number;
  response_headers: Record<string, string | string[]>;
  response_body: string;
  error: string | null;
  error_code: string | null;
  created_at: Date;
}

export async function attemptsOf(db: Queryable, deliveryId: string): Promise<AttemptRow[]> {
  const { rows } = await db.query<AttemptRow>(
    `SELECT id, attempt, url, request_headers, status_code, latency_ms, response_headers, response_body, error, error_code, created_at
     FROM delivery_attempts WHERE delivery_id = $1 ORDER BY attempt, created_at`,
    [deliveryId],
  );
  return rows;
}
