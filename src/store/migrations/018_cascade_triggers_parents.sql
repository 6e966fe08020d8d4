-- Cost per webhook (issue 15), after 017: the two keys left on the hot inserts, an event's to its
-- project and a delivery's to its endpoint, were checked row by row as well (a trigger, a lookup
-- and a lock on the same project or endpoint row again for every event and every delivery of a
-- batch): ~35 µs of an ingest's Postgres time a webhook. The guard they gave on insert is kept
-- once per endpoint instead: routing locks the endpoints it reads FOR KEY SHARE until the ingest
-- commits (ingest/route.ts), so an endpoint deleted meanwhile either waits for the deliveries to
-- be committed and then takes them with it, or is gone before routing reads it. Projects are
-- never deleted by Wharf; deleting one by hand still deletes everything of it.
ALTER TABLE events DROP CONSTRAINT IF EXISTS events_project_id_fkey;
ALTER TABLE deliveries DROP CONSTRAINT IF EXISTS deliveries_project_id_endpoint_id_fkey;

CREATE FUNCTION wharf_delete_events_of_projects() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM events WHERE project_id IN (SELECT id FROM gone);
  RETURN NULL;
END $$;
CREATE TRIGGER projects_delete_events AFTER DELETE ON projects
  REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION wharf_delete_events_of_projects();

CREATE FUNCTION wharf_delete_deliveries_of_endpoints() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM deliveries d USING gone g WHERE d.project_id = g.project_id AND d.endpoint_id = g.id;
  RETURN NULL;
END $$;
CREATE TRIGGER endpoints_delete_deliveries AFTER DELETE ON endpoints
  REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION wharf_delete_deliveries_of_endpoints();
