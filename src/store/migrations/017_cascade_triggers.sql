-- Cost per webhook (issue 15). A delivery's foreign key to its event and an attempt's to its
-- delivery were checked on every insert, row by row: a trigger, a lookup and a FOR KEY SHARE lock
-- (a WAL record, and a MultiXact once the recorder updates the delivery it just locked) for each
-- delivery and each attempt, ~35 µs of Postgres time and ~115 bytes of WAL a webhook, to guard
-- against a parent that Wharf's own writes never leave missing: a delivery is inserted by the
-- statement that inserts its event, and the recorder inserts an attempt only for a delivery it
-- finds (dispatch/worker.ts).
--
-- What the keys did on delete they still do, once per statement: deleting events deletes their
-- deliveries, deleting deliveries (also through an endpoint's deletion, whose own key stays)
-- deletes their attempts.
ALTER TABLE deliveries DROP CONSTRAINT IF EXISTS deliveries_event_id_fkey;
ALTER TABLE delivery_attempts DROP CONSTRAINT IF EXISTS delivery_attempts_delivery_id_fkey;

CREATE FUNCTION wharf_delete_deliveries_of_events() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM deliveries WHERE event_id IN (SELECT id FROM gone);
  RETURN NULL;
END $$;
CREATE TRIGGER events_delete_deliveries AFTER DELETE ON events
  REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION wharf_delete_deliveries_of_events();

CREATE FUNCTION wharf_delete_attempts_of_deliveries() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM delivery_attempts WHERE delivery_id IN (SELECT id FROM gone);
  RETURN NULL;
END $$;
CREATE TRIGGER deliveries_delete_attempts AFTER DELETE ON deliveries
  REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION wharf_delete_attempts_of_deliveries();
