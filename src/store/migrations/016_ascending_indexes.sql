-- wharf:no-transaction
-- Cost per webhook (issue 15). The indexes that order a project's events and deliveries were
-- descending, (project_id, id DESC), so every new row (a uuidv7, the largest id yet) went in at the
-- left end of its project's range. Postgres splits such a page in two halves, the new entries all
-- go to the left one, and the right one stays half empty for good: these indexes were ~1.7 times
-- their size and a split record (~150 bytes of WAL per webhook) was written far more often.
-- Ascending, a new entry lands after its predecessor, which Postgres recognises and splits
-- leaving the full page full. Lists still read newest first (an index is read backwards as well).
--
-- Built CONCURRENTLY, outside a transaction, so a large table keeps taking writes meanwhile (the
-- old index serves until it is dropped). Safe to run again from any point: a build cut short
-- leaves an invalid `_asc` index, dropped at the next start before it is built again.
DROP INDEX CONCURRENTLY IF EXISTS events_project_asc;
CREATE INDEX CONCURRENTLY events_project_asc ON events (project_id, id);
DROP INDEX CONCURRENTLY IF EXISTS events_project;
ALTER INDEX events_project_asc RENAME TO events_project;

DROP INDEX CONCURRENTLY IF EXISTS deliveries_project_asc;
CREATE INDEX CONCURRENTLY deliveries_project_asc ON deliveries (project_id, id);
DROP INDEX CONCURRENTLY IF EXISTS deliveries_project;
ALTER INDEX deliveries_project_asc RENAME TO deliveries_project;

DROP INDEX CONCURRENTLY IF EXISTS deliveries_endpoint_asc;
CREATE INDEX CONCURRENTLY deliveries_endpoint_asc ON deliveries (project_id, endpoint_id, id);
DROP INDEX CONCURRENTLY IF EXISTS deliveries_endpoint;
ALTER INDEX deliveries_endpoint_asc RENAME TO deliveries_endpoint;
