import type { FastifyInstance } from 'fastify';
import { STATUS_CODES } from 'node:http';
import { WharfError, invalid } from '../core/errors.ts';
import { UUID_RE } from '../core/ids.ts';
import { DELIVERY_STATUSES, type DeliveryAttempt, type DeliveryStatus } from '../core/types.ts';
import { DELIVERY_COLUMNS, RESENDABLE, findDelivery, resendDelivery, type DeliveryRow } from '../dispatch/operations.ts';
import { retryLater, type BatchRetryFilter } from '../dispatch/batch-retry.ts';
import { withTransaction } from '../store/pool.ts';
import { REQUEST_HEADERS_SQL } from '../delivery/request.ts';
import type { Queryable } from '../store/queryable.ts';
import { convoyQuery, convoyStatus, statusList, unsupported, filterList, filterText, filterTime, listFilters, onlyFilters, pageByIdDesc, pageRequest, timeRange } from './pagination.ts';
import { reply, type ApiDeps } from './context.ts';
import { object, onlyKeys, type Json } from '../core/validate.ts';
import { explainMissing, missing } from '../store/retention.ts';

/** What batch retry selects deliveries by (and the paging parameters of the list, ignored). */
const BATCH_RETRY_FILTERS = ['status', 'endpoint_id', 'event_id', 'event_type', 'start_date', 'end_date'];

/** Most delivery ids one force resend takes. */
const MAX_FORCE_RESEND = 1000;

/** A delivery as the API shows it: its status in Convoy's spelling (`Success`). */
const present = (d: DeliveryRow): Json => ({ uid: d.id, ...d, status: convoyStatus(d.status) });

/** A delivery attempt as read from the database (the time as a Date). */
export type AttemptRow = Omit<DeliveryAttempt, 'response_headers' | 'created_at'> & {
  response_headers: Record<string, string | string[]>;
  created_at: Date;
};

/**
 * An attempt as the API shows it: Wharf's fields, and Convoy's names for them (`http_status` as
 * "200 OK", `status` true for a 2xx answer, the headers and body under Convoy's keys).
 */
function presentAttempt(a: AttemptRow): Json {
  const code = a.status_code;
  return {
    uid: a.id,
    ...a,
    error: a.error ?? '', // a string in Convoy's schema: "" when the receiver answered
    msg_id: a.delivery_id,
    method: 'POST',
    http_status: code === null ? '' : `${code} ${STATUS_CODES[code] ?? ''}`.trim(),
    status: code !== null && code >= 200 && code < 300,
    request_http_header: a.request_headers,
    response_http_header: a.response_headers,
    response_data: a.response_body,
  } as unknown as Json;
}

/**
 * A delivery's attempts, oldest first, wherever they are kept (the view `attempts`: the delivery's
 * own row holds its first, migration 022), each with its delivery's project and endpoint. The
 * project finds the delivery by its key (migration 023). The caller has checked the delivery is
 * the project's.
 */
export async function deliveryAttempts(db: Queryable, projectId: string, deliveryId: string): Promise<AttemptRow[]> {
  const { rows } = await db.query<AttemptRow>(
    `SELECT a.id, a.delivery_id, a.project_id, a.endpoint_id, a.attempt, a.url, ${REQUEST_HEADERS_SQL} AS request_headers, a.status_code, a.latency_ms,
            a.response_headers, a.response_body, a.error, a.error_code, a.created_at
     FROM attempts a JOIN deliveries d ON d.project_id = a.project_id AND d.id = a.delivery_id
     WHERE a.project_id = $1 AND a.delivery_id = $2 ORDER BY a.attempt, a.created_at`,
    [projectId, deliveryId],
  );
  return rows;
}

/** An event id filter, checked; null when absent. */
function eventIdOf(q: Record<string, unknown>): string | null {
  const id = filterText(q, 'event_id');
  if (id !== null && !UUID_RE.test(id)) throw invalid('event_id', 'must be an event id');
  return id;
}



/**
 * What a batch retry selects, from the deliveries list's parameters, read strictly: one that
 * cannot be read, or that is not a filter of deliveries (a typo), is a 400, never a wider retry.
 * The dashboard counts with it what a batch retry would pick before the operator confirms.
 */
export function batchRetryFilter(given: object, projectId: string): Omit<BatchRetryFilter, 'cutoff'> {
  const q = convoyQuery(given);
  unsupported(q, ['subscription_id'], 'is not supported: Wharf does not record which subscription routed a delivery');
  onlyFilters(q, BATCH_RETRY_FILTERS);
  const statuses: DeliveryStatus[] = statusList(q, RESENDABLE) ?? ['failure', 'discarded'];
  const eventId = eventIdOf(q);
  return {
    project_id: projectId,
    statuses,
    endpoint_ids: filterList(q, 'endpoint_id'),
    event_ids: eventId === null ? null : [eventId],
    event_type: filterText(q, 'event_type'),
    created_from: filterTime(q, 'start_date'),
    created_to: filterTime(q, 'end_date'),
  };
}

export async function deliveryRoutes(app: FastifyInstance, deps: ApiDeps): Promise<void> {
  const { pool, boss } = deps;
  /** The delivery, or a 404 that says when it was purged by the project's retention. */
  const deliveryOf = (projectId: string, id: string) =>
    findDelivery(pool, projectId, id).catch(explainMissing(pool, projectId, 'events', 'event delivery', id));

  app.get('/eventdeliveries', async (req, res) => {
    const q = convoyQuery(req.query);
    unsupported(q, ['subscription_id'], 'is not supported: Wharf does not record which subscription routed a delivery');
    const page = pageRequest(q);
    const filters = [...listFilters(q, ['endpoint_id', 'event_type']), ...timeRange(q)];
    const statuses = statusList(q, DELIVERY_STATUSES);
    if (statuses) filters.push({ column: 'status', value: statuses, anyOf: true });
    const eventId = eventIdOf(q);
    if (eventId) filters.push({ column: 'event_id', value: eventId });
    const result = await pageByIdDesc<DeliveryRow>(pool, { table: 'deliveries', columns: DELIVERY_COLUMNS, projectId: req.project.id, filters, page });
    return reply(res, 200, 'Event deliveries fetched', { content: result.content.map(present), pagination: result.pagination });
  });

  app.get('/eventdeliveries/:deliveryID', async (req, res) => {
    const { deliveryID } = req.params as { deliveryID: string };
    const d = await deliveryOf(req.project.id, deliveryID);
    return reply(res, 200, 'Event delivery fetched', present(d));
  });

  app.get('/eventdeliveries/:deliveryID/deliveryattempts', async (req, res) => {
    const { deliveryID } = req.params as { deliveryID: string };
    const d = await deliveryOf(req.project.id, deliveryID);
    const attempts = await deliveryAttempts(pool, req.project.id, d.id);
    return reply(res, 200, 'Delivery attempts fetched', attempts.map(presentAttempt));
  });

  app.get('/eventdeliveries/:deliveryID/deliveryattempts/:attemptID', async (req, res) => {
    const { deliveryID, attemptID } = req.params as { deliveryID: string; attemptID: string };
    const d = await deliveryOf(req.project.id, deliveryID);
    const attempt = (await deliveryAttempts(pool, req.project.id, d.id)).find((a) => a.id === attemptID);
    if (!attempt) throw await missing(pool, req.project.id, 'attempts', 'delivery attempt', attemptID);
    return reply(res, 200, 'Delivery attempt fetched', presentAttempt(attempt));
  });

  // Retries every delivery that matches, in the background (see dispatch/batch-retry.ts).
  app.post('/eventdeliveries/batchretry', async (req, res) => {
    const body = req.body === undefined || req.body === null ? {} : object(req.body, 'body');
    // The deliveries list's parameters, in the query (Convoy) or the body.
    const queued = await retryLater(pool, boss, batchRetryFilter({ ...(req.query as Record<string, unknown>), ...body }, req.project.id));
    return reply(res, 200, `${queued} event deliveries queued for retry`, { queued });
  });

  // Convoy's force resend: these deliveries once more, whatever their outcome was (each one that
  // is still being sent is counted a failure).
  app.post('/eventdeliveries/forceresend', async (req, res) => {
    const body = object(req.body, 'body');
    onlyKeys(body, ['ids']);
    const ids = body.ids;
    if (!Array.isArray(ids) || ids.length === 0 || ids.length > MAX_FORCE_RESEND || !ids.every((id) => typeof id === 'string')) {
      throw invalid('ids', `must be a list of 1 to ${MAX_FORCE_RESEND} event delivery ids`);
    }
    let successes = 0;
    for (const id of new Set(ids as string[])) {
      try {
        await withTransaction(pool, (client) => resendDelivery(deps, client, req.project.id, id, 'the API (force resend)'));
        successes += 1;
      } catch (err) {
        if (!(err instanceof WharfError) || err.status >= 500) throw err;
      }
    }
    const failures = new Set(ids).size - successes;
    return reply(res, 200, `${successes} event deliveries resent, ${failures} could not be`, { successes, failures });
  });

  app.put('/eventdeliveries/:deliveryID/resend', async (req, res) => {
    const { deliveryID } = req.params as { deliveryID: string };
    const data = await withTransaction(pool, (client) => resendDelivery(deps, client, req.project.id, deliveryID, 'the API'));
    return reply(res, 200, 'Event delivery scheduled for resend', present(data));
  });
}
