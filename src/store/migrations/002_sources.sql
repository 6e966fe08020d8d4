-- Sources (brokers now, HTTP ingest later) and the messages they could not turn into events.

CREATE TABLE sources (
  project_id  text NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
  id          text NOT NULL,
  name        text NOT NULL,
  type        text NOT NULL,
  -- The whole source definition as JSON, encrypted by the application (it holds broker credentials).
  config_enc  text NOT NULL,
  from_config boolean NOT NULL DEFAULT false,
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (project_id, id)
);

-- Headers or attributes the message arrived with (broker headers, ingest request headers); routing
-- filters can read them, and they are forwarded only where the source says so.
ALTER TABLE events ADD COLUMN headers jsonb NOT NULL DEFAULT '{}';

-- A poison message: kept byte for byte with why it was refused, acked at the broker so it never
-- blocks the stream, and replayable once the cause is fixed. One row per broker message: a
-- redelivery of the same message counts up `times_seen` instead of adding a row.
CREATE TABLE dead_letters (
  id          uuid PRIMARY KEY,
  project_id  text NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
  source_id   text NOT NULL,
  source_type text NOT NULL,
  broker_id   text NOT NULL,
  message_key text,
  body        bytea NOT NULL,
  headers     jsonb NOT NULL DEFAULT '{}',
  code        text NOT NULL,
  reason      text NOT NULL,
  times_seen  integer NOT NULL DEFAULT 1,
  received_at timestamptz NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now(),
  replayed_at timestamptz,
  event_id    uuid,
  UNIQUE (project_id, source_id, broker_id)
);
CREATE INDEX dead_letters_project ON dead_letters (project_id, id DESC);
