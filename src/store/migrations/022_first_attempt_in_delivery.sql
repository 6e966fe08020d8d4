-- Cost per webhook (issue 15). Nearly every delivery is attempted once, soon after it is made, and
-- that attempt was a row of its own in delivery_attempts: a heap insert and two index entries,
-- about 240 bytes of WAL a webhook more than writing the same fields into the delivery's row in
-- the update that records its outcome anyway (`npm run bench -- --wal-records`). So a delivery's first attempt, when it comes within
-- the half hour after the delivery was made and its stored fields are small, is kept in these
-- columns (the recorder decides: dispatch/worker.ts, `foldsFirstAttempt`); every other attempt
-- (later ones, late or large first ones, a duplicate send's) is a row of delivery_attempts as
-- before. Readers read `attempts`, the two together, which answers as delivery_attempts did.
ALTER TABLE deliveries
  ADD COLUMN first_attempt_id uuid,
  ADD COLUMN first_attempted_at timestamptz,
  ADD COLUMN first_status_code integer,
  ADD COLUMN first_latency_ms integer,
  ADD COLUMN first_url text,
  ADD COLUMN first_request_headers jsonb,
  ADD COLUMN first_response_headers jsonb,
  ADD COLUMN first_response_body text,
  ADD COLUMN first_error text,
  ADD COLUMN first_error_code text;

-- The update that records the first attempt makes the row three and a half times as long as it
-- was inserted (~160 to ~560 bytes in `npm run bench`). It stays a HOT update (no new index
-- entries) only while the new version fits on the row's page beside the old one: by those sizes a
-- page filled to 60 % is full after about a quarter of its rows are updated, and at 25 % one update
-- in ten still went to another page (`npm run bench`); filled to a fifth, every row's longer
-- version fits, even before the old ones are pruned. New pages are filled so; existing pages keep
-- what they hold. The cost is disk: the space the old versions leave is not reused for new rows.
ALTER TABLE deliveries SET (fillfactor = 20);

-- Every attempt, wherever it is kept, with the columns delivery_attempts has (project_id and
-- endpoint_id as that table keeps them: NULL for attempts since migration 020; read the delivery's).
CREATE VIEW attempts AS
  SELECT d.first_attempt_id AS id, d.id AS delivery_id, NULL::text AS project_id, NULL::text AS endpoint_id,
         1 AS attempt, d.first_url AS url, d.first_request_headers AS request_headers,
         d.first_status_code AS status_code, d.first_latency_ms AS latency_ms,
         d.first_response_headers AS response_headers, d.first_response_body AS response_body,
         d.first_error AS error, d.first_error_code AS error_code, d.first_attempted_at AS created_at
    FROM deliveries d WHERE d.first_attempt_id IS NOT NULL
  UNION ALL
  SELECT a.id, a.delivery_id, a.project_id, a.endpoint_id, a.attempt, a.url, a.request_headers,
         a.status_code, a.latency_ms, a.response_headers, a.response_body, a.error, a.error_code, a.created_at
    FROM delivery_attempts a;
