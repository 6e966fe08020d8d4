import { conflict } from '../core/errors.ts';
import { generateMaskId } from '../core/ids.ts';
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

/**
 * Whether the project has a source with this id: what a subscription's `source_id` must name. Reads
 * no configuration, so nothing is decrypted just to check.
 */
export async function sourceExists(db: Queryable, projectId: string, id: string): Promise<boolean> {
  const { rows } = await db.query('SELECT 1 FROM sources WHERE project_id = $1 AND id = $2', [projectId, id]);
  return rows.length > 0;
}

export async function getSource(db: Queryable, box: SecretBox, projectId: string, id: string): Promise<SourceRecord | null> {
  const { rows } = await db.query<SourceRow>(`SELECT ${COLUMNS} FROM sources WHERE project_id = $1 AND id = $2`, [projectId, id]);
  return rows[0] ? decode(box, rows[0]) : null;
}

/** The definition to store: an HTTP source keeps its ingest URL (mask) unless a new one is given. */
function withMask(def: SourceDefinition, existing: SourceRecord | null): SourceDefinition {
  if (def.type !== 'http' || def.broker.mask_id) return def;
  const kept = existing?.definition.type === 'http' ? existing.definition.broker.mask_id : undefined;
  return { ...def, broker: { ...def.broker, mask_id: typeof kept === 'string' && kept ? kept : generateMaskId() } };
}

const INSERT = `INSERT INTO sources (project_id, id, name, type, config_enc, from_config, mask_id) VALUES ($1, $2, $3, $4, $5, $6, $7)`;

function insertParams(box: SecretBox, projectId: string, def: SourceDefinition, fromConfig: boolean): unknown[] {
  return [projectId, def.id, def.name, def.type, box.encrypt(JSON.stringify(def)), fromConfig, def.type === 'http' ? def.broker.mask_id : null];
}

/** The record of a row just written from `def` (nothing to decrypt). */
function written(row: SourceRow, def: SourceDefinition): SourceRecord {
  return { project_id: row.project_id, id: row.id, definition: def, from_config: row.from_config, created_at: row.created_at, updated_at: row.updated_at };
}

/** An ingest URL is one source's: a mask_id another source holds (in any project) is a conflict, not a failure. */
function maskTaken(err: unknown): never {
  const e = err as { code?: string; constraint?: string };
  if (e.code === '23505' && e.constraint === 'sources_mask_id_key') {
    throw conflict('http.mask_id: another source already uses this mask_id; choose another or leave it out to get a generated one', 'http.mask_id');
  }
  throw err;
}

/** Creates a source; null when the project already has one with its id (the row is left alone). */
export async function createSource(db: Queryable, box: SecretBox, projectId: string, def: SourceDefinition): Promise<SourceRecord | null> {
  const stored = withMask(def, null);
  const { rows } = await db
    .query<SourceRow>(`${INSERT} ON CONFLICT (project_id, id) DO NOTHING RETURNING ${COLUMNS}`, insertParams(box, projectId, stored, false))
    .catch(maskTaken);
  return rows[0] ? written(rows[0], stored) : null;
}

/**
 * Inserts or replaces a source. `updated_at` moves only when the definition changed, because the
 * running connectors restart on it. `existing` is the stored record when the caller has read it
 * already (null: there is none); left out, it is read here.
 */
export async function saveSource(
  db: Queryable,
  box: SecretBox,
  projectId: string,
  def: SourceDefinition,
  fromConfig: boolean,
  existing?: SourceRecord | null,
): Promise<{ record: SourceRecord; changed: boolean }> {
  const before = existing === undefined ? await getSource(db, box, projectId, def.id) : existing;
  const stored = withMask(def, before);
  if (before && JSON.stringify(before.definition) === JSON.stringify(stored) && before.from_config === fromConfig) {
    return { record: before, changed: false };
  }
  const { rows } = await db.query<SourceRow>(
    `${INSERT}
     ON CONFLICT (project_id, id) DO UPDATE SET name = EXCLUDED.name, type = EXCLUDED.type,
       config_enc = EXCLUDED.config_enc, from_config = EXCLUDED.from_config, mask_id = EXCLUDED.mask_id,
       updated_at = clock_timestamp()
     RETURNING ${COLUMNS}`,
    insertParams(box, projectId, stored, fromConfig),
  ).catch(maskTaken);
  return { record: written(rows[0]!, stored), changed: true };
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

export interface SourceVersion {
  project_id: string;
  id: string;
  /** Changes whenever the stored definition does. */
  version: string;
}

/** What the source manager compares to notice a change: one short row per broker source, by `project/id`. */
export async function sourceVersions(db: Queryable): Promise<Map<string, SourceVersion>> {
  const { rows } = await db.query<SourceVersion>(
    `SELECT project_id, id, to_char(updated_at, 'YYYY-MM-DD"T"HH24:MI:SS.US') AS version FROM sources WHERE type <> 'http'`,
  );
  return new Map(rows.map((r) => [`${r.project_id}/${r.id}`, r]));
}

/** The sources named, in one query; those that are gone are left out. */
export async function getSources(db: Queryable, box: SecretBox, keys: readonly { project_id: string; id: string }[]): Promise<SourceRecord[]> {
  if (keys.length === 0) return [];
  const { rows } = await db.query<SourceRow>(
    `SELECT ${COLUMNS} FROM sources WHERE (project_id, id) IN (SELECT * FROM unnest($1::text[], $2::text[]))`,
    [keys.map((k) => k.project_id), keys.map((k) => k.id)],
  );
  return rows.map((r) => decode(box, r));
}

/**
 * Binds the broker addresses a source reads to its project, in the caller's transaction: 409 when
 * another project's source holds one of them. Addresses are locked one by one in a fixed order,
 * so two projects claiming the same address at once cannot both see it free.
 */
export async function claimBrokerAddresses(db: Queryable, projectId: string, sourceId: string, addresses: string[]): Promise<void> {
  const sorted = [...new Set(addresses)].sort();
  for (const a of sorted) await db.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', [a]);
  if (sorted.length > 0) {
    const { rows } = await db.query<{ address: string; project_id: string }>(
      'SELECT address, project_id FROM broker_claims WHERE address = ANY($1) AND project_id <> $2 LIMIT 1',
      [sorted, projectId],
    );
    if (rows[0]) {
      throw conflict(`another project's source already reads ${rows[0].address}; a broker address belongs to one project`, 'type');
    }
  }
  await db.query('DELETE FROM broker_claims WHERE project_id = $1 AND source_id = $2', [projectId, sourceId]);
  if (sorted.length > 0) {
    await db.query('INSERT INTO broker_claims (project_id, source_id, address) SELECT $1, $2, unnest($3::text[])', [projectId, sourceId, sorted]);
  }
}
