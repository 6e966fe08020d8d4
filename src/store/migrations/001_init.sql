-- Wharf's first schema. pg-boss keeps its own schema (pgboss); this file owns the rest.

CREATE TABLE projects (
  id          text PRIMARY KEY,
  name        text NOT NULL,
  type        text NOT NULL CHECK (type IN ('outgoing', 'incoming')),
  -- signature and retry settings: { signature: {...}, retry: {...} }
  settings    jsonb NOT NULL,
  from_config boolean NOT NULL DEFAULT false,
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Keys are random and long, so a plain SHA-256 is a safe hash; only the hash is kept.
CREATE TABLE api_keys (
  id          uuid PRIMARY KEY,
  project_id  text NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
  key_hash    text NOT NULL UNIQUE,
  origin      text NOT NULL CHECK (origin IN ('config', 'generated', 'api')),
  created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX api_keys_project ON api_keys (project_id);

CREATE TABLE endpoints (
  project_id          text NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
  id                  text NOT NULL,
  name                text NOT NULL,
  url                 text NOT NULL,
  owner_id            text,
  description         text NOT NULL DEFAULT '',
  http_timeout        integer NOT NULL DEFAULT 10 CHECK (http_timeout > 0),
  advanced_signatures boolean NOT NULL DEFAULT true,
  support_email       text,
  status              text NOT NULL DEFAULT 'active'
                        CHECK (status IN ('active', 'inactive', 'paused', 'pending')),
  from_config         boolean NOT NULL DEFAULT false,
  created_at          timestamptz NOT NULL DEFAULT now(),
  updated_at          timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (project_id, id)
);
CREATE INDEX endpoints_owner ON endpoints (project_id, owner_id) WHERE owner_id IS NOT NULL;

-- Secret values are encrypted by the application (AES-256-GCM); history is kept for rotation.
CREATE TABLE endpoint_secrets (
  id          uuid PRIMARY KEY,
  project_id  text NOT NULL,
  endpoint_id text NOT NULL,
  value_enc   text NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now(),
  expires_at  timestamptz,
  FOREIGN KEY (project_id, endpoint_id) REFERENCES endpoints (project_id, id) ON DELETE CASCADE
);
CREATE INDEX endpoint_secrets_endpoint ON endpoint_secrets (project_id, endpoint_id, created_at DESC);

-- Routing rules. An endpoint with no subscription receives every event type (Convoy's default).
CREATE TABLE subscriptions (
  project_id  text NOT NULL,
  id          text NOT NULL,
  name        text NOT NULL DEFAULT '',
  endpoint_id text NOT NULL,
  source_id   text,
  event_types text[] NOT NULL DEFAULT '{*}',
  filter      jsonb,
  from_config boolean NOT NULL DEFAULT false,
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (project_id, id),
  FOREIGN KEY (project_id, endpoint_id) REFERENCES endpoints (project_id, id) ON DELETE CASCADE
);
CREATE INDEX subscriptions_endpoint ON subscriptions (project_id, endpoint_id);

CREATE TABLE events (
  id              uuid PRIMARY KEY,
  project_id      text NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
  source_id       text,
  event_type      text NOT NULL,
  message_type    text NOT NULL CHECK (message_type IN ('single', 'fanout', 'broadcast')),
  endpoint_id     text,
  owner_id        text,
  idempotency_key text,
  custom_headers  jsonb NOT NULL DEFAULT '{}',
  -- The JSON text of the payload, byte for byte what is signed and sent.
  data            text NOT NULL,
  created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX events_idempotency ON events (project_id, idempotency_key)
  WHERE idempotency_key IS NOT NULL;
CREATE INDEX events_project ON events (project_id, id DESC);

CREATE TABLE deliveries (
  id               uuid PRIMARY KEY,
  project_id       text NOT NULL,
  event_id         uuid NOT NULL REFERENCES events (id) ON DELETE CASCADE,
  endpoint_id      text NOT NULL,
  event_type       text NOT NULL,
  status           text NOT NULL
                     CHECK (status IN ('scheduled', 'processing', 'success', 'failure', 'retry', 'discarded')),
  attempts         integer NOT NULL DEFAULT 0,
  next_attempt_at  timestamptz,
  last_status_code integer,
  last_error       text,
  created_at       timestamptz NOT NULL DEFAULT now(),
  updated_at       timestamptz NOT NULL DEFAULT now(),
  FOREIGN KEY (project_id, endpoint_id) REFERENCES endpoints (project_id, id) ON DELETE CASCADE
);
CREATE INDEX deliveries_project ON deliveries (project_id, id DESC);
CREATE INDEX deliveries_endpoint ON deliveries (project_id, endpoint_id, id DESC);
CREATE INDEX deliveries_status ON deliveries (project_id, status, id DESC);
CREATE INDEX deliveries_event ON deliveries (event_id);

CREATE TABLE delivery_attempts (
  id               uuid PRIMARY KEY,
  delivery_id      uuid NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
  project_id       text NOT NULL,
  endpoint_id      text NOT NULL,
  attempt          integer NOT NULL,
  url              text NOT NULL,
  request_headers  jsonb NOT NULL DEFAULT '{}',
  status_code      integer,
  latency_ms       integer NOT NULL,
  response_headers jsonb NOT NULL DEFAULT '{}',
  response_body    text NOT NULL DEFAULT '',
  error            text,
  error_code       text,
  created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX delivery_attempts_delivery ON delivery_attempts (delivery_id, attempt);
