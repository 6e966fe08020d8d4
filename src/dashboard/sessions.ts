/**
 * Dashboard sessions (table dashboard_sessions, migration 011), kept as the portal keeps its own:
 * the cookie holds 32 random bytes and only their SHA-256 is stored.
 */
import { randomBytes } from 'node:crypto';
import { hashToken, setSessionFlash, takeSessionFlash } from '../store/portal-links.ts';
import type { Queryable } from '../store/queryable.ts';

export interface DashboardSession {
  /** The one project a project key signed in to; null for the operator (every project). */
  project_id: string | null;
  /** That project's API key, sealed; null for the operator. */
  key_enc: string | null;
  /** SHA-256 of the credential that signed in. */
  credential_hash: string;
  csrf_token: string;
  expires_at: Date;
}

export async function createDashboardSession(
  db: Queryable,
  s: Pick<DashboardSession, 'project_id' | 'key_enc' | 'credential_hash'>,
  seconds: number,
): Promise<{ id: string; expires_at: Date }> {
  const id = randomBytes(32).toString('base64url');
  // Finished sessions are swept where sessions are made, so the table stays small.
  await db.query('DELETE FROM dashboard_sessions WHERE expires_at < now()');
  const { rows } = await db.query<{ expires_at: Date }>(
    `INSERT INTO dashboard_sessions (id_hash, project_id, key_enc, credential_hash, csrf_token, expires_at)
     VALUES ($1, $2, $3, $4, $5, now() + make_interval(secs => $6)) RETURNING expires_at`,
    [hashToken(id), s.project_id, s.key_enc, s.credential_hash, randomBytes(32).toString('base64url'), seconds],
  );
  return { id, expires_at: rows[0]!.expires_at };
}

/** The session with this id, unless it is unknown or has ended (by the database's clock). */
export async function findDashboardSession(db: Queryable, id: string): Promise<DashboardSession | null> {
  const { rows } = await db.query<DashboardSession>(
    `SELECT project_id, key_enc, credential_hash, csrf_token, expires_at FROM dashboard_sessions
     WHERE id_hash = $1 AND expires_at > now()`,
    [hashToken(id)],
  );
  return rows[0] ?? null;
}

export async function deleteDashboardSession(db: Queryable, id: string): Promise<void> {
  await db.query('DELETE FROM dashboard_sessions WHERE id_hash = $1', [hashToken(id)]);
}

/** Keeps something sealed for the session's next `takeFlash` (a new secret or link URL, shown once). */
export const setFlash = (db: Queryable, id: string, sealed: string): Promise<void> => setSessionFlash(db, id, sealed, 'dashboard_sessions');

/** What setFlash kept, once: it is gone after this. */
export const takeFlash = (db: Queryable, id: string): Promise<string | null> => takeSessionFlash(db, id, 'dashboard_sessions');
