/**
 * What operators (REST API) and customers (portal) do to endpoints and deliveries, in one place:
 * every endpoint state change, a resend, a secret rotation. Each runs in the caller's transaction.
 */
import { conflict, invalid, notFound } from '../core/errors.ts';
import { UUID_RE } from '../core/ids.ts';
import type { Delivery, DeliveryStatus, Endpoint, EndpointStatus, Project } from '../core/types.ts';
import { generateSecret, newSecretProblem } from '../delivery/signatures.ts';
import type { SecretBox } from '../store/crypto.ts';
import { addSecret, expireSecrets, getEndpoint, refKey, type Actor } from '../store/endpoints.ts';
import type { Queryable } from '../store/queryable.ts';
import { resetBreaker, resetBreakers } from './breaker.ts';
import { enqueueDeliveries } from './queue.ts';
import { recordAlerts, statusAlerts, type AlertDeps } from './alerts.ts';

/** An endpoint's state change: applied only while the endpoint is in one of the `from` states. */
export interface EndpointChange {
  project_id: string;
  endpoint_id: string;
  from: EndpointStatus[];
  to: EndpointStatus;
  reason: string;
}

export type OperationDeps = AlertDeps;

/** A change that happened, with the state it left. */
export type AppliedChange = EndpointChange & { previous: EndpointStatus };

/**
 * Applies endpoint state changes in one statement (the first change per endpoint counts); returns
 * those that happened (the endpoint was in a `from` state and not already in `to`). A change to
 * `active` starts the circuit breaker afresh. Alerts are the caller's: see applyTransitions.
 */
export async function transition(db: Queryable, changes: EndpointChange[]): Promise<AppliedChange[]> {
  const byRef = new Map<string, EndpointChange>();
  for (const c of changes) if (!byRef.has(refKey(c))) byRef.set(refKey(c), c);
  if (byRef.size === 0) return [];
  const list = [...byRef.values()];
  // The rows are locked in key order (as the breaker locks them), then changed where allowed.
  const { rows } = await db.query<{ project_id: string; endpoint_id: string; previous: EndpointStatus }>(
    `WITH u AS (
       SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS u(project_id, endpoint_id, to_status, from_list)
     ),
     old AS MATERIALIZED (
       SELECT ep.project_id, ep.id, ep.status FROM endpoints ep
       WHERE (ep.project_id, ep.id) IN (SELECT project_id, endpoint_id FROM u)
       ORDER BY ep.project_id, ep.id FOR NO KEY UPDATE
     )
     UPDATE endpoints ep SET status = u.to_status, updated_at = now()
     FROM u JOIN old ON old.project_id = u.project_id AND old.id = u.endpoint_id
     WHERE ep.project_id = u.project_id AND ep.id = u.endpoint_id
       AND old.status = ANY(string_to_array(u.from_list, ',')) AND old.status <> u.to_status
     RETURNING ep.project_id, ep.id AS endpoint_id, old.status AS previous`,
    [list.map((c) => c.project_id), list.map((c) => c.endpoint_id), list.map((c) => c.to), list.map((c) => c.from.join(','))],
  );
  const applied = rows.map((r) => ({ ...byRef.get(refKey(r))!, previous: r.previous }));
  await resetBreakers(db, applied.filter((c) => c.to === 'active'));
  return applied;
}

/** Applies endpoint state changes (see transition) and queues their alerts; returns those that happened. */
export async function applyTransitions(deps: OperationDeps, db: Queryable, changes: EndpointChange[]): Promise<AppliedChange[]> {
  const applied = await transition(db, changes);
  await recordAlerts(deps, db, statusAlerts(applied));
  return applied;
}

/** PUT …/pause: a paused endpoint becomes active, any other paused. */
export async function togglePause(deps: OperationDeps, db: Queryable, projectId: string, endpointId: string, actor: string): Promise<Endpoint> {
  const e = await getEndpoint(db, projectId, endpointId, { forUpdate: true });
  if (!e) throw notFound('endpoint', endpointId);
  const to: EndpointStatus = e.status === 'paused' ? 'active' : 'paused';
  await applyTransitions(deps, db, [{ project_id: projectId, endpoint_id: endpointId, from: [e.status], to, reason: `${to === 'paused' ? 'paused' : 'unpaused'} by ${actor}` }]);
  return (await getEndpoint(db, projectId, endpointId))!;
}

/** POST …/activate: active again, with earlier failures no longer counting towards the breaker. */
export async function activateEndpoint(deps: OperationDeps, db: Queryable, projectId: string, endpointId: string, actor: string): Promise<Endpoint> {
  const e = await getEndpoint(db, projectId, endpointId, { forUpdate: true });
  if (!e) throw notFound('endpoint', endpointId);
  await applyTransitions(deps, db, [{ project_id: projectId, endpoint_id: endpointId, from: [e.status], to: 'active', reason: `activated by ${actor}` }]);
  // Already active: the counters still start afresh, as the caller asked.
  if (e.status === 'active') await resetBreaker(db, projectId, endpointId);
  return (await getEndpoint(db, projectId, endpointId))!;
}

/** A delivery as read from the database (times as Dates). */
export type DeliveryRow = Omit<Delivery, 'next_attempt_at' | 'created_at' | 'updated_at'> & {
  next_attempt_at: Date | null;
  created_at: Date;
  updated_at: Date;
};

export const DELIVERY_COLUMNS = `id, project_id, event_id, endpoint_id, event_type, status, attempts, next_attempt_at,
  last_status_code, last_error, created_at, updated_at`;

/** A delivery may be sent again only once it has come to rest. */
export const RESENDABLE: readonly DeliveryStatus[] = ['success', 'failure', 'discarded'];

/** One delivery of a project, or 404 (an id that is not a UUID is simply not found). */
export async function findDelivery(db: Queryable, projectId: string, id: string, options: { forUpdate?: boolean } = {}): Promise<DeliveryRow> {
  if (UUID_RE.test(id)) {
    const { rows } = await db.query<DeliveryRow>(
      `SELECT ${DELIVERY_COLUMNS} FROM deliveries WHERE project_id = $1 AND id = $2${options.forUpdate ? ' FOR UPDATE' : ''}`,
      [projectId, id],
    );
    if (rows[0]) return rows[0];
  }
  throw notFound('event delivery', id);
}

/**
 * Sends a delivery at rest once more, as its next attempt. A disabled endpoint is tried again
 * through this one delivery: pending until it answers (success: active again; failure: inactive).
 */
export async function resendDelivery(deps: OperationDeps, db: Queryable, projectId: string, deliveryId: string, actor: string): Promise<DeliveryRow> {
  const d = await findDelivery(db, projectId, deliveryId, { forUpdate: true });
  if (!RESENDABLE.includes(d.status)) {
    throw conflict(`event delivery is ${d.status}; only ${RESENDABLE.join(', ')} deliveries can be resent`);
  }
  const { rows } = await db.query<DeliveryRow>(
    `UPDATE deliveries SET status = 'scheduled', next_attempt_at = now(), updated_at = now()
     WHERE project_id = $1 AND id = $2 RETURNING ${DELIVERY_COLUMNS}`,
    [projectId, d.id],
  );
  await applyTransitions(deps, db, [
    { project_id: projectId, endpoint_id: d.endpoint_id, from: ['inactive'], to: 'pending', reason: `delivery ${d.id} resent by ${actor}` },
  ]);
  // The job asks for the next attempt number, so any older job still queued stays inert.
  await enqueueDeliveries(deps.boss, db, [{ delivery_id: d.id, attempt: d.attempts + 1, endpoint: refKey({ project_id: projectId, endpoint_id: d.endpoint_id }) }]);
  return rows[0]!;
}

/** expire_secret: how long the old secret keeps signing (seconds); at most a week. */
export const DEFAULT_EXPIRATION = 3600;
export const MAX_EXPIRATION = 7 * 86_400;

/**
 * Zero-downtime rotation: the live secrets stay valid for `expiration` seconds while a new one
 * (given, or generated in the project's format) signs at once, so every delivery meanwhile carries
 * a signature for each. Returns the new secret, to be shown once.
 */
export async function rotateSecret(
  box: SecretBox,
  db: Queryable,
  project: Pick<Project, 'id' | 'signature'>,
  endpointId: string,
  options: { expiration?: number; secret?: string; by?: Actor },
): Promise<{ endpoint: Endpoint; secret: string; expiration: number }> {
  const expiration = options.expiration ?? DEFAULT_EXPIRATION;
  const secret = options.secret ?? generateSecret(project.signature.scheme);
  const why = newSecretProblem(project.signature.scheme, secret);
  if (why) throw invalid('secret', why);
  const endpoint = await getEndpoint(db, project.id, endpointId, { forUpdate: true });
  if (!endpoint) throw notFound('endpoint', endpointId);
  await expireSecrets(db, project.id, endpointId, expiration);
  await addSecret(db, box, project.id, endpointId, secret, null, options.by ?? null);
  return { endpoint, secret, expiration };
}
