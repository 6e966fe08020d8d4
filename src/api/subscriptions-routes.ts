import type { FastifyInstance } from 'fastify';
import { convoyQuery, filterList, filterText, pageRequest, wholeList } from './pagination.ts';
import { conflict, invalid, notFound } from '../core/errors.ts';
import { uuidv7 } from '../core/ids.ts';
import { checkFilter, matchesFilter, type SubscriptionFilter } from '../ingest/filter.ts';
import { cleanHeaders } from '../ingest/headers.ts';
import { parseSubscription, type SubscriptionDefinition } from '../ingest/subscription-settings.ts';
import { getEndpoint } from '../store/endpoints.ts';
import { sourceExists } from '../store/sources.ts';
import type { Queryable } from '../store/queryable.ts';
import {
  deleteSubscription,
  getSubscription,
  insertSubscription,
  listSubscriptions,
  saveSubscription,
  type Subscription,
} from '../store/subscriptions.ts';
import { reply, type ApiDeps } from './context.ts';
import { object, settingsError, type Json } from '../core/validate.ts';

/** Convoy's names for a retry_config (`type`, `duration` in seconds), with the parts given. */
function convoyRetry(r: Subscription['retry_config']): Json | null {
  if (r === null) return null;
  const out: Json = {};
  if (r.strategy !== undefined) out.type = r.strategy;
  if (r.duration !== undefined) out.duration = r.duration;
  if (r.retry_count !== undefined) out.retry_count = r.retry_count;
  return out;
}

/** Convoy's shape: the event types and the filter under `filter_config`. */
function present(s: Subscription): Json {
  return {
    uid: s.id,
    name: s.name,
    endpoint_id: s.endpoint_id,
    source_id: s.source_id,
    filter_config: { event_types: s.event_types, filter: s.filter ?? { body: {}, headers: {} } },
    retry_config: convoyRetry(s.retry_config),
    from_config: s.from_config,
    created_at: s.created_at,
    updated_at: s.updated_at,
  };
}

export async function subscriptionRoutes(app: FastifyInstance, deps: ApiDeps): Promise<void> {
  const { pool } = deps;

  /** The definition from a body, with its endpoint and source checked to exist in the project. */
  const definitionFrom = async (db: Queryable, projectId: string, body: unknown): Promise<SubscriptionDefinition> => {
    const { subscription, issues } = parseSubscription(body);
    if (issues.length > 0 || subscription === null) throw settingsError(issues, 'subscription');
    if (!(await getEndpoint(db, projectId, subscription.endpoint_id))) {
      throw invalid('endpoint_id', `endpoint ${JSON.stringify(subscription.endpoint_id)} does not exist in this project`);
    }
    if (subscription.source_id !== null && !(await sourceExists(db, projectId, subscription.source_id))) {
      throw invalid('source_id', `source ${JSON.stringify(subscription.source_id)} does not exist in this project`);
    }
    return subscription;
  };

  const editable = async (projectId: string, id: string): Promise<Subscription> => {
    const s = await getSubscription(pool, projectId, id);
    if (!s) throw notFound('subscription', id);
    if (s.from_config) throw conflict(`subscription ${JSON.stringify(id)} is declared in the config file; change it there`);
    return s;
  };

  app.post('/subscriptions', async (req, res) => {
    const def = await definitionFrom(pool, req.project.id, req.body);
    const id = def.id || uuidv7();
    // One statement, so of two creates racing on an id exactly one wins and the other gets 409.
    const saved = await insertSubscription(pool, req.project.id, id, def, false);
    if (!saved) throw conflict(`subscription ${JSON.stringify(id)} already exists`, 'id');
    return reply(res, 201, 'Subscription created', present(saved));
  });

  app.get('/subscriptions', async (req, res) => {
    const q = convoyQuery(req.query);
    pageRequest(q);
    const list = await listSubscriptions(pool, req.project.id, {
      endpoint_id: filterList(q, 'endpoint_id') ?? undefined,
      source_id: filterText(q, 'source_id') ?? undefined,
      name: filterText(q, 'name') ?? undefined,
    });
    return reply(res, 200, 'Subscriptions fetched', wholeList(list.map(present)));
  });

  app.get('/subscriptions/:id', async (req, res) => {
    const { id } = req.params as { id: string };
    const s = await getSubscription(pool, req.project.id, id);
    if (!s) throw notFound('subscription', id);
    return reply(res, 200, 'Subscription fetched', present(s));
  });

  // Fields left out keep their values, as for endpoints.
  app.put('/subscriptions/:id', async (req, res) => {
    const { id } = req.params as { id: string };
    const current = await editable(req.project.id, id);
    const body = object(req.body, 'body');
    if (body.id !== undefined && body.id !== id) throw conflict('id: a subscription keeps its id', 'id');
    const given = (body.filter_config ?? {}) as Json;
    const merged = {
      name: body.name ?? current.name,
      endpoint_id: body.endpoint_id ?? current.endpoint_id,
      source_id: 'source_id' in body ? body.source_id : current.source_id,
      filter_config: {
        event_types: given.event_types ?? current.event_types,
        filter: 'filter' in given ? given.filter : (current.filter ?? undefined),
      },
      retry_config: 'retry_config' in body ? body.retry_config : convoyRetry(current.retry_config),
    };
    const def = await definitionFrom(pool, req.project.id, merged);
    const saved = await saveSubscription(pool, req.project.id, id, def, false);
    return reply(res, 202, 'Subscription updated', present(saved));
  });

  app.delete('/subscriptions/:id', async (req, res) => {
    const { id } = req.params as { id: string };
    await editable(req.project.id, id);
    await deleteSubscription(pool, req.project.id, id);
    return reply(res, 200, 'Subscription deleted', null);
  });

  // Tries a filter on a sample: `{ request: { body, headers }, filter: { body, headers } }`
  // (`schema` is taken for `filter`, as Convoy names it).
  app.post('/subscriptions/test_filter', async (req, res) => {
    const body = object(req.body, 'body');
    const request = object(body.request ?? {}, 'request');
    const key = body.filter === undefined || body.filter === null ? 'schema' : 'filter';
    const filter = body[key];
    if (filter === undefined) throw invalid('filter', 'is required: { body?, headers? }');
    const problems = checkFilter(filter, `body.${key}`);
    if (problems.length > 0) throw settingsError(problems, 'body');
    const given = object(request.headers ?? {}, 'request.headers');
    for (const [k, v] of Object.entries(given)) {
      if (!(typeof v === 'string' || (Array.isArray(v) && v.every((x) => typeof x === 'string')))) {
        throw invalid(`request.headers.${k}`, 'must be a string or a list of strings');
      }
    }
    // As routing sees an event's headers: names lower-cased, a repeated header's values joined.
    const headers = cleanHeaders(given as Record<string, string | string[]>);
    const matches = matchesFilter(filter as SubscriptionFilter, { body: request.body ?? null, headers });
    // Convoy's answer: data is the verdict itself.
    return reply(res, 200, matches ? 'The filter matches' : 'The filter does not match', matches);
  });
}
