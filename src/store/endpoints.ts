import type { Endpoint, EndpointFields, EndpointSecret } from '../core/types.ts';
import type { EndpointCredentials } from '../delivery/credentials.ts';
import { uuidv7 } from '../core/ids.ts';
import type { SecretBox } from './crypto.ts';
import type { Queryable } from './queryable.ts';

export type { EndpointFields };

const COLUMNS = `project_id, id, name, url, owner_id, description, http_timeout, advanced_signatures,
  support_email, notification_url, content_type, rate_limit, rate_limit_duration, status, created_at, updated_at`;

/**
 * Who made a secret: a project API key (its id), the operator (the dashboard's operator
 * session), or a portal link (its id); `via` is where the request came from. Never a credential's
 * value.
 */
export interface Actor {
  type: 'api_key' | 'operator' | 'portal_link';
  id: string | null;
  via: 'api' | 'dashboard' | 'portal';
}

export interface SecretInfo {
  uid: string;
  created_at: string;
  expires_at: string | null;
  /** Null for secrets from the config file, or made before Wharf recorded it. */
  created_by: Actor | null;
}

export async function insertEndpoint(
  db: Queryable,
  box: SecretBox,
  projectId: string,
  id: string,
  f: EndpointFields,
  secret: string,
  options: { credentials?: EndpointCredentials; fromConfig?: boolean; createdBy?: Actor } = {},
): Promise<Endpoint> {
  const { rows } = await db.query<Endpoint>(
    `INSERT INTO endpoints (project_id, id, name, url, owner_id, description, http_timeout,
       advanced_signatures, support_email, content_type, rate_limit, rate_limit_duration, from_config, notification_url,
       credentials_enc)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) RETURNING ${COLUMNS}`,
    [projectId, id, f.name, f.url, f.owner_id, f.description, f.http_timeout, f.advanced_signatures, f.support_email,
      f.content_type, f.rate_limit, f.rate_limit_duration, options.fromConfig ?? false, f.notification_url,
      sealCredentials(box, options.credentials)],
  );
  await addSecret(db, box, projectId, id, secret, null, options.createdBy ?? null);
  return rows[0]!;
}

export async function updateEndpoint(
  db: Queryable,
  projectId: string,
  id: string,
  f: EndpointFields,
): Promise<Endpoint | null> {
  const { rows } = await db.query<Endpoint>(
    `UPDATE endpoints SET name = $3, url = $4, owner_id = $5, description = $6, http_timeout = $7,
       advanced_signatures = $8, support_email = $9, content_type = $10, rate_limit = $11,
       rate_limit_duration = $12, notification_url = $13, updated_at = now()
     WHERE project_id = $1 AND id = $2 RETURNING ${COLUMNS}`,
    [projectId, id, f.name, f.url, f.owner_id, f.description, f.http_timeout, f.advanced_signatures, f.support_email,
      f.content_type, f.rate_limit, f.rate_limit_duration, f.notification_url],
  );
  return rows[0] ?? null;
}

/** Ends the live secrets that have no end yet `seconds` from now (a shorter end already set stays). */
export async function expireSecrets(db: Queryable, projectId: string, endpointId: string, seconds: number): Promise<void> {
  await db.query(
    `UPDATE endpoint_secrets SET expires_at = now() + make_interval(secs => $3)
     WHERE project_id = $1 AND endpoint_id = $2 AND (expires_at IS NULL OR expires_at > now() + make_interval(secs => $3))`,
    [projectId, endpointId, seconds],
  );
}

export async function getEndpoint(db: Queryable, projectId: string, id: string, options: { forUpdate?: boolean } = {}): Promise<Endpoint | null> {
  const lock = options.forUpdate ? ' FOR UPDATE' : '';
  const { rows } = await db.query<Endpoint>(`SELECT ${COLUMNS} FROM endpoints WHERE project_id = $1 AND id = $2${lock}`, [projectId, id]);
  return rows[0] ?? null;
}

export async function deleteEndpoint(db: Queryable, projectId: string, id: string): Promise<boolean> {
  const res = await db.query('DELETE FROM endpoints WHERE project_id = $1 AND id = $2', [projectId, id]);
  return (res.rowCount ?? 0) > 0;
}

export interface EndpointPageQuery {
  owner_id?: string;
  q?: string;
  limit: number;
  /** Return endpoints created before this one (the previous page's last id). */
  after?: { created_at: string; id: string };
}

/** A listed endpoint with its exact creation time, which a JS Date (milliseconds) would blur. */
export type ListedEndpoint = Endpoint & { cursor_at: string };

export async function listEndpoints(db: Queryable, projectId: string, query: EndpointPageQuery): Promise<ListedEndpoint[]> {
  const params: unknown[] = [projectId];
  const where = ['project_id = $1'];
  if (query.owner_id !== undefined) {
    params.push(query.owner_id);
    where.push(`owner_id = $${params.length}`);
  }
  if (query.q) {
    params.push(`%${query.q.replace(/[\\%_]/g, (c) => `\\${c}`)}%`);
    where.push(`name ILIKE $${params.length}`);
  }
  if (query.after) {
    params.push(query.after.created_at, query.after.id);
    where.push(`(created_at, id) < ($${params.length - 1}::timestamptz, $${params.length})`);
  }
  params.push(query.limit);
  const { rows } = await db.query<ListedEndpoint>(
    `SELECT ${COLUMNS}, to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS cursor_at
     FROM endpoints WHERE ${where.join(' AND ')}
     ORDER BY created_at DESC, id DESC LIMIT $${params.length}`,
    params,
  );
  return rows;
}

export async function listConfigEndpointIds(db: Queryable, projectId: string): Promise<string[]> {
  const { rows } = await db.query<{ id: string }>(
    'SELECT id FROM endpoints WHERE project_id = $1 AND from_config',
    [projectId],
  );
  return rows.map((r) => r.id);
}

export async function addSecret(
  db: Queryable,
  box: SecretBox,
  projectId: string,
  endpointId: string,
  value: string,
  expiresAt: Date | null = null,
  createdBy: Actor | null = null,
): Promise<void> {
  await db.query(
    `INSERT INTO endpoint_secrets (id, project_id, endpoint_id, value_enc, expires_at, created_by) VALUES ($1, $2, $3, $4, $5, $6)`,
    [uuidv7(), projectId, endpointId, box.encrypt(value), expiresAt, createdBy === null ? null : JSON.stringify(createdBy)],
  );
}

/** Whether the secret row `alias` names still signs: not expired. */
const liveSecret = (alias: string): string => `(${alias}.expires_at IS NULL OR ${alias}.expires_at > now())`;

/** Live secrets' metadata for API answers (never the value), newest first, for several endpoints at once. */
export async function listSecretInfo(
  db: Queryable,
  projectId: string,
  endpointIds: string[],
): Promise<Map<string, SecretInfo[]>> {
  const { rows } = await db.query<SecretInfo & { endpoint_id: string }>(
    `SELECT endpoint_id, id AS uid, created_at, expires_at, created_by FROM endpoint_secrets
     WHERE project_id = $1 AND endpoint_id = ANY($2) AND ${liveSecret('endpoint_secrets')}
     ORDER BY created_at DESC, id DESC`,
    [projectId, endpointIds],
  );
  const out = new Map<string, SecretInfo[]>();
  for (const { endpoint_id, ...info } of rows) {
    const list = out.get(endpoint_id) ?? [];
    list.push(info);
    out.set(endpoint_id, list);
  }
  return out;
}

/** The newest secret's plaintext, to compare with what config declares. */
export async function currentSecret(
  db: Queryable,
  box: SecretBox,
  projectId: string,
  endpointId: string,
): Promise<string | null> {
  const secrets = await liveSecrets(db, box, projectId, [endpointId]);
  return secrets.get(endpointId)?.[0]?.value ?? null;
}

/** An endpoint across projects, and its key in maps (`project/endpoint`). */
export interface EndpointRef {
  project_id: string;
  endpoint_id: string;
}
export const refKey = (r: EndpointRef): string => `${r.project_id}/${r.endpoint_id}`;
/** The project of a `refKey` (project ids hold no "/": core/settings.ts `id`), or null for anything else. */
export const projectOfKey = (key: string): string | null => {
  const at = key.indexOf('/');
  return at > 0 ? key.slice(0, at) : null;
};

/** A live secret as stored, sealed (its times are strings when read as json). */
export interface SealedSecret {
  id: string;
  value_enc: string;
  created_at: string | Date;
  expires_at: string | Date | null;
}

/** The live secrets of the endpoint `alias` names, sealed, newest first: a json array of SealedSecret. */
export const sealedSecretsJson = (alias: string): string =>
  `COALESCE((SELECT json_agg(json_build_object('id', s.id, 'value_enc', s.value_enc, 'created_at', s.created_at,
                'expires_at', s.expires_at) ORDER BY s.created_at DESC, s.id DESC)
             FROM endpoint_secrets s WHERE s.project_id = ${alias}.project_id AND s.endpoint_id = ${alias}.id
               AND ${liveSecret('s')}), '[]')`;

/** Unseals live secrets, as liveSecretsOf or sealedSecretsJson read them. */
export function unsealSecrets(box: SecretBox, sealed: SealedSecret[]): EndpointSecret[] {
  return sealed.map((s) => ({
    id: s.id,
    value: box.decrypt(s.value_enc),
    created_at: new Date(s.created_at),
    expires_at: s.expires_at === null ? null : new Date(s.expires_at),
  }));
}

/** Live secrets of endpoints of any projects in one query, newest first, keyed by refKey. */
export async function liveSecretsOf(db: Queryable, box: SecretBox, refs: EndpointRef[]): Promise<Map<string, EndpointSecret[]>> {
  const out = new Map<string, EndpointSecret[]>();
  if (refs.length === 0) return out;
  const { rows } = await db.query<EndpointRef & SealedSecret>(
    `SELECT project_id, endpoint_id, id, value_enc, created_at, expires_at FROM endpoint_secrets
     WHERE (project_id, endpoint_id) IN (SELECT * FROM unnest($1::text[], $2::text[]))
       AND ${liveSecret('endpoint_secrets')}
     ORDER BY created_at DESC, id DESC`,
    [refs.map((r) => r.project_id), refs.map((r) => r.endpoint_id)],
  );
  const sealed = new Map<string, SealedSecret[]>();
  for (const r of rows) {
    const list = sealed.get(refKey(r)) ?? [];
    list.push(r);
    sealed.set(refKey(r), list);
  }
  for (const [key, list] of sealed) out.set(key, unsealSecrets(box, list));
  return out;
}

/** Live secrets of several endpoints of one project, newest first, keyed by endpoint id. */
export async function liveSecrets(db: Queryable, box: SecretBox, projectId: string, endpointIds: string[]): Promise<Map<string, EndpointSecret[]>> {
  const byRef = await liveSecretsOf(db, box, endpointIds.map((endpoint_id) => ({ project_id: projectId, endpoint_id })));
  return new Map(endpointIds.flatMap((id) => {
    const secrets = byRef.get(refKey({ project_id: projectId, endpoint_id: id }));
    return secrets ? [[id, secrets] as const] : [];
  }));
}

/** Credentials as stored: sealed, or NULL when there are none. */
function sealCredentials(box: SecretBox, c: EndpointCredentials | undefined): string | null {
  const empty = !c || (c.authentication === null && c.mtls_client_cert === null && c.ca_certificate === null && !c.slack_webhook_url && !c.teams_webhook_url);
  return empty ? null : box.encrypt(JSON.stringify(c));
}

/** Replaces an endpoint's credentials. */
export async function saveCredentials(db: Queryable, box: SecretBox, projectId: string, id: string, c: EndpointCredentials): Promise<void> {
  await db.query('UPDATE endpoints SET credentials_enc = $3 WHERE project_id = $1 AND id = $2', [projectId, id, sealCredentials(box, c)]);
}

/** Unseals what saveCredentials sealed. */
export function openCredentials(box: SecretBox, sealed: string): EndpointCredentials {
  return JSON.parse(box.decrypt(sealed)) as EndpointCredentials;
}

/** Credentials of several endpoints of one project (those without any are absent from the map). */
export async function loadCredentials(db: Queryable, box: SecretBox, projectId: string, ids: string[]): Promise<Map<string, EndpointCredentials>> {
  const { rows } = await db.query<{ id: string; credentials_enc: string }>(
    'SELECT id, credentials_enc FROM endpoints WHERE project_id = $1 AND id = ANY($2) AND credentials_enc IS NOT NULL',
    [projectId, ids],
  );
  return new Map(rows.map((r) => [r.id, openCredentials(box, r.credentials_enc)]));
}
