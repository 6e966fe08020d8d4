-- Operator dashboard sessions (src/dashboard), kept like the portal's: the cookie holds a random
-- id and only its hash is stored. A session signed in with a project API key is that project's
-- only, and keeps the key sealed (it is the credential the dashboard's API calls carry, so a
-- revoked key ends the session); one signed in with the operator token (project_id NULL) keeps
-- a hash of that token, so changing the token ends those sessions.
CREATE TABLE dashboard_sessions (
  id_hash         text PRIMARY KEY,
  project_id      text REFERENCES projects (id) ON DELETE CASCADE,
  key_enc         text,
  credential_hash text NOT NULL,
  csrf_token      text NOT NULL,
  -- Something to show once on the next page (a new secret, a portal link's URL), sealed.
  flash_enc       text,
  expires_at      timestamptz NOT NULL,
  created_at      timestamptz NOT NULL DEFAULT now(),
  CHECK ((project_id IS NULL) = (key_enc IS NULL))
);
CREATE INDEX dashboard_sessions_expiry ON dashboard_sessions (expires_at);
