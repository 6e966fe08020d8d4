import type { FastifyInstance } from 'fastify';
import { WharfError, conflict, notFound } from '../core/errors.ts';
import { uuidv7 } from '../core/ids.ts';
import { keepRedactedSecrets, parseSource, redactSource } from '../sources/settings.ts';
import { isBrokerType } from '../../connectors/index.ts';
import { deleteSource, getSource, listSources, saveSource, type SourceRecord } from '../store/sources.ts';
import { reply, type ApiDeps } from './server.ts';
import { object, type Json } from './validate.ts';

/** A source as the API shows it: its definition with credentials redacted, and its live state here. */
function present(record: SourceRecord, deps: ApiDeps): Json {
  const status = deps.sources?.status().find((s) => s.project_id === record.project_id && s.id === record.id);
  const def = redactSource(record.definition);
  const { broker, ...common } = def;
  return {
    uid: record.id,
    ...common,
    [def.type]: broker,
    project_id: record.project_id,
    from_config: record.from_config,
    status: status
      ? { state: status.state, in_flight: status.inFlight, lag: status.lag, last_error: status.lastError, messages: status.messages }
      : null,
    created_at: record.created_at,
    updated_at: record.updated_at,
  };
}

/** The definition from a request body; 400 names the first key that is wrong. */
function definitionFrom(body: Json): ReturnType<typeof parseSource>['source'] & object {
  const { source, issues: found } = parseSource(body);
  // A wrong value says more than a key the schema does not know, so it is named first.
  const issues = [...found.filter((i) => !i.unknown), ...found.filter((i) => i.unknown)];
  if (issues.length > 0 || source === null) {
    const first = issues[0]!;
    const field = first.path.replace(/^source\.?/, '');
    const message = first.unknown ? `${field}: unknown field` : `${field}: ${first.message}`;
    const rest = issues.length > 1 ? ` (and ${issues.length - 1} more: ${issues.slice(1).map((i) => i.path.replace(/^source\.?/, '')).join(', ')})` : '';
    throw new WharfError('WHARF_ERR_INVALID', message + rest, { status: 400, field });
  }
  return source;
}

export async function sourceRoutes(app: FastifyInstance, deps: ApiDeps): Promise<void> {
  const { pool, box } = deps;
  // Other replicas notice within the reload interval; this one at once.
  const applied = async (): Promise<void> => {
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
    if (await getSource(pool, box, req.project.id, def.id)) throw conflict(`source ${JSON.stringify(def.id)} already exists`, 'id');
    const { record } = await saveSource(pool, box, req.project.id, def, false);
    await applied();
    return reply(res, 201, 'Source created', present(record, deps));
  });

  app.get('/sources', async (req, res) => {
    const records = await listSources(pool, box, req.project.id);
    return reply(res, 200, 'Sources fetched', { content: records.map((r) => present(r, deps)) });
  });

  app.get('/sources/:sourceID', async (req, res) => {
    const { sourceID } = req.params as { sourceID: string };
    const record = await getSource(pool, box, req.project.id, sourceID);
    if (!record) throw notFound('source', sourceID);
    return reply(res, 200, 'Source fetched', present(record, deps));
  });

  app.put('/sources/:sourceID', async (req, res) => {
    const { sourceID } = req.params as { sourceID: string };
    const existing = await editable(req.project.id, sourceID);
    const body = { ...object(req.body, 'body') };
    if (body.id !== undefined && body.id !== sourceID) throw conflict('id: a source keeps its id; create a new source instead', 'id');
    body.id = sourceID;
    const type = typeof body.type === 'string' && isBrokerType(body.type) ? body.type : null;
    // Credentials sent back as "********" keep what is stored.
    if (type !== null && type === existing.definition.type) body[type] = keepRedactedSecrets(type, body[type], existing.definition.broker);
    const { record } = await saveSource(pool, box, req.project.id, definitionFrom(body), false);
    await applied();
    return reply(res, 200, 'Source updated', present(record, deps));
  });

  app.delete('/sources/:sourceID', async (req, res) => {
    const { sourceID } = req.params as { sourceID: string };
    await editable(req.project.id, sourceID);
    await deleteSource(pool, req.project.id, sourceID);
    await applied();
    return reply(res, 200, 'Source deleted', null);
  });
}
