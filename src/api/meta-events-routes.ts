import type { FastifyInstance } from 'fastify';
import { conflict } from '../core/errors.ts';
import { UUID_RE } from '../core/ids.ts';
import { resendAlert } from '../dispatch/alerts.ts';
import { withTransaction } from '../store/pool.ts';
import { missing } from '../store/retention.ts';
import { convoyQuery, convoyStatus, statusList, pageByIdDesc, pageRequest, stringFilters, timeRange } from './pagination.ts';
import { reply, type ApiDeps } from './context.ts';
import type { Json } from '../core/validate.ts';

interface MetaEventRow {
  id: string;
  project_id: string;
  endpoint_id: string | null;
  target: 'endpoint' | 'project';
  url: string;
  event_type: string;
  body: string;
  status: string;
  attempts: number;
  last_status_code: number | null;
  last_error: string | null;
  created_at: Date;
  updated_at: Date;
}

const COLUMNS = `id, project_id, endpoint_id, target, url, event_type, body, status, attempts, last_status_code, last_error,
  created_at, updated_at`;
const STATUSES = ['scheduled', 'success', 'failure'];

/** The payload as the receiver got it (parsed), beside how it went (the status in Convoy's spelling). */
const present = ({ body, ...m }: MetaEventRow): Json => ({ uid: m.id, ...m, status: convoyStatus(m.status), payload: JSON.parse(body) as Json }) as Json;

/** Alerts Wharf sent about the project's endpoints (Convoy's meta events), with their outcome. */
export async function metaEventRoutes(app: FastifyInstance, deps: ApiDeps): Promise<void> {
  const { pool, boss } = deps;

  const find = async (projectId: string, id: string): Promise<MetaEventRow> => {
    const { rows } = UUID_RE.test(id)
      ? await pool.query<MetaEventRow>(`SELECT ${COLUMNS} FROM meta_events WHERE project_id = $1 AND id = $2`, [projectId, id])
      : { rows: [] };
    if (!rows[0]) throw await missing(pool, projectId, 'meta_events', 'meta event', id);
    return rows[0];
  };

  app.get('/meta-events', async (req, res) => {
    const q = convoyQuery(req.query);
    const filters = [...stringFilters(q, ['endpoint_id', 'event_type', 'target']), ...timeRange(q)];
    const statuses = statusList(q, STATUSES);
    if (statuses) filters.push({ column: 'status', value: statuses, anyOf: true });
    const result = await pageByIdDesc<MetaEventRow>(pool, { table: 'meta_events', columns: COLUMNS, projectId: req.project.id, filters, page: pageRequest(q) });
    return reply(res, 200, 'Meta events fetched', { content: result.content.map(present), pagination: result.pagination });
  });

  app.get('/meta-events/:id', async (req, res) => {
    const { id } = req.params as { id: string };
    return reply(res, 200, 'Meta event fetched', present(await find(req.project.id, id)));
  });

  app.put('/meta-events/:id/resend', async (req, res) => {
    const { id } = req.params as { id: string };
    await find(req.project.id, id);
    const sent = await withTransaction(pool, (client) => resendAlert(boss, client, req.project.id, id));
    if (!sent) throw conflict('meta event is still scheduled; it can be resent once it has succeeded or failed');
    return reply(res, 200, 'Meta event scheduled for resend', present(await find(req.project.id, id)));
  });
}
