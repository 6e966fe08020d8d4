import type { EndpointStatus, EventInput, SubscriptionRetry } from '../core/types.ts';
import type { Queryable } from '../store/queryable.ts';
import { matchesFilter, type SubscriptionFilter } from './filter.ts';
import { cleanHeaders } from './headers.ts';
import { sealedSecretsJson } from '../store/endpoints.ts';
import { endpointWorkColumns, type EndpointWork } from '../dispatch/work.ts';
import { textArray } from '../store/params.ts';

/**
 * Routing gives the event loop back this often. One filter evaluation is bounded (filter-cost.ts),
 * but a batch of a thousand broker messages, each over many subscriptions, is not.
 */
const SLICE_MS = 10;

/**
 * The slice is the process's, not a batch's: batches routed at once (one per project and source)
 * take turns, one slice per turn of the event loop, first come first served. Were each batch to
 * yield on its own clock, every batch waiting in the same loop phase would run its slice back to
 * back, and the loop would stall for all of them together.
 */
let sliceStart = performance.now();
const waiting: (() => void)[] = [];
let ticking = false;

function tick(): void {
  const next = waiting.shift();
  if (next) {
    sliceStart = performance.now();
    next();
  }
  if (waiting.length > 0) setImmediate(tick);
  else ticking = false;
}

/** Returns at once within the current slice; past it, waits for a turn of the loop of its own. */
async function pace(): Promise<void> {
  if (performance.now() - sliceStart <= SLICE_MS) return;
  await new Promise<void>((resolve) => {
    waiting.push(resolve);
    if (!ticking) {
      ticking = true;
      setImmediate(tick);
    }
  });
}

export interface RouteTarget {
  endpoint_id: string;
  status: EndpointStatus;
  /** The retry_config of the subscription that routed the event here (null: the project's alone). */
  retry: SubscriptionRetry | null;
  /** What a send to the endpoint needs, when routing was asked for it (`withWork`). */
  work?: EndpointWork;
}

interface SubscriptionRow {
  endpoint_id: string;
  source_id: string | null;
  event_types: string[];
  filter: SubscriptionFilter | null;
  retry_config: SubscriptionRetry | null;
}

/** What routes an event to an endpoint that has no subscriptions: the project's settings alone. */
const UNSUBSCRIBED = { retry_config: null };

/** `*` matches everything; `order.*` matches `order.created` and `order.paid.late`. */
export function eventTypeMatches(patterns: string[], eventType: string): boolean {
  return patterns.some(
    (p) => p === '*' || p === eventType || (p.endsWith('.*') && eventType.startsWith(p.slice(0, -1))),
  );
}

/**
 * routeBatch's statement, by [withWork][broadcast]: four texts made once, so each batch passes the
 * same string. One built per batch was a new string every time, hashed whole again to find its
 * prepared statement's name (store/pool.ts, preparedName): a 1.4 KB text, 53 ms of a bench run.
 */
const ROUTE_SQL = [false, true].map((withWork) =>
  [false, true].map(
    (broadcast) =>
      `SELECT e.id, e.owner_id, e.status,
       COALESCE((SELECT json_agg(json_build_object('endpoint_id', s.endpoint_id, 'source_id', s.source_id,
                   'event_types', s.event_types, 'filter', s.filter, 'retry_config', s.retry_config)
                 ORDER BY s.created_at, s.id)
                 FROM subscriptions s WHERE s.project_id = e.project_id AND s.endpoint_id = e.id), '[]') AS subs` +
      (withWork ? `, ${endpointWorkColumns('e')}, ${sealedSecretsJson('e')} AS secrets, p.settings` : '') +
      ` FROM endpoints e` +
      (withWork ? ' JOIN projects p ON p.id = e.project_id' : '') +
      ' WHERE e.project_id = $1' +
      (broadcast ? '' : ' AND (e.id = ANY($2::text[]) OR e.owner_id = ANY($3::text[]))'),
  ),
);

export type RouteResult = { ok: true; targets: RouteTarget[] } | { ok: false; code: string; reason: string };

/**
 * Decides which endpoints of one project each event goes to. `single` names an endpoint, `fanout`
 * an owner, `broadcast` every endpoint; subscriptions then decide which of those take the event
 * type (an endpoint without subscriptions takes every type). One query for the batch.
 */
export async function routeBatch(db: Queryable, projectId: string, inputs: EventInput[], withWork = false): Promise<RouteResult[]> {
  const singleIds = new Set<string>();
  const owners = new Set<string>();
  let broadcast = false;
  for (const i of inputs) {
    if (i.message_type === 'single' && i.endpoint_id) singleIds.add(i.endpoint_id);
    else if (i.message_type === 'fanout' && i.owner_id) owners.add(i.owner_id);
    else if (i.message_type === 'broadcast') broadcast = true;
  }

  // Endpoints and their subscriptions in one round trip: a round trip, not a row, is what an
  // ingest costs (docs/cost-per-webhook.md). Subscriptions come oldest first: of two that both
  // take an event, the older one's retry_config holds. No lock: the statement that inserts the
  // deliveries locks their endpoints (persist.ts, insertEventsSql), in place of the foreign key
  // they no longer check row by row (migration 017), and leaves out those of an endpoint deleted
  // since this read. With `withWork` the same round trip reads what a send needs (the endpoint,
  // its live secrets, the project's settings), for the deliveries this process's dispatcher takes
  // straight from ingest.
  const { rows } = await db.query<{ id: string; owner_id: string | null; status: EndpointStatus; subs: SubscriptionRow[] } & Partial<EndpointWork>>(
    ROUTE_SQL[withWork ? 1 : 0]![broadcast ? 1 : 0]!,
    broadcast ? [projectId] : [projectId, textArray([...singleIds]), textArray([...owners])],
  );
  const endpoints = rows.map(({ id, owner_id, status, subs: _, ...work }) => ({ id, owner_id, status, work: withWork ? (work as EndpointWork) : undefined }));
  const subs = new Map(rows.map((e) => [e.id, e.subs]));
  const byId = new Map(endpoints.map((e) => [e.id, e]));
  const byOwner = new Map<string, typeof endpoints>();
  for (const e of endpoints) {
    if (e.owner_id === null) continue;
    const list = byOwner.get(e.owner_id) ?? [];
    list.push(e);
    byOwner.set(e.owner_id, list);
  }

  // What filters see of an event, worked out once per event and only if a filter asks.
  const seen = new Map<EventInput, { body: unknown; headers: Record<string, string> }>();
  const view = (input: EventInput) => {
    let v = seen.get(input);
    if (!v) {
      // The headers the event arrived with (cleaned at ingest) win over custom headers of that name.
      const headers = cleanHeaders({ ...input.custom_headers, ...input.headers });
      let body: unknown = null;
      try {
        body = JSON.parse(input.data);
      } catch {
        // data is JSON by construction; a filter on a body that is not simply does not match
      }
      v = { body, headers };
      seen.set(input, v);
    }
    return v;
  };
  /** The subscription that takes the event for this endpoint, or null when none does. */
  const subscribed = async (endpointId: string, input: EventInput): Promise<Pick<SubscriptionRow, 'retry_config'> | null> => {
    const list = subs.get(endpointId);
    if (!list || list.length === 0) return UNSUBSCRIBED;
    for (const s of list) {
      if (s.source_id !== null && s.source_id !== input.source_id) continue;
      if (!eventTypeMatches(s.event_types, input.event_type)) continue;
      if (s.filter === null) return s;
      await pace();
      if (matchesFilter(s.filter, view(input))) return s;
    }
    return null;
  };
  const targetsOf = async (list: typeof endpoints, input: EventInput): Promise<RouteTarget[]> => {
    const targets: RouteTarget[] = [];
    for (const e of list) {
      const by = await subscribed(e.id, input);
      if (by) targets.push({ endpoint_id: e.id, status: e.status, retry: by.retry_config, work: e.work });
    }
    return targets;
  };

  const routeOne = async (input: EventInput): Promise<RouteResult> => {
    switch (input.message_type) {
      case 'single': {
        const e = input.endpoint_id ? byId.get(input.endpoint_id) : undefined;
        if (!e) {
          return { ok: false, code: 'WHARF_ERR_UNKNOWN_ENDPOINT', reason: `endpoint_id: endpoint ${JSON.stringify(input.endpoint_id)} not found` };
        }
        return { ok: true, targets: await targetsOf([e], input) };
      }
      case 'fanout': {
        const list = input.owner_id ? byOwner.get(input.owner_id) : undefined;
        if (!list || list.length === 0) {
          return { ok: false, code: 'WHARF_ERR_UNKNOWN_OWNER', reason: `owner_id: no endpoint has owner_id ${JSON.stringify(input.owner_id)}` };
        }
        return { ok: true, targets: await targetsOf(list, input) };
      }
      case 'broadcast':
        return { ok: true, targets: await targetsOf(endpoints, input) };
    }
  };
  const results: RouteResult[] = [];
  for (const input of inputs) results.push(await routeOne(input));
  return results;
}
