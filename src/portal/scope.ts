/**
 * Every portal query goes through a link's scope: its project, and the endpoints of its owner
 * (read at request time, so endpoints added later appear) or its listed endpoints. An id from a
 * URL or a form outside the scope is simply not found.
 */
import type { DeliveryStatus, EndpointContentType, EndpointStatus } from '../core/types.ts';
import { UUID_RE } from '../core/ids.ts';
import { DELIVERY_COLUMNS, type DeliveryRow } from '../dispatch/operations.ts';
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

const ENDPOINT_FIELDS: readonly (keyof PortalEndpoint)[] = ['id', 'name', 'url', 'status', 'http_timeout', 'content_type', 'support_email', 'description', 'created_at', 'updated_at'];
const ENDPOINT_COLUMNS = ENDPOINT_FIELDS.map((f) => `e.${f}`).join(', ');
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
  // The latest attempt's latency: the delivery's own row when it holds its only attempt, else
  // the attempts index, one row per listed delivery.
  const { rows } = await db.query<DeliveryListRow>(
    `SELECT d.id, d.endpoint_id, e.name AS endpoint_name, d.event_type, d.status, d.attempts, d.last_status_code,
            a.latency_ms, d.created_at
     FROM deliveries d
     JOIN endpoints e ON e.project_id = d.project_id AND e.id = d.endpoint_id
     LEFT JOIN LATERAL (
       SELECT latency_ms FROM attempts WHERE project_id = d.project_id AND delivery_id = d.id ORDER BY attempt DESC, created_at DESC LIMIT 1
     ) a ON true
     WHERE ${where.join(' AND ')}
     ORDER BY d.id DESC LIMIT $${params.length}`,
    params,
  );
  return rows;
}

/** Endpoint columns under a prefix, so they can share a row with a delivery's. */
const ENDPOINT_AS = ENDPOINT_FIELDS.map((f) => `e.${f} AS e__${f}`).join(', ');
const DELIVERY_OF_D = DELIVERY_COLUMNS.split(',').map((c) => `d.${c.trim()}`).join(', ');

export interface ScopedDelivery {
  delivery: DeliveryRow;
  endpoint: PortalEndpoint;
}

/**
 * A delivery of the scope with its endpoint, in one query; null for every other id (not a UUID,
 * another owner's, another project's). `forUpdate` locks the delivery's row only.
 */
export async function scopedDelivery(db: Queryable, scope: Scope, deliveryId: string, options: { forUpdate?: boolean } = {}): Promise<ScopedDelivery | null> {
  if (!UUID_RE.test(deliveryId)) return null;
  const s = scopeSql(scope, 2);
  const { rows } = await db.query<Record<string, unknown>>(
    `SELECT ${DELIVERY_OF_D}, ${ENDPOINT_AS}
     FROM deliveries d JOIN endpoints e ON e.project_id = d.project_id AND e.id = d.endpoint_id
     WHERE d.id = $1 AND d.project_id = $2 AND ${s.sql}${options.forUpdate ? ' FOR UPDATE OF d' : ''}`,
    [deliveryId, ...s.params],
  );
  const row = rows[0];
  if (!row) return null;
  const delivery: Record<string, unknown> = {};
  const endpoint: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(row)) {
    if (k.startsWith('e__')) endpoint[k.slice(3)] = v;
    else delivery[k] = v;
  }
  return { delivery: delivery as unknown as DeliveryRow, endpoint: endpoint as unknown as PortalEndpoint };
}
