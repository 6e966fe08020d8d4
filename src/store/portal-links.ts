/**
 * Portal links and the browser sessions they start. Tokens and session ids are random, so one
 * SHA-256 is a safe hash: only hashes are stored, and a database dump opens no portal.
 */
import { createHash, randomBytes } from 'node:crypto';
import { UUID_RE } from '../core/ids.ts';
import type { Queryable } from './queryable.ts';

export type PortalLinkKind = 'one_time' | 'long_lived';
export const PORTAL_LINK_KINDS: readonly PortalLinkKind[] = ['one_time', 'long_lived'];

/** Why a link no longer opens, or `active`. */
export type PortalLinkState = 'active' | 'used' | 'expired' | 'revoked';

export interface PortalLink {
  id: string;
  project_id: string;
  name: string;
  /** Every endpoint of this owner, now and later; null when `endpoint_ids` lists them. */
  owner_id: string | null;
  endpoint_ids: string[];
  can_manage_endpoint: boolean;
  kind: PortalLinkKind;
  expires_at: Date | null;
  used_at: Date | null;
  revoked_at: Date | null;
  created_at: Date;
  updated_at: Date;
}

export const PORTAL_LINK_COLUMNS = `id, project_id, name, owner_id, endpoint_ids, can_manage_endpoint, kind, expires_at,
  used_at, revoked_at, created_at, updated_at`;

export type PortalLinkFields = Pick<PortalLink, 'name' | 'owner_id' | 'endpoint_ids' | 'can_manage_endpoint' | 'kind' | 'expires_at'>;

export function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

/** 32 random bytes, base64url; the prefix lets secret scanners recognise a leaked link. */
export function newPortalToken(): string {
  return `wpl_${randomBytes(32).toString('base64url')}`;
}

/** A one-time link once opened is `used` even though its sessions may still run. */
export function linkState(link: Pick<PortalLink, 'kind' | 'expires_at' | 'used_at' | 'revoked_at'>, now = new Date()): PortalLinkState {
  if (link.revoked_at) return 'revoked';
  if (link.expires_at && link.expires_at.getTime() <= now.getTime()) return 'expired';
  if (link.kind === 'one_time' && link.used_at) return 'used';
  return 'active';
}

export async function insertPortalLink(db: Queryable, projectId: string, id: string, f: PortalLinkFields, tokenHash: string): Promise<PortalLink> {
  const { rows } = await db.query<PortalLink>(
    `INSERT INTO portal_links (id, project_id, name, owner_id, endpoint_ids, can_manage_endpoint, kind, expires_at, token_hash)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING ${PORTAL_LINK_COLUMNS}`,
    [id, projectId, f.name, f.owner_id, f.endpoint_ids, f.can_manage_endpoint, f.kind, f.expires_at, tokenHash],
  );
  return rows[0]!;
}

/** Replaces a link's settings (its token, uses and revocation stay); null when there is none. */
export async function updatePortalLink(db: Queryable, projectId: string, id: string, f: PortalLinkFields): Promise<PortalLink | null> {
  const { rows } = await db.query<PortalLink>(
    `UPDATE portal_links SET name = $3, owner_id = $4, endpoint_ids = $5, can_manage_endpoint = $6, kind = $7, expires_at = $8, updated_at = now()
     WHERE project_id = $1 AND id = $2 RETURNING ${PORTAL_LINK_COLUMNS}`,
    [projectId, id, f.name, f.owner_id, f.endpoint_ids, f.can_manage_endpoint, f.kind, f.expires_at],
  );
  return rows[0] ?? null;
}

export async function getPortalLink(db: Queryable, projectId: string, id: string): Promise<PortalLink | null> {
  if (!UUID_RE.test(id)) return null;
  const { rows } = await db.query<PortalLink>(`SELECT ${PORTAL_LINK_COLUMNS} FROM portal_links WHERE project_id = $1 AND id = $2`, [projectId, id]);
  return rows[0] ?? null;
}

/**
 * Revokes a link; idempotent. The row stays, so its URL can say it was revoked. Its sessions stay
 * too, until swept, so a page open in a browser says the same: every request checks the link.
 */
export async function revokePortalLink(db: Queryable, projectId: string, id: string): Promise<PortalLink | null> {
  if (!UUID_RE.test(id)) return null;
  const { rows } = await db.query<PortalLink>(
    `UPDATE portal_links SET revoked_at = coalesce(revoked_at, now()), updated_at = now()
     WHERE project_id = $1 AND id = $2 RETURNING ${PORTAL_LINK_COLUMNS}`,
    [projectId, id],
  );
  return rows[0] ?? null;
}

/** The endpoint ids of `ids` that exist in the project. */
export async function existingEndpointIds(db: Queryable, projectId: string, ids: string[]): Promise<Set<string>> {
  const { rows } = await db.query<{ id: string }>('SELECT id FROM endpoints WHERE project_id = $1 AND id = ANY($2)', [projectId, ids]);
  return new Set(rows.map((r) => r.id));
}

export type OpenResult = { link: PortalLink; refused: null } | { link: PortalLink | null; refused: PortalLinkState | 'unknown' };

/**
 * Opens a link by its token's hash. A one-time link is spent by a single UPDATE that only matches
 * while `used_at` is NULL, so two concurrent openings cannot both start a session.
 */
export async function openPortalLink(db: Queryable, tokenHash: string): Promise<OpenResult> {
  const spent = await db.query<PortalLink>(
    `UPDATE portal_links SET used_at = now(), updated_at = now()
     WHERE token_hash = $1 AND kind = 'one_time' AND used_at IS NULL AND revoked_at IS NULL
       AND (expires_at IS NULL OR expires_at > now())
     RETURNING ${PORTAL_LINK_COLUMNS}`,
    [tokenHash],
  );
  if (spent.rows[0]) return { link: spent.rows[0], refused: null };
  const { rows } = await db.query<PortalLink & { now: Date }>(`SELECT ${PORTAL_LINK_COLUMNS}, now() AS now FROM portal_links WHERE token_hash = $1`, [tokenHash]);
  const row = rows[0];
  if (!row) return { link: null, refused: 'unknown' };
  const { now, ...link } = row;
  const state = linkState(link, now);
  return state === 'active' ? { link, refused: null } : { link, refused: state };
}

export interface PortalSession {
  link: PortalLink;
  csrf_token: string;
  expires_at: Date;
  /** The database's clock, which every expiry is compared with. */
  now: Date;
  /** Whether the link's token hashes to the `tokenHash` asked about (false when none was). */
  token_matches: boolean;
}

/**
 * Starts a session for an opened link: at most `minutes` long, and never beyond the link's own
 * expiry. Returns the raw session id (for the cookie) and the CSRF token of its forms.
 */
export async function createPortalSession(db: Queryable, link: PortalLink, minutes: number): Promise<{ id: string; csrf: string; expires_at: Date }> {
  const id = randomBytes(32).toString('base64url');
  const csrf = randomBytes(32).toString('base64url');
  // Finished sessions are swept here, where sessions are made, so the table stays small.
  await db.query('DELETE FROM portal_sessions WHERE expires_at < now()');
  const { rows } = await db.query<{ expires_at: Date }>(
    `INSERT INTO portal_sessions (id_hash, link_id, csrf_token, expires_at)
     VALUES ($1, $2, $3, least(now() + make_interval(mins => $4), coalesce($5, 'infinity'::timestamptz)))
     RETURNING expires_at`,
    [hashToken(id), link.id, csrf, minutes, link.expires_at],
  );
  return { id, csrf, expires_at: rows[0]!.expires_at };
}

const LINK_COLUMNS_OF_L = PORTAL_LINK_COLUMNS.split(',').map((c) => `l.${c.trim()}`).join(', ');

/**
 * The session with this id and its link, whatever their state (the caller judges, see
 * `sessionRefusal`), or null. With `tokenHash`, also whether the link is the one with that token.
 */
export async function findPortalSession(db: Queryable, id: string, options: { tokenHash?: string } = {}): Promise<PortalSession | null> {
  const { rows } = await db.query<PortalLink & { csrf_token: string; session_expires_at: Date; now: Date; token_matches: boolean }>(
    `SELECT ${LINK_COLUMNS_OF_L}, s.csrf_token, s.expires_at AS session_expires_at, now() AS now,
            coalesce(l.token_hash = $2::text, false) AS token_matches
     FROM portal_sessions s JOIN portal_links l ON l.id = s.link_id WHERE s.id_hash = $1`,
    [hashToken(id), options.tokenHash ?? null],
  );
  const row = rows[0];
  if (!row) return null;
  const { csrf_token, session_expires_at, now, token_matches, ...link } = row;
  return { link, csrf_token, expires_at: session_expires_at, now, token_matches };
}

/** The tables of browser sessions (the portal's, the dashboard's), each with a `flash_enc`. */
export type SessionTable = 'portal_sessions' | 'dashboard_sessions';

/** Keeps something sealed for the session's next `takeSessionFlash` (a new secret to show once). */
export async function setSessionFlash(db: Queryable, id: string, sealed: string, table: SessionTable = 'portal_sessions'): Promise<void> {
  await db.query(`UPDATE ${table} SET flash_enc = $2 WHERE id_hash = $1`, [hashToken(id), sealed]);
}

/** What setSessionFlash kept, once: it is gone after this. */
export async function takeSessionFlash(db: Queryable, id: string, table: SessionTable = 'portal_sessions'): Promise<string | null> {
  const { rows } = await db.query<{ flash_enc: string | null }>(
    `UPDATE ${table} s SET flash_enc = NULL
     FROM (SELECT id_hash, flash_enc FROM ${table} WHERE id_hash = $1 FOR UPDATE) old
     WHERE s.id_hash = old.id_hash RETURNING old.flash_enc`,
    [hashToken(id)],
  );
  return rows[0]?.flash_enc ?? null;
}

export async function deletePortalSession(db: Queryable, id: string): Promise<void> {
  await db.query('DELETE FROM portal_sessions WHERE id_hash = $1', [hashToken(id)]);
}
