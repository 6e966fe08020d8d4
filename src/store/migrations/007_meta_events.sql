-- Alerts (Convoy's meta events): Wharf's own notifications about endpoints, sent signed to an
-- endpoint's notification_url and/or the project's meta-event URL, each kept here with its outcome.
ALTER TABLE endpoints ADD COLUMN notification_url text;

CREATE TABLE meta_events (
  id               uuid PRIMARY KEY,
  project_id       text NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
  -- The endpoint the alert is about; no foreign key, so an alert outlives a deleted endpoint.
  endpoint_id      text,
  -- Where it goes: the endpoint's notification_url, or the project's meta-event URL.
  target           text NOT NULL CHECK (target IN ('endpoint', 'project')),
  url              text NOT NULL,
  event_type       text NOT NULL,
  -- The exact bytes sent (and signed), as UTF-8 JSON text.
  body             text NOT NULL,
  status           text NOT NULL DEFAULT 'scheduled' CHECK (status IN ('scheduled', 'success', 'failure')),
  attempts         integer NOT NULL DEFAULT 0,
  last_status_code integer,
  last_error       text,
  created_at       timestamptz NOT NULL DEFAULT now(),
  updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX meta_events_project ON meta_events (project_id, id DESC);
