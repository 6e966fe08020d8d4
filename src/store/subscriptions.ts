import type { SubscriptionRetry } from '../core/types.ts';
import type { SubscriptionFilter } from '../ingest/filter.ts';
import type { Queryable } from './queryable.ts';

export interface Subscription {
  project_id: string;
  id: string;
  name: string;
  endpoint_id: string;
  source_id: string | null;
  event_types: string[];
  filter: SubscriptionFilter | null;
  /** Convoy's retry_config, in Wharf's names; null: the project's `retry` alone. */
  retry_config: SubscriptionRetry | null;
  from_config: boolean;
  created_at: Date;
  updated_at: Date;
}

/** The writable fields, already validated. */
export type SubscriptionFields = Pick<Subscription, 'name' | 'endpoint_id' | 'source_id' | 'event_types' | 'filter' | 'retry_config'>;

const COLUMNS = 'project_id, id, name, endpoint_id, source_id, event_types, filter, retry_config, from_config, created_at, updated_at';

const json = (v: object | null): string | null => (v === null ? null : JSON.stringify(v));

export async function listSubscriptions(
  db: Queryable,
  projectId: string,
  where: { endpoint_id?: string[]; source_id?: string; name?: string } = {},
): Promise<Subscription[]> {
  const params: unknown[] = [projectId];
  const clauses = ['project_id = $1'];
  for (const [column, value] of Object.entries(where)) {
    if (value === undefined) continue;
    params.push(value);
    clauses.push(Array.isArray(value) ? `${column} = ANY($${params.length})` : `${column} = $${params.length}`);
  }
  const { rows } = await db.query<Subscription>(
    `SELECT ${COLUMNS} FROM subscriptions WHERE ${clauses.join(' AND ')} ORDER BY created_at, id`,
    params,
  );
  return rows;
}

export async function getSubscription(db: Queryable, projectId: string, id: string): Promise<Subscription | null> {
  const { rows } = await db.query<Subscription>(`SELECT ${COLUMNS} FROM subscriptions WHERE project_id = $1 AND id = $2`, [projectId, id]);
  return rows[0] ?? null;
}

/** Inserts a new subscription; null when one with this id already exists (it is left as it is). */
export async function insertSubscription(
  db: Queryable,
  projectId: string,
  id: string,
  f: SubscriptionFields,
  fromConfig: boolean,
): Promise<Subscription | null> {
  const { rows } = await db.query<Subscription>(
    `INSERT INTO subscriptions (project_id, id, name, endpoint_id, source_id, event_types, filter, retry_config, from_config)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
     ON CONFLICT (project_id, id) DO NOTHING
     RETURNING ${COLUMNS}`,
    [projectId, id, f.name, f.endpoint_id, f.source_id, f.event_types, json(f.filter), json(f.retry_config), fromConfig],
  );
  return rows[0] ?? null;
}

/** Inserts or replaces a subscription by id. */
export async function saveSubscription(
  db: Queryable,
  projectId: string,
  id: string,
  f: SubscriptionFields,
  fromConfig: boolean,
): Promise<Subscription> {
  const { rows } = await db.query<Subscription>(
    `INSERT INTO subscriptions (project_id, id, name, endpoint_id, source_id, event_types, filter, retry_config, from_config)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
     ON CONFLICT (project_id, id) DO UPDATE SET name = EXCLUDED.name, endpoint_id = EXCLUDED.endpoint_id,
       source_id = EXCLUDED.source_id, event_types = EXCLUDED.event_types, filter = EXCLUDED.filter,
       retry_config = EXCLUDED.retry_config, from_config = EXCLUDED.from_config, updated_at = now()
     RETURNING ${COLUMNS}`,
    [projectId, id, f.name, f.endpoint_id, f.source_id, f.event_types, json(f.filter), json(f.retry_config), fromConfig],
  );
  return rows[0]!;
}

export async function deleteSubscription(db: Queryable, projectId: string, id: string): Promise<boolean> {
  const { rowCount } = await db.query('DELETE FROM subscriptions WHERE project_id = $1 AND id = $2', [projectId, id]);
  return (rowCount ?? 0) > 0;
}
