-- wharf:no-transaction
-- Cost per webhook (issue 15). A delivery had four B-tree entries: its primary key (id), and
-- (project_id, id), (project_id, endpoint_id, id) and (event_id). Every reader of a delivery knows
-- its project: the API and the portal look deliveries up in the project of the key or the link,
-- retention works a project at a time, and the dispatcher has it from the delivery's job (its
-- pg-boss group is the endpoint, project/endpoint), its handoff (the projects listed below) or the
-- row it is recording. So the primary key becomes (project_id, id), as events' did in migration
-- 021, and deliveries_project goes: one entry a delivery fewer, about 75 bytes of WAL a webhook.
-- Delivery ids are uuidv7s Wharf makes, so an id is still unique on its own.
--
-- What a replica still on the previous version does meanwhile: it looks deliveries up by id
-- alone, which no index serves any more, so each of its dispatch batches reads the whole table.
-- Replace the replicas rather than roll them (README, "Operations").
--
-- Built CONCURRENTLY and swapped in by one ALTER TABLE (a catalog change), rerunnable from any
-- point, as migration 021 is.
DROP INDEX CONCURRENTLY IF EXISTS deliveries_key;
CREATE UNIQUE INDEX CONCURRENTLY deliveries_key ON deliveries (project_id, id);
ALTER TABLE deliveries DROP CONSTRAINT deliveries_pkey, ADD CONSTRAINT deliveries_pkey PRIMARY KEY USING INDEX deliveries_key;
DROP INDEX CONCURRENTLY IF EXISTS deliveries_project;
-- A handoff lists the projects of its deliveries (each once), so the sweep finds them by the key.
-- NULL in a row that a replica on the previous version wrote: the sweep looks those up by id.
ALTER TABLE handoffs ADD COLUMN IF NOT EXISTS projects text[];
-- Every attempt with its delivery's project and endpoint (what the API answers), so that a reader
-- that names the project (`project_id = $1`) finds the deliveries by the key in both branches.
--
-- And a first attempt kept in its delivery's row (migration 022) no longer stores an id of its
-- own, 16 bytes of every recording update: its id is its delivery's with the version nibble 8
-- (RFC 9562's UUIDv8) where the delivery's has 7. Delivery ids are unique uuidv7s, so these are
-- unique, and no attempt kept as a row (uuidv7) can have one. A row folded before this keeps the
-- id it was given; `first_attempted_at` is what marks a folded attempt now.
CREATE OR REPLACE VIEW attempts AS
  SELECT COALESCE(d.first_attempt_id, overlay(d.id::text PLACING '8' FROM 15 FOR 1)::uuid) AS id, d.id AS delivery_id, d.project_id, d.endpoint_id,
         1 AS attempt, d.first_url AS url, d.first_request_headers AS request_headers,
         d.first_status_code AS status_code, d.first_latency_ms AS latency_ms,
         d.first_response_headers AS response_headers, d.first_response_body AS response_body,
         d.first_error AS error, d.first_error_code AS error_code, d.first_attempted_at AS created_at
    FROM deliveries d WHERE d.first_attempted_at IS NOT NULL
  UNION ALL
  SELECT a.id, a.delivery_id, d.project_id, d.endpoint_id, a.attempt, a.url, a.request_headers,
         a.status_code, a.latency_ms, a.response_headers, a.response_body, a.error, a.error_code, a.created_at
    FROM delivery_attempts a JOIN deliveries d ON d.id = a.delivery_id;
