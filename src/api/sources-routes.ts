import type { FastifyInstance, FastifyRequest } from 'fastify';
import { trafficProblem, type Project } from '../core/types.ts';
import { convoyVerifier, fromConvoySource } from '../sources/convoy-shape.ts';
import { wholeList } from './pagination.ts';
import { WharfError, conflict, invalid, notFound } from '../core/errors.ts';
import { uuidv7 } from '../core/ids.ts';
import type { EgressGuard } from '../core/connector.ts';
import { EGRESS_BLOCKED } from '../delivery/egress.ts';
import { SOURCE_TYPES, brokerAddresses, brokerHosts, keepRedactedSecrets, parseSource, redactSource, type SourceDefinition, type SourceType } from '../sources/settings.ts';
import type { SourceStatus } from '../sources/manager.ts';
import { claimBrokerAddresses, createSource, deleteSource, getSource, listSources, saveSource, type SourceRecord } from '../store/sources.ts';
import { withTransaction } from '../store/pool.ts';
import { reply, type ApiDeps } from './context.ts';
import { object, settingsError, type Json } from '../core/validate.ts';

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
    // Convoy's names for an HTTP source's parts, beside Wharf's.
    ...(def.type === 'http' ? { mask_id: broker.mask_id, verifier: convoyVerifier(broker.verifier as Json | undefined), provider: providerOf(broker.verifier as Json | undefined) } : {}),
    ...(ingestUrl ? { url: ingestUrl } : {}),
    project_id: record.project_id,
    from_config: record.from_config,
    status,
    created_at: record.created_at,
    updated_at: record.updated_at,
  };
}

/** Convoy's `provider` of a source whose verifier is one of its presets; "" (Convoy's none) otherwise. */
function providerOf(verifier: Json | undefined): string {
  return verifier && (verifier.type === 'github' || verifier.type === 'shopify') ? (verifier.type as string) : '';
}

/**
 * The definition from a request body; 400 names the first key that is wrong. A source made with a
 * project's API key is the tenant's choice of broker: it may only be a type the operator opened to
 * the API (`ingest.api_broker_types`), and it must bring credentials of its own, never borrowing
 * Wharf's cloud identity or a broker's default login.
 */
function definitionFrom(given: Json, allowedBrokers: readonly string[], project: Project): SourceDefinition {
  const body = fromConvoySource(given) as Json;
  if (typeof body.type === 'string') {
    const refused = trafficProblem(project, body.type === 'http' ? 'incoming' : 'outgoing');
    if (refused) throw new WharfError('WHARF_ERR_FORBIDDEN', `type: ${refused}`, { status: 403, field: 'type' });
  }
  // The type is judged first: a tenant learns nothing of a broker type it may not use.
  if (typeof body.type === 'string' && body.type !== 'http' && (SOURCE_TYPES as readonly string[]).includes(body.type) && !allowedBrokers.includes(body.type)) {
    throw new WharfError(
      'WHARF_ERR_FORBIDDEN',
      `type: ${body.type} sources cannot be created through the API here; the operator declares broker sources in the config file, or opens a type to the API with ingest.api_broker_types`,
      { status: 403, field: 'type' },
    );
  }
  const { source, issues } = parseSource(body);
  if (issues.length > 0 || source === null) throw settingsError(issues, 'source');
  if (source.type === 'http') return source;
  const broker = source.broker as { use_default_credentials?: unknown; url?: unknown };
  if (broker.use_default_credentials === true) {
    throw invalid(`${source.type}.use_default_credentials`, "only the operator's config file may lend a source Wharf's own cloud identity; give the source credentials of its own");
  }
  if (source.type === 'rabbitmq' && typeof broker.url === 'string') {
    const url = new URL(broker.url);
    if (url.username === '' || url.password === '') {
      throw invalid('rabbitmq.url', "must carry the source's own user and password (amqp://user:password@host/vhost); the broker's default login is not lent to API sources");
    }
  }
  return source;
}

/** How long a save waits for DNS to judge a broker's host; past it, the connector judges at connect. */
const HOST_CHECK_MS = 2_000;

/**
 * A broker source's hosts, judged by the egress policy before it is saved: an address the policy
 * refuses is a 400 naming the key. A name that does not resolve (yet), or a slow resolver, is left
 * to the connector, which judges every address again each time it connects (DNS may change).
 */
async function refuseBlockedHosts(def: SourceDefinition, egress: EgressGuard): Promise<void> {
  const refusals = await Promise.all(
    brokerHosts(def).map(async ({ host, key }) => {
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<null>((resolve) => {
        timer = setTimeout(resolve, HOST_CHECK_MS, null);
      });
      const verdict = await Promise.race([egress.check(host).then(() => null, (err: unknown) => err), late]).finally(() => clearTimeout(timer));
      return verdict instanceof WharfError && verdict.code === EGRESS_BLOCKED ? invalid(key, verdict.message) : null;
    }),
  );
  const first = refusals.find((r) => r !== null);
  if (first) throw first;
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
    const def = definitionFrom(body, deps.apiBrokerTypes, req.project);
    await refuseBlockedHosts(def, deps.brokerEgress);
    // One statement: of two creations with the same id, the second gets the 409. The broker
    // address is bound to the project in the same transaction.
    const record = await withTransaction(pool, async (db) => {
      const created = await createSource(db, box, req.project.id, def);
      if (created) await claimBrokerAddresses(db, req.project.id, def.id, brokerAddresses(def));
      return created;
    });
    if (!record) throw conflict(`source ${JSON.stringify(def.id)} already exists`, 'id');
    await applied();
    return reply(res, 201, 'Source created', present(record, deps, req, liveStates(deps)));
  });

  app.get('/sources', async (req, res) => {
    const records = await listSources(pool, box, req.project.id);
    const live = liveStates(deps);
    return reply(res, 200, 'Sources fetched', wholeList(records.map((r) => present(r, deps, req, live))));
  });

  app.get('/sources/:sourceID', async (req, res) => {
    const { sourceID } = req.params as { sourceID: string };
    const record = await getSource(pool, box, req.project.id, sourceID);
    if (!record) throw notFound('source', sourceID);
    return reply(res, 200, 'Source fetched', present(record, deps, req, liveStates(deps)));
  });

  // convoy-go's Source.Update posts where Convoy's spec says PUT; both update.
  app.route({
    method: ['PUT', 'POST'],
    url: '/sources/:sourceID',
    handler: async (req, res) => {
      const { sourceID } = req.params as { sourceID: string };
      const existing = await editable(req.project.id, sourceID);
      const given = { ...object(req.body, 'body') };
      if (given.id !== undefined && given.id !== sourceID) throw conflict('id: a source keeps its id; create a new source instead', 'id');
      // Convoy's shape first, so its secrets sent back as ******** are found where Wharf keeps them.
      const body = { ...fromConvoySource({ ...given, id: sourceID }) } as Json;
      body.id = sourceID;
      const type = typeof body.type === 'string' && (SOURCE_TYPES as readonly string[]).includes(body.type) ? (body.type as SourceType) : null;
      // Credentials sent back as "********" keep what is stored.
      if (type !== null && type === existing.definition.type) body[type] = keepRedactedSecrets(type, body[type], existing.definition.broker);
      const def = definitionFrom(body, deps.apiBrokerTypes, req.project);
      await refuseBlockedHosts(def, deps.brokerEgress);
      const { record } = await withTransaction(pool, async (db) => {
        const saved = await saveSource(db, box, req.project.id, def, false, existing);
        await claimBrokerAddresses(db, req.project.id, def.id, brokerAddresses(def));
        return saved;
      });
      await applied();
      return reply(res, 202, 'Source updated', present(record, deps, req, liveStates(deps)));
    },
  });

  app.delete('/sources/:sourceID', async (req, res) => {
    const { sourceID } = req.params as { sourceID: string };
    await editable(req.project.id, sourceID);
    await deleteSource(pool, req.project.id, sourceID);
    await applied();
    return reply(res, 200, 'Source deleted', null);
  });
}
