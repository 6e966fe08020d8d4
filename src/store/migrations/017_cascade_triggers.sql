-- Cost per webhook (issue 15). The foreign keys of the rows every webhook inserts (an event's to
-- its project, a delivery's to its event and to its endpoint, an attempt's to its delivery) were
-- checked on every insert, row by row: a trigger, a lookup and a FOR KEY SHARE lock for each row
-- (a WAL record, and a MultiXact once the recorder updates the delivery it had just locked). About
-- 70 µs of Postgres time and 115 bytes of WAL a webhook, to guard against parents that Wharf's
-- own writes never leave missing:
-- - a delivery is inserted by the statement that inserts its event;
-- - routing locks each endpoint it reads FOR KEY SHARE until the ingest commits (ingest/route.ts),
--   once per endpoint instead of once per delivery, so an endpoint deleted meanwhile either waits
--   for the deliveries and then takes them along, or is gone before routing reads it;
-- - the recorder inserts an attempt only for a delivery it finds, and holds that delivery's row
--   (dispatch/worker.ts);
-- - projects are never deleted by Wharf.
--
-- What the keys did on delete (ON DELETE CASCADE) is still done, once per deleting statement.
ALTER TABLE events DROP CONSTRAINT IF EXISTS events_project_id_fkey;
ALTER TABLE deliveries DROP CONSTRAINT IF EXISTS deliveries_event_id_fkey;
ALTER TABLE deliveries DROP CONSTRAINT IF EXISTS deliveries_project_id_endpoint_id_fkey;
ALTER TABLE delivery_attempts DROP CONSTRAINT IF EXISTS delivery_attempts_delivery_id_fkey;

-- After a statement deleted rows (`gone`), deletes the rows of the child table TG_ARGV[0] whose
-- columns TG_ARGV[1] match the deleted rows' TG_ARGV[2] (comma-separated lists, same order).
CREATE FUNCTION wharf_delete_children() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE format('DELETE FROM %I WHERE (%s) IN (SELECT %s FROM gone)', TG_ARGV[0], TG_ARGV[1], TG_ARGV[2]);
  RETURN NULL;
END $$;

CREATE TRIGGER projects_delete_events AFTER DELETE ON projects REFERENCING OLD TABLE AS gone
  FOR EACH STATEMENT EXECUTE FUNCTION wharf_delete_children('events', 'project_id', 'id');
CREATE TRIGGER events_delete_deliveries AFTER DELETE ON events REFERENCING OLD TABLE AS gone
  FOR EACH STATEMENT EXECUTE FUNCTION wharf_delete_children('deliveries', 'event_id', 'id');
CREATE TRIGGER endpoints_delete_deliveries AFTER DELETE ON endpoints REFERENCING OLD TABLE AS gone
  FOR EACH STATEMENT EXECUTE FUNCTION wharf_delete_children('deliveries', 'project_id, endpoint_id', 'project_id, id');
CREATE TRIGGER deliveries_delete_attempts AFTER DELETE ON deliveries REFERENCING OLD TABLE AS gone
  FOR EACH STATEMENT EXECUTE FUNCTION wharf_delete_children('delivery_attempts', 'delivery_id', 'id');
