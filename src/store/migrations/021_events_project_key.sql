-- wharf:no-transaction
-- Cost per webhook (issue 15). Every reader of an event knows its project: the API and the portal
-- look events up in the project of the key or the link, the dispatcher joins an event to its
-- delivery (which holds the project), retention works a project at a time. So the event's own
-- primary key (id) and the index that orders a project's events (project_id, id) were two B-tree
-- entries, two WAL records, for one lookup path. The primary key becomes (project_id, id) and the
-- second index goes: one entry an event fewer, about 75 bytes of WAL a webhook. Event ids are
-- uuidv7s Wharf makes, so an id is still unique on its own.
--
-- The new key is built CONCURRENTLY, outside a transaction, so a large table keeps taking writes
-- meanwhile; the swap itself is one ALTER TABLE, which holds the table's lock only while it
-- changes the catalog (the columns are NOT NULL already: nothing is scanned). Safe to run again
-- from any point: a build cut short leaves an invalid `events_key`, dropped before it is built
-- again; after the swap, a second run builds the key again and swaps it for itself.
DROP INDEX CONCURRENTLY IF EXISTS events_key;
CREATE UNIQUE INDEX CONCURRENTLY events_key ON events (project_id, id);
ALTER TABLE events DROP CONSTRAINT events_pkey, ADD CONSTRAINT events_pkey PRIMARY KEY USING INDEX events_key;
DROP INDEX CONCURRENTLY IF EXISTS events_project;
