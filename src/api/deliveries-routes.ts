import type { FastifyInstance } from 'fastify';
import { invalid } from '../core/errors.ts';
import { UUID_RE } from '../core/ids.ts';
import { DELIVERY_STATUSES, type DeliveryAttempt, type DeliveryStatus } from '../core/types.ts';
import { DELIVERY_COLUMNS, RESENDABLE, findDelivery, resendDelivery, type DeliveryRow } from '../dispatch/operations.ts';
import { countMatching, queueBatchRetry, type BatchRetryFilter } from '../dispatch/batch-retry.ts';
import { withTransaction } from '../store/pool.ts';
import type { Queryable } from '../store/queryable.ts';
import { filterText, pageByIdDesc, pageRequest, stringFilters } from './pagination.ts';
import { reply, type ApiDeps } from './server.ts';
import { object, type Json } from './validate.ts';

const present = (d: DeliveryRow): Json => ({ uid: d.id, ...d });

/** A delivery attempt as read from the database (the time as a Date). */
export type AttemptRow = Omit<DeliveryAttempt, 'response_headers' | 'created_at'> & {
  response_headers: Record<string, string | string[]>;
  created_at: Date;
};

/** A delivery's attempts, oldest first. The caller has checked the delivery is the project's. */
export async function deliveryAttempts(db: Queryable, deliveryId: string): Promise<AttemptRow[]> {
  const { rows } = await db.query<AttemptRow>(
    `SELECT id, delivery_id, attempt, url, request_headers, status_code, latency_ms, response_headers,
            response_body, error, error_code, created_at
     FROM delivery_attempts WHERE delivery_id = $1 ORDER BY attempt, created_at`,
    [deliveryId],
  );
  return rows;
}

/** `status` as a list (repeated or comma-separated), each of `allowed`, or 400 naming the field. */
function statusList(value: unknown, allowed: readonly DeliveryStatus[]): DeliveryStatus[] {
  const given = Array.isArray(value) ? value : [value];
  if (!given.every((v) => typeof v === 'string')) throw invalid('status', `must be a comma-separated list of ${allowed.join(', ')}`);
  const list = (given as string[]).flatMap((v) => v.split(','));
  for (const s of list) {
    if (!allowed.includes(s as DeliveryStatus)) throw invalid('status', `must be one of ${allowed.join(', ')} (got ${JSON.stringify(s)})`);
  }
  return list as DeliveryStatus[];
}

export async function deliveryRoutes(app: FastifyInstance, deps: ApiDeps): Promise<void> {
  const { pool, boss } = deps;

  app.get('/eventdeliveries', async (req, res) => {
    const q = req.query as Record<string, unknown>;
    const page = pageRequest(q);
    const filters = stringFilters(q, ['endpoint_id', 'event_type']);
    if (q.status !== undefined) filters.push({ column: 'status', value: statusList(q.status, DELIVERY_STATUSES), anyOf: true });
    if (typeof q.event_id === 'string') {
      if (!UUID_RE.test(q.event_id)) throw invalid('event_id', 'must be an event id');
      filters.push({ column: 'event_id', value: q.event_id });
    }
    const result = await pageByIdDesc<DeliveryRow>(pool, { table: 'deliveries', columns: DELIVERY_COLUMNS, projectId: req.project.id, filters, page });
    return reply(res, 200, 'Event deliveries fetched', { content: result.content.map(present), pagination: result.pagination });
  });

  app.get('/eventdeliveries/:deliveryID', async (req, res) => {
    const { deliveryID } = req.params as { deliveryID: string };
    return reply(res, 200, 'Event delivery fetched', present(await findDelivery(pool, req.project.id, deliveryID)));
  });

  app.get('/eventdeliveries/:deliveryID/deliveryattempts', async (req, res) => {
    const { deliveryID } = req.params as { deliveryID: string };
    const d = await findDelivery(pool, req.project.id, deliveryID);
    const attempts = await deliveryAttempts(pool, d.id);
    return reply(res, 200, 'Delivery attempts fetched', attempts.map((a) => ({ uid: a.id, ...a })));
  });

  // Retries every delivery that matches, in the background (see dispatch/batch-retry.ts).
  app.post('/eventdeliveries/batchretry', async (req, res) => {
    const body = req.body === undefined || req.body === null ? {} : object(req.body, 'body');
    const q = { ...(req.query as Record<string, unknown>), ...body };
    const statuses: DeliveryStatus[] = q.status === undefined ? ['failure', 'discarded'] : statusList(q.status, RESENDABLE);
    // Every filter is read strictly: one that cannot be read is a 400, never a wider retry.
    const time = (key: string): string | null => {
      const v = filterText(q, key);
      if (v === null) return null;
      const d = new Date(v);
      if (Number.isNaN(d.getTime())) throw invalid(key, `must be an ISO 8601 time (got ${JSON.stringify(v)})`);
      return d.toISOString();
    };
    const text = (key: string): string | null => filterText(q, key);
    const data = await withTransaction(pool, async (client) => {
      const { rows } = await client.query<{ t: Date }>('SELECT clock_timestamp() AS t');
      const filter: BatchRetryFilter = {
        project_id: req.project.id,
        statuses,
        endpoint_id: text('endpoint_id'),
        event_type: text('event_type'),
        created_from: time('start_date'),
        created_to: time('end_date'),
        cutoff: rows[0]!.t.toISOString(),
      };
      const queued = await countMatching(client, filter);
      if (queued > 0) await queueBatchRetry(boss, client, filter);
      return { queued };
    });
    return reply(res, 200, `${data.queued} event deliveries queued for retry`, data);
  });

  app.put('/eventdeliveries/:deliveryID/resend', async (req, res) => {
    const { deliveryID } = req.params as { deliveryID: string };
    const data = await withTransaction(pool, (client) => resendDelivery(deps, client, req.project.id, deliveryID, 'the API'));
    return reply(res, 200, 'Event delivery scheduled for resend', present(data));
  });
}
