-- Retention (src/store/retention.ts): how far each kind of a project's history has been purged.
-- Rows are found by their UUIDv7 ids through the (project_id, id) indexes the tables already have,
-- so no index is added to the write path; this table lets a lookup of a purged id answer why it is
-- gone, and lets attempts (which have no per-project index) be walked from where a pass stopped.
CREATE TABLE retention_watermarks (
  project_id    text NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
  kind          text NOT NULL CHECK (kind IN ('events', 'attempts', 'dead_letters', 'meta_events')),
  -- Rows of this kind made before this time are gone (events still being delivered excepted).
  purged_before timestamptz NOT NULL,
  -- The age the policy gave when purged_before was set, as written (30d, 12h).
  max_age       text NOT NULL,
  updated_at    timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (project_id, kind)
);
