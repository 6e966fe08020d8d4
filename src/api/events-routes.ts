import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { MAX_JSON_DEPTH_LIMIT, textDeeperThan } from '../ingest/limits.ts';
import { WharfError, notFound } from '../core/errors.ts';
import { UUID_RE } from '../core/ids.ts';
import type { EventRecord, MessageType } from '../core/types.ts';
import type { Queryable } from '../store/queryable.ts';
import { convoyQuery, listFilters, pageByIdDesc, pageRequest, timeRange, unsupported } from './pagination.ts';
import { reply, type ApiDeps } from './server.ts';
import type { Json } from './validate.ts';
import { readEnvelope } from '../ingest/normalize.ts';

/**
 * An event as read from the database: `data` as the JSON text stored, the time as a Date, and (read
 * for one event only) the headers it arrived with.
 */
export type EventRow = Omit<EventRecord, 'data' | 'created_at'> & { data: string; created_at: Date; headers?: Record<string, string> };

const EVENT_COLUMNS = `id, project_id, source_id, event_type, message_type, endpoint_id, owner_id, idempotency_key,
  custom_headers, data, created_at`;

export function presentEvent(e: EventRow): Json {
  return {
    uid: e.id,
    id: e.id,
    project_id: e.project_id,
    source_id: e.source_id,
    event_type: e.event_type,
    message_type: e.message_type,
    endpoint_id: e.endpoint_id,
    owner_id: e.owner_id,
    idempotency_key: e.idempotency_key,
    custom_headers: e.custom_headers,
    // What the request or broker message carried (credential headers are dropped at ingest).
    ...(e.headers === undefined ? {} : { headers: e.headers }),
    // An event stored before depth was bounded at ingest could be too deep to serialise again;
    // it is shown as its JSON text rather than failing the whole page.
    ...(textDeeperThan(e.data, MAX_JSON_DEPTH_LIMIT) ? { data: e.data, data_is_text: true } : { data: JSON.parse(e.data) as unknown }),
    created_at: e.created_at,
  };
}

/** One event of a project, with its headers, or null (also for an id that is not a UUID). */
export async function findEvent(db: Queryable, projectId: string, id: string): Promise<EventRow | null> {
  if (!UUID_RE.test(id)) return null;
  const { rows } = await db.query<EventRow>(`SELECT ${EVENT_COLUMNS}, headers FROM events WHERE project_id = $1 AND id = $2`, [
    projectId,
    id,
  ]);
  return rows[0] ?? null;
}

export async function eventRoutes(app: FastifyInstance, deps: ApiDeps): Promise<void> {
  const { pool, ingest } = deps;

  const create = (type: MessageType) => async (req: FastifyRequest, res: FastifyReply) => {
    const input = readEnvelope(req.body, { project_id: req.project.id, source_id: null, message_type: type, strict: true, limits: deps.limits });
    const outcome = await ingest.submit(input);
    switch (outcome!.status) {
      case 'rejected':
        throw new WharfError(outcome!.code, outcome!.reason, {
          status: 404,
          field: input.message_type === 'single' ? 'endpoint_id' : 'owner_id',
        });
      case 'duplicate': {
        const existing = await findEvent(pool, req.project.id, outcome!.event_id);
        return reply(res, 201, 'Event already exists for this idempotency_key; nothing new was created', {
          ...presentEvent(existing!),
          duplicate: true,
        });
      }
      case 'stored':
        return reply(res, 201, 'Event created', {
          ...presentEvent({
            ...input,
            id: outcome!.event_id,
            endpoint_id: input.endpoint_id ?? null,
            owner_id: input.owner_id ?? null,
            headers: input.headers ?? {},
            created_at: new Date(),
          }),
          duplicate: false,
          deliveries: outcome!.deliveries,
        });
    }
  };

  app.post('/events', create('single'));
  app.post('/events/fanout', create('fanout'));
  app.post('/events/broadcast', create('broadcast'));

  app.get('/events', async (req, res) => {
    const q = convoyQuery(req.query);
    unsupported(q, ['q', 'body'], 'is not supported: events are found by their fields (event_type, endpointId, sourceId, idempotencyKey, owner_id, dates)');
    const page = pageRequest(q);
    const result = await pageByIdDesc<EventRow>(pool, {
      table: 'events',
      columns: EVENT_COLUMNS,
      projectId: req.project.id,
      filters: [...listFilters(q, ['event_type', 'source_id', 'owner_id', 'endpoint_id', 'idempotency_key']), ...timeRange(q)],
      page,
    });
    return reply(res, 200, 'Events fetched', { content: result.content.map(presentEvent), pagination: result.pagination });
  });

  app.get('/events/:eventID', async (req, res) => {
    const { eventID } = req.params as { eventID: string };
    const e = await findEvent(pool, req.project.id, eventID);
    if (!e) throw notFound('event', eventID);
    return reply(res, 200, 'Event fetched', presentEvent(e));
  });
}
