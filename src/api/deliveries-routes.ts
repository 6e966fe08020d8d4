import type { FastifyInstance } from 'fastify';
import { invalid } from '../core/errors.ts';
import { UUID_RE } from '../core/ids.ts';
import type { DeliveryStatus } from '../core/types.ts';
import { DELIVERY_COLUMNS, RESENDABLE, findDelivery, resendDelivery, type DeliveryRow } from '../dispatch/operations.ts';
import { countMatching, queueBatchRetry, type BatchRetryFilter } from '../dispatch/batch-retry.ts';
import { withTransaction } from '../store/pool.ts';
import { pageByIdDesc, pageRequest, stringFilters } from './pagination.ts';
import { reply, type ApiDeps } from './server.ts';
import type { Json } from './validate.ts';

const STATUSES: readonly DeliveryStatus[] = ['scheduled', 'processing', 'success', 'failure', 'retry', 'discarded'];

const present = (d: DeliveryRow): Json => ({ uid: d.id, ...d });

export async function deliveryRoutes(app: FastifyInstance, deps: ApiDeps): Promise<void> {
  const { pool, boss } = deps;

  app.get('/eventdeliveries', async (req, res) => {
    const q = req.query as Record<string, unknown>;
    const page = pageRequest(q);
    const filters = stringFilters(q, ['endpoint_id', 'event_type']);
    if (q.status !== undefined) {
      const list = (Array.isArray(q.status) ? q.status : String(q.status).split(',')).map(String);
      for (const s of list) {
        if (!STATUSES.includes(s as DeliveryStatus)) throw invalid('status', `must be one of ${STATUSES.join(', ')} (got ${JSON.stringify(s)})`);
      }
      filters.push({ column: 'status', value: list, anyOf: true });
    }
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
    const { rows } = await pool.query(
      `SELECT id AS uid, id, delivery_id, attempt, url, request_headers, status_code, latency_ms, response_headers,
              response_body, error, error_code, created_at
       FROM delivery_attempts WHERE delivery_id = $1 ORDER BY attempt, created_at`,
      [d.id],
    );
    return reply(res, 200, 'Delivery attempts fetched', rows);
  });

  // Retries every delivery that matches, in the background (see dispatch/batch-retry.ts).
  app.post('/eventdeliveries/batchretry', async (req, res) => {
    const q = { ...(req.query as Record<string, unknown>), ...((req.body ?? {}) as Record<string, unknown>) };
    const statuses = q.status === undefined ? ['failure', 'discarded'] : (Array.isArray(q.status) ? q.status : String(q.status).split(',')).map(String);
    for (const s of statuses) {
      if (!RESENDABLE.includes(s as DeliveryStatus)) throw invalid('status', `must be among ${RESENDABLE.join(', ')} (got ${JSON.stringify(s)})`);
    }
    const time = (key: string): string | null => {
      if (q[key] === undefined) return null;
      const d = new Date(String(q[key]));
      if (Number.isNaN(d.getTime())) throw invalid(key, `must be an ISO 8601 time (got ${JSON.stringify(q[key])})`);
      return d.toISOString();
    };
    const text = (key: string): string | null => (typeof q[key] === 'string' && q[key] !== '' ? (q[key] as string) : null);
    const data = await withTransaction(pool, async (client) => {
      const { rows } = await client.query<{ t: Date }>('SELECT clock_timestamp() AS t');
      const filter: BatchRetryFilter = {
        project_id: req.project.id,
        statuses: statuses as DeliveryStatus[],
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
    return reply(res, 202, `${data.queued} event deliveries queued for retry`, data);
  });

  app.put('/eventdeliveries/:deliveryID/resend', async (req, res) => {
    const { deliveryID } = req.params as { deliveryID: string };
    const data = await withTransaction(pool, (client) => resendDelivery(deps, client, req.project.id, deliveryID, 'the API'));
    return reply(res, 202, 'Event delivery scheduled for resend', present(data));
  });
}
