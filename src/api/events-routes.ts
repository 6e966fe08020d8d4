import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { MAX_JSON_DEPTH_LIMIT, textDeeperThan } from '../ingest/limits.ts';
import { WharfError } from '../core/errors.ts';
import { UUID_RE } from '../core/ids.ts';
import { trafficProblem, type EventRecord, type MessageType } from '../core/types.ts';
import type { Queryable } from '../store/queryable.ts';
import { convoyQuery, listFilters, onlyFilters, pageByIdDesc, pageRequest, timeRange, unsupported } from './pagination.ts';
import { JSON_SLOT, reply, replyWithJson, type ApiDeps } from './context.ts';
import { object, onlyKeys, settingsError, type Json } from '../core/validate.ts';
import { Reader } from '../core/settings.ts';
import { uuidv7 } from '../core/ids.ts';
import { ENDPOINT_DEFAULTS, readEndpointSettings } from '../delivery/endpoint-settings.ts';
import { generateSecret } from '../delivery/signatures.ts';
import { eventTypePatternProblem } from '../ingest/limits.ts';
import { insertEndpoint } from '../store/endpoints.ts';
import { saveSubscription } from '../store/subscriptions.ts';
import { withTransaction } from '../store/pool.ts';
import { retryLater } from '../dispatch/batch-retry.ts';
import { RESENDABLE } from '../dispatch/operations.ts';
import { readEnvelope } from '../ingest/normalize.ts';
import { missing } from '../store/retention.ts';

/**
 * An event as read from the database: `data` as the JSON text stored, the time as a Date, and (read
 * for one event only) the headers it arrived with.
 */
export type EventRow = Omit<EventRecord, 'data' | 'created_at'> & { data: string; created_at: Date; headers?: Record<string, string> };

const EVENT_COLUMNS = `id, project_id, source_id, event_type, message_type, endpoint_id, owner_id, idempotency_key,
  custom_headers, data, created_at`;

/**
 * An event as the API answers it. `data` is what to answer as its data, the stored text read
 * (readableData) unless the caller has it already.
 */
export function presentEvent(e: EventRow, data: { data: unknown; data_is_text?: true } = readableData(e.data)): Json {
  return {
    uid: e.id,
    id: e.id,
    project_id: e.project_id,
    // Convoy's schema types these as strings: "" where the event has none.
    source_id: e.source_id ?? '',
    event_type: e.event_type,
    message_type: e.message_type,
    endpoint_id: e.endpoint_id,
    owner_id: e.owner_id,
    idempotency_key: e.idempotency_key ?? '',
    custom_headers: e.custom_headers,
    // What the request or broker message carried (credential headers are dropped at ingest).
    ...(e.headers === undefined ? {} : { headers: e.headers }),
    ...data,
    created_at: e.created_at,
  };
}

/**
 * An event's data as JSON, or as its stored text (`data_is_text`) when it could not be answered as
 * JSON: one stored before depth was bounded at ingest (too deep to serialise again: JSON.stringify
 * recurses) or, from any older writer, text that is not JSON. One such row never fails a page.
 */
function readableData(text: string): { data: unknown; data_is_text?: true } {
  if (textDeeperThan(text, MAX_JSON_DEPTH_LIMIT)) return { data: text, data_is_text: true };
  try {
    return { data: JSON.parse(text) as unknown };
  } catch {
    return { data: text, data_is_text: true };
  }
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

/**
 * An event's data is stored as JSON text, where NUL is the escape `\u0000`: it is kept and
 * delivered as sent (nul-guard.ts refuses NUL everywhere else).
 */
const DATA_HOLDS_NUL = { nulAllowedIn: ['data'] } as const;

/** The columns an events list (and a batch replay) filters on. */
const EVENT_FILTERS = ['event_type', 'source_id', 'owner_id', 'endpoint_id', 'idempotency_key'];
/** Most events one batch replay takes: the newest that match. */
const MAX_REPLAY = 10_000;
/** A replay's deliveries: every one at rest, of any endpoint, whenever made. */
const EVERY_DELIVERY = { statuses: [...RESENDABLE], endpoint_ids: null, event_type: null, created_from: null, created_to: null };

export async function eventRoutes(app: FastifyInstance, deps: ApiDeps): Promise<void> {
  const { pool, ingest } = deps;

  const create = (type: MessageType) => async (req: FastifyRequest, res: FastifyReply) => send(req, res, type, req.body);

  const send = async (req: FastifyRequest, res: FastifyReply, type: MessageType, body: unknown) => {
    const refused = trafficProblem(req.project, 'outgoing');
    if (refused) throw new WharfError('WHARF_ERR_FORBIDDEN', refused, { status: 403 });
    const input = readEnvelope(body, { project_id: req.project.id, source_id: null, message_type: type, strict: true, limits: deps.limits });
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
        // input.data is the text readEnvelope serialised from the body's data (its depth bounded):
        // it goes into the answer as it is.
        return replyWithJson(
          res,
          201,
          'Event created',
          {
            ...presentEvent(
              {
                ...input,
                id: outcome!.event_id,
                endpoint_id: input.endpoint_id ?? null,
                owner_id: input.owner_id ?? null,
                headers: input.headers ?? {},
                created_at: new Date(),
              },
              { data: JSON_SLOT },
            ),
            duplicate: false,
            deliveries: outcome!.deliveries,
          },
          input.data,
        );
    }
  };

  // Convoy's dynamic event: to a URL rather than an endpoint. The project's endpoint with that URL
  // takes it; without one, an endpoint is made for it (named after the host, secret given or
  // generated, not pinged: the event itself is the first request), subscribed to `event_types`
  // when given. Then it is an event to that endpoint like any other.
  app.post('/events/dynamic', { config: DATA_HOLDS_NUL }, async (req, res) => {
    const body = object(req.body, 'body');
    onlyKeys(body, ['url', 'secret', 'event_type', 'event_types', 'data', 'custom_headers', 'idempotency_key']);
    const r = new Reader();
    const settings = readEndpointSettings(r, { url: body.url, ...(body.secret ? { secret: body.secret } : {}) }, '', req.project.signature.scheme);
    const types = body.event_types === undefined || body.event_types === null ? [] : body.event_types;
    if (!Array.isArray(types) || !types.every((t) => typeof t === 'string' && eventTypePatternProblem(t) === null)) {
      r.bad('event_types', 'must be a list of event types ("*" or a prefix such as "order.*" included)');
    }
    if (body.url === undefined) r.bad('url', 'is required: where the event is sent');
    if (r.issues.length > 0) throw settingsError(r.issues, '');
    const url = settings.url!;
    const endpointId = await withTransaction(pool, async (db) => {
      // Two dynamic events to one new URL at once make one endpoint.
      await db.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', [`${req.project.id} ${url}`]);
      const { rows } = await db.query<{ id: string }>('SELECT id FROM endpoints WHERE project_id = $1 AND url = $2 ORDER BY created_at LIMIT 1', [req.project.id, url]);
      if (rows[0]) return rows[0].id;
      const id = uuidv7();
      const fields = { ...ENDPOINT_DEFAULTS, name: new URL(url).host, url };
      await insertEndpoint(db, deps.box, req.project.id, id, fields, settings.secret ?? generateSecret(req.project.signature.scheme), { createdBy: req.actor });
      if ((types as string[]).length > 0) {
        await saveSubscription(db, req.project.id, uuidv7(), { name: `${fields.name} (dynamic)`, endpoint_id: id, source_id: null, event_types: types as string[], filter: null, retry_config: null }, false);
      }
      return id;
    });
    const { url: _u, secret: _s, event_types: _t, ...event } = body;
    return send(req, res, 'single', { ...event, endpoint_id: endpointId });
  });

  app.post('/events', { config: DATA_HOLDS_NUL }, create('single'));
  app.post('/events/fanout', { config: DATA_HOLDS_NUL }, create('fanout'));
  app.post('/events/broadcast', { config: DATA_HOLDS_NUL }, create('broadcast'));

  app.get('/events', async (req, res) => {
    const q = convoyQuery(req.query);
    unsupported(q, ['q', 'body'], 'is not supported: events are found by their fields (event_type, endpointId, sourceId, idempotencyKey, owner_id, dates)');
    const page = pageRequest(q);
    const result = await pageByIdDesc<EventRow>(pool, {
      table: 'events',
      columns: EVENT_COLUMNS,
      projectId: req.project.id,
      filters: [...listFilters(q, EVENT_FILTERS), ...timeRange(q)],
      page,
    });
    return reply(res, 200, 'Events fetched', { content: result.content.map((e) => presentEvent(e)), pagination: result.pagination });
  });

  // Convoy's replay: the event's deliveries that have come to rest are sent again, in the
  // background (the batch-retry worker); the answer is the event.
  app.put('/events/:eventID/replay', async (req, res) => {
    const { eventID } = req.params as { eventID: string };
    const e = await findEvent(pool, req.project.id, eventID);
    if (!e) throw await missing(pool, req.project.id, 'events', 'event', eventID);
    const queued = await retryLater(pool, deps.boss, { ...EVERY_DELIVERY, project_id: req.project.id, event_ids: [e.id] });
    return reply(res, 200, `Event replayed: ${queued} deliveries queued`, presentEvent(e));
  });

  // The same for every event the list's filters match (at most MAX_REPLAY of the newest).
  app.post('/events/batchreplay', async (req, res) => {
    const body = req.body === undefined || req.body === null ? {} : object(req.body, 'body');
    const q = convoyQuery({ ...(req.query as Record<string, unknown>), ...body });
    unsupported(q, ['q', 'body'], 'is not supported: events are found by their fields (event_type, endpointId, sourceId, idempotencyKey, owner_id, dates)');
    // A key that is no filter (a typo) would replay every event: refused, as batch retry does.
    onlyFilters(q, [...EVENT_FILTERS, 'start_date', 'end_date']);
    const found = await pageByIdDesc<{ id: string }>(pool, {
      table: 'events',
      columns: 'id',
      projectId: req.project.id,
      filters: [...listFilters(q, EVENT_FILTERS), ...timeRange(q)],
      page: { perPage: MAX_REPLAY, cursor: undefined },
    });
    const ids = found.content.map((e) => e.id);
    const queued = ids.length === 0 ? 0 : await retryLater(pool, deps.boss, { ...EVERY_DELIVERY, project_id: req.project.id, event_ids: ids });
    return reply(res, 200, `${ids.length} events replayed: ${queued} deliveries queued`, { events: ids.length, queued, more: found.pagination.has_next_page });
  });

  app.get('/events/:eventID', async (req, res) => {
    const { eventID } = req.params as { eventID: string };
    const e = await findEvent(pool, req.project.id, eventID);
    if (!e) throw await missing(pool, req.project.id, 'events', 'event', eventID);
    return reply(res, 200, 'Event fetched', presentEvent(e));
  });
}
