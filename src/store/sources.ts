import { generateMaskId } from '../sources/http-settings.ts';
import type { SourceDefinition } from '../sources/settings.ts';
import type { SecretBox } from './crypto.ts';
import type { Queryable } from './queryable.ts';

/** A stored source with its definition decrypted. */
export interface SourceRecord {
  project_id: string;
  id: string;
  definition: SourceDefinition;
  from_config: boolean;
  created_at: Date;
  updated_at: Date;
}

interface SourceRow {
  project_id: string;
  id: string;
  config_enc: string;
  from_config: boolean;
  created_at: Date;
  updated_at: Date;
}

const COLUMNS = 'project_id, id, config_enc, from_config, created_at, updated_at';

function decode(box: SecretBox, row: SourceRow): SourceRecord {
  const definition = JSON.parse(box.decrypt(row.config_enc)) as SourceDefinition;
  return { project_id: row.project_id, id: row.id, definition, from_config: row.from_config, created_at: row.created_at, updated_at: row.updated_at };
}

export async function listSources(db: Queryable, box: SecretBox, projectId?: string): Promise<SourceRecord[]> {
  const { rows } = await db.query<SourceRow>(
    projectId === undefined
      ? `SELECT ${COLUMNS} FROM sources ORDER BY project_id, id`
      : `SELECT ${COLUMNS} FROM sources WHERE project_id = $1 ORDER BY created_at, id`,
    projectId === undefined ? [] : [projectId],
  );
  return rows.map((r) => decode(box, r));
}

export async function getSource(db: Queryable, box: SecretBox, projectId: string, id: string): Promise<SourceRecord | null> {
  const { rows } = await db.query<SourceRow>(`SELECT ${COLUMNS} FROM sources WHERE project_id = $1 AND id = $2`, [projectId, id]);
  return rows[0] ? decode(box, rows[0]) : null;
}

/**
 * Inserts or replaces a source. `updated_at` moves only when the definition changed, because the
 * running connectors restart on it.
 */
export async function saveSource(
  db: Queryable,
  box: SecretBox,
  projectId: string,
  def: SourceDefinition,
  fromConfig: boolean,
): Promise<{ record: SourceRecord; changed: boolean }> {
  const existing = await getSource(db, box, projectId, def.id);
  if (def.type === 'http' && !def.broker.mask_id) {
    // An ingest URL outlives edits: the stored mask is kept unless a new one is given.
    const kept = existing?.definition.type === 'http' ? existing.definition.broker.mask_id : undefined;
    def = { ...def, broker: { ...def.broker, mask_id: typeof kept === 'string' && kept ? kept : generateMaskId() } };
  }
  if (existing && JSON.stringify(existing.definition) === JSON.stringify(def) && existing.from_config === fromConfig) {
    return { record: existing, changed: false };
  }
  const { rows } = await db.query<SourceRow>(
    `INSERT INTO sources (project_id, id, name, type, config_enc, from_config, mask_id) VALUES ($1, $2, $3, $4, $5, $6, $7)
     ON CONFLICT (project_id, id) DO UPDATE SET name = EXCLUDED.name, type = EXCLUDED.type,
       config_enc = EXCLUDED.config_enc, from_config = EXCLUDED.from_config, mask_id = EXCLUDED.mask_id,
       updated_at = clock_timestamp()
     RETURNING ${COLUMNS}`,
    [projectId, def.id, def.name, def.type, box.encrypt(JSON.stringify(def)), fromConfig, def.type === 'http' ? def.broker.mask_id : null],
  );
  return { record: decode(box, rows[0]!), changed: true };
}

export async function deleteSource(db: Queryable, projectId: string, id: string): Promise<boolean> {
  const { rowCount } = await db.query('DELETE FROM sources WHERE project_id = $1 AND id = $2', [projectId, id]);
  return (rowCount ?? 0) > 0;
}

/** The HTTP source an ingest URL belongs to. */
export async function sourceByMask(db: Queryable, box: SecretBox, maskId: string): Promise<SourceRecord | null> {
  const { rows } = await db.query<SourceRow>(`SELECT ${COLUMNS} FROM sources WHERE mask_id = $1 AND type = 'http'`, [maskId]);
  return rows[0] ? decode(box, rows[0]) : null;
}

/** What the source manager compares to notice a change: one short row per broker source. */
export async function sourceVersions(db: Queryable): Promise<Map<string, string>> {
  const { rows } = await db.query<{ project_id: string; id: string; v: string }>(
    `SELECT project_id, id, to_char(updated_at, 'YYYY-MM-DD"T"HH24:MI:SS.US') AS v FROM sources WHERE type <> 'http'`,
  );
  return new Map(rows.map((r) => [`${r.project_id}/${r.id}`, r.v]));
}
