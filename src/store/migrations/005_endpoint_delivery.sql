-- How an endpoint takes its deliveries: the body's content type and a rate limit shared by every
-- worker and replica (0 = none).
ALTER TABLE endpoints
  ADD COLUMN content_type text NOT NULL DEFAULT 'application/json'
    CHECK (content_type IN ('application/json', 'application/x-www-form-urlencoded')),
  ADD COLUMN rate_limit integer NOT NULL DEFAULT 0 CHECK (rate_limit >= 0),
  ADD COLUMN rate_limit_duration integer NOT NULL DEFAULT 60 CHECK (rate_limit_duration > 0);
