import type { FastifyInstance, FastifyRequest } from 'fastify';
import { conflict, notFound } from '../core/errors.ts';
import { uuidv7 } from '../core/ids.ts';
import { SOURCE_TYPES, keepRedactedSecrets, parseSource, redactSource, type SourceDefinition, type SourceType } from '../sources/settings.ts';
import type { SourceStatus } from '../sources/manager.ts';
import { createSource, deleteSource, getSource, listSources, saveSource, type SourceRecord } from '../store/sources.ts';
import { reply, type ApiDeps } from './server.ts';
import { object, settingsError, type Json } from './validate.ts';

/** The broker connectors' states here, by `project/id`: asked once per request (health may query the broker). */
function liveStates(deps: ApiDeps): Map<string, SourceStatus> {
  return new Map((deps.sources?.status() ?? []).map((s) => [`${s.project_id}/${s.id}`, s]));
}

/**
 * A source as the API shows it: its definition with credentials redacted, and its live state here
 * (a broker connector's state from `live`, or an HTTP source's counts and latest refused requests).
 */
function present(record: SourceRecord, deps: ApiDeps, req: FastifyRequest, live: Map<string, SourceStatus>): Json {
  const def = redactSource(record.definition);
  const { broker, ...common } = def;
  let status: Json | null = null;
  let ingestUrl: string | null = null;
  if (def.type === 'http') {
    ingestUrl = `${req.protocol}://${req.host}/ingest/${String(broker.mask_id)}`;
    status = deps.httpIngest?.stats(record.project_id, record.id) as unknown as Json | null ?? null;
  } else {
    const s = live.get(`${record.project_id}/${record.id}`);
    if (s) status = { state: s.state, in_flight: s.inFlight, lag: s.lag, last_error: s.lastError, messages: s.messages };
  }
  return {
    uid: record.id,
    ...common,
    [def.type]: broker,
    ...(ingestUrl ? { url: ingestUrl } : {}),
    project_id: record.project_id,
    from_config: record.from_config,
    status,
    created_at: record.created_at,
    updated_at: record.updated_at,
  };
}

/** The definition from a request body; 400 names the first key that is wrong. */
function definitionFrom(body: Json): SourceDefinition {
  const { source, issues } = parseSource(body);
  if (issues.length > 0 || source === null) throw settingsError(issues, 'source');
  return source;
}

export async function sourceRoutes(app: FastifyInstance, deps: ApiDeps): Promise<void> {
  const { pool, box } = deps;
  // Other replicas notice within the reload interval; this one at once.
  const applied = async (): Promise<void> => {
    deps.httpIngest?.invalidate();
    await deps.sources?.sync().catch((err: unknown) => deps.logger.warn({ err }, 'sources not reloaded yet'));
  };

  const editable = async (projectId: string, id: string): Promise<SourceRecord> => {
    const record = await getSource(pool, box, projectId, id);
    if (!record) throw notFound('source', id);
    if (record.from_config) throw conflict(`source ${JSON.stringify(id)} is declared in the config file; change it there`);
    return record;
  };

  app.post('/sources', async (req, res) => {
    const body = { ...object(req.body, 'body') };
    body.id ??= uuidv7();
    const def = definitionFrom(body);
    // One statement: of two creations with the same id, the second gets the 409.
    const record = await createSource(pool, box, req.project.id, def);
    if (!record) throw conflict(`source ${JSON.stringify(def.id)} already exists`, 'id');
    await applied();
    return reply(res, 201, 'Source created', present(record, deps, req, liveStates(deps)));
  });

  app.get('/sources', async (req, res) => {
    const records = await listSources(pool, box, req.project.id);
    const live = liveStates(deps);
    return reply(res, 200, 'Sources fetched', { content: records.map((r) => present(r, deps, req, live)) });
  });

  app.get('/sources/:sourceID', async (req, res) => {
    const { sourceID } = req.params as { sourceID: string };
    const record = await getSource(pool, box, req.project.id, sourceID);
    if (!record) throw notFound('source', sourceID);
    return reply(res, 200, 'Source fetched', present(record, deps, req, liveStates(deps)));
  });

  app.put('/sources/:sourceID', async (req, res) => {
    const { sourceID } = req.params as { sourceID: string };
    const existing = await editable(req.project.id, sourceID);
    const body = { ...object(req.body, 'body') };
    if (body.id !== undefined && body.id !== sourceID) throw conflict('id: a source keeps its id; create a new source instead', 'id');
    body.id = sourceID;
    const type = typeof body.type === 'string' && (SOURCE_TYPES as readonly string[]).includes(body.type) ? (body.type as SourceType) : null;
    // Credentials sent back as "********" keep what is stored.
    if (type !== null && type === existing.definition.type) body[type] = keepRedactedSecrets(type, body[type], existing.definition.broker);
    const { record } = await saveSource(pool, box, req.project.id, definitionFrom(body), false, existing);
    await applied();
    return reply(res, 200, 'Source updated', present(record, deps, req, liveStates(deps)));
  });

  app.delete('/sources/:sourceID', async (req, res) => {
    const { sourceID } = req.params as { sourceID: string };
    await editable(req.project.id, sourceID);
    await deleteSource(pool, req.project.id, sourceID);
    await applied();
    return reply(res, 200, 'Source deleted', null);
  });
}
