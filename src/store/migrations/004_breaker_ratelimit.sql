-- Circuit breaker and rate limiter state, shared by every worker and replica through Postgres.
-- Each row is changed only by one INSERT … ON CONFLICT DO UPDATE whose arithmetic runs in SQL on
-- the locked, latest row version, so concurrent batches never lose an update.

-- Breaker counters (src/dispatch/breaker.ts). The window is a sliding approximation made of two
-- fixed buckets of window_seconds, aligned to the Unix epoch: the current one (window_*) and the
-- one before it (prev_*), weighted by how much of it still lies inside the sliding window.
CREATE TABLE endpoint_health (
  project_id           text NOT NULL,
  endpoint_id          text NOT NULL,
  -- Failed attempts (including 410s) since the last success, in the order batches were recorded.
  consecutive_failures integer NOT NULL DEFAULT 0,
  -- The bucket length the counts were made with; another length starts the window afresh.
  window_seconds       integer NOT NULL CHECK (window_seconds > 0),
  window_start         timestamptz NOT NULL,
  window_attempts      integer NOT NULL DEFAULT 0,
  window_failures      integer NOT NULL DEFAULT 0,
  prev_attempts        integer NOT NULL DEFAULT 0,
  prev_failures        integer NOT NULL DEFAULT 0,
  last_success_at      timestamptz,
  last_failure_at      timestamptz,
  updated_at           timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (project_id, endpoint_id),
  FOREIGN KEY (project_id, endpoint_id) REFERENCES endpoints (project_id, id) ON DELETE CASCADE
);

-- Rate limiter log (src/dispatch/rate-limit.ts): the grants of the last duration_seconds, oldest
-- first, as parallel arrays (one entry per acquire that granted anything, so at most limit_count
-- entries). last_at only moves forward, which keeps the log ordered under skewed callers.
CREATE TABLE endpoint_rate_limits (
  project_id       text NOT NULL,
  endpoint_id      text NOT NULL,
  limit_count      integer NOT NULL CHECK (limit_count > 0),
  duration_seconds integer NOT NULL CHECK (duration_seconds > 0),
  grant_times      timestamptz[] NOT NULL DEFAULT '{}',
  grant_counts     integer[] NOT NULL DEFAULT '{}',
  last_at          timestamptz NOT NULL,
  last_wanted      integer NOT NULL DEFAULT 0,
  last_granted     integer NOT NULL DEFAULT 0,
  PRIMARY KEY (project_id, endpoint_id),
  FOREIGN KEY (project_id, endpoint_id) REFERENCES endpoints (project_id, id) ON DELETE CASCADE
);
