-- Portal links: what a project's customers see of Wharf (src/portal). A link shows either every
-- endpoint of one owner (resolved at each request, so new endpoints appear) or a fixed list.
-- Only a SHA-256 of the link's token is kept; the URL is shown once, when the link is made.
CREATE TABLE portal_links (
  id                  uuid PRIMARY KEY,
  project_id          text NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
  name                text NOT NULL,
  owner_id            text,
  endpoint_ids        text[] NOT NULL DEFAULT '{}',
  can_manage_endpoint boolean NOT NULL DEFAULT false,
  kind                text NOT NULL CHECK (kind IN ('one_time', 'long_lived')),
  token_hash          text NOT NULL UNIQUE,
  expires_at          timestamptz,
  -- A one_time link's token is spent by the first opening (set by one atomic UPDATE).
  used_at             timestamptz,
  revoked_at          timestamptz,
  created_at          timestamptz NOT NULL DEFAULT now(),
  updated_at          timestamptz NOT NULL DEFAULT now(),
  CHECK ((owner_id IS NULL) <> (cardinality(endpoint_ids) = 0))
);
CREATE INDEX portal_links_project ON portal_links (project_id, id DESC);

-- A browser session started by opening a link. The cookie holds a random id; only its hash is
-- kept. Every request re-checks the link too, so revoking a link ends its sessions at once.
CREATE TABLE portal_sessions (
  id_hash    text PRIMARY KEY,
  link_id    uuid NOT NULL REFERENCES portal_links (id) ON DELETE CASCADE,
  csrf_token text NOT NULL,
  -- A rotated secret waiting to be shown once (sealed), so the page that shows it is a GET and a
  -- reload cannot rotate again.
  flash_enc  text,
  expires_at timestamptz NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX portal_sessions_link ON portal_sessions (link_id);
CREATE INDEX portal_sessions_expiry ON portal_sessions (expires_at);
