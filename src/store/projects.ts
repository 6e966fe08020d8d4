import type { RetentionAges } from '../config/schema.ts';
import type { BreakerSettings, MetaEventSettings, Project, ProjectType, RetrySettings, SignatureSettings } from '../core/types.ts';
import { DEFAULT_BREAKER } from '../core/types.ts';
import { uuidv7 } from '../core/ids.ts';
import type { Queryable } from './queryable.ts';

interface ProjectRow {
  id: string;
  name: string;
  type: ProjectType;
  /** `breaker` is absent in rows written before it existed. */
  settings: { signature: SignatureSettings; retry: RetrySettings; breaker?: BreakerSettings; meta_events?: MetaEventSettings | null; type_enforced?: boolean };
}

const toProject = (r: ProjectRow): Project => ({
  id: r.id,
  name: r.name,
  type: r.type,
  signature: r.settings.signature,
  retry: r.settings.retry,
  // Rows written before a breaker key existed take its default.
  breaker: { ...DEFAULT_BREAKER, ...r.settings.breaker },
  meta_events: r.settings.meta_events ?? null,
  type_enforced: r.settings.type_enforced ?? false,
});

export async function upsertProject(db: Queryable, p: Project, fromConfig: boolean): Promise<void> {
  await db.query(
    `INSERT INTO projects (id, name, type, settings, from_config) VALUES ($1, $2, $3, $4, $5)
     ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, type = EXCLUDED.type,
       settings = EXCLUDED.settings, from_config = EXCLUDED.from_config, updated_at = now()`,
    [p.id, p.name, p.type, JSON.stringify({ signature: p.signature, retry: p.retry, breaker: p.breaker, meta_events: p.meta_events, type_enforced: p.type_enforced }), fromConfig],
  );
}

export async function getProject(db: Queryable, id: string): Promise<Project | null> {
  const { rows } = await db.query<ProjectRow>('SELECT id, name, type, settings FROM projects WHERE id = $1', [id]);
  return rows[0] ? toProject(rows[0]) : null;
}

export async function listProjects(db: Queryable): Promise<Project[]> {
  const { rows } = await db.query<ProjectRow>('SELECT id, name, type, settings FROM projects ORDER BY id');
  return rows.map(toProject);
}

/** What the API's project answer shows beside the project: its times and the retention it set itself. */
export interface ProjectRecord {
  created_at: Date;
  updated_at: Date;
  /** The project's own ages by kind (migration 024), as set through the API; null: none. */
  retention: RetentionAges | null;
}

export async function getProjectRecord(db: Queryable, id: string): Promise<ProjectRecord | null> {
  const { rows } = await db.query<ProjectRecord>('SELECT created_at, updated_at, retention FROM projects WHERE id = $1', [id]);
  return rows[0] ?? null;
}

/** Sets (null: clears) the retention a project chose itself; the config file's reconcile never writes it. */
export async function setProjectRetention(db: Queryable, id: string, retention: RetentionAges | null): Promise<ProjectRecord | null> {
  const { rows } = await db.query<ProjectRecord>(
    'UPDATE projects SET retention = $2, updated_at = now() WHERE id = $1 RETURNING created_at, updated_at, retention',
    [id, retention === null ? null : JSON.stringify(retention)],
  );
  return rows[0] ?? null;
}

/** Replaces the keys a project got from config with `hashes`; generated and API-made keys stay. */
export async function setConfigApiKeys(db: Queryable, projectId: string, hashes: string[]): Promise<void> {
  await db.query(`DELETE FROM api_keys WHERE project_id = $1 AND origin = 'config' AND NOT (key_hash = ANY($2))`, [
    projectId,
    hashes,
  ]);
  for (const h of hashes) {
    await db.query(
      `INSERT INTO api_keys (id, project_id, key_hash, origin) VALUES ($1, $2, $3, 'config')
       ON CONFLICT (key_hash) DO NOTHING`,
      [uuidv7(), projectId, h],
    );
  }
}

export async function addApiKey(
  db: Queryable,
  projectId: string,
  hash: string,
  origin: 'generated' | 'api',
): Promise<void> {
  await db.query('INSERT INTO api_keys (id, project_id, key_hash, origin) VALUES ($1, $2, $3, $4)', [
    uuidv7(),
    projectId,
    hash,
    origin,
  ]);
}

export async function countApiKeys(db: Queryable, projectId: string): Promise<number> {
  const { rows } = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM api_keys WHERE project_id = $1', [
    projectId,
  ]);
  return rows[0]!.n;
}

/** The API key with this hash (its id and project), or null. */
export async function apiKeyForHash(db: Queryable, hash: string): Promise<{ id: string; project_id: string } | null> {
  const { rows } = await db.query<{ id: string; project_id: string }>('SELECT id, project_id FROM api_keys WHERE key_hash = $1', [hash]);
  return rows[0] ?? null;
}

export async function projectForKeyHash(db: Queryable, hash: string): Promise<string | null> {
  return (await apiKeyForHash(db, hash))?.project_id ?? null;
}
