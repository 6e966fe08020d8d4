-- Cost per webhook (issue 15). Every delivery's row is updated in place once or more (its outcome,
-- a retry's schedule); such an update is HOT (no new index entry in any index, the old version
-- pruned from its page without VACUUM) when no indexed column changes and the page has room.
--
-- `status` was the only indexed column those updates change, through deliveries_status; with it
-- gone, an outcome costs a heap write instead of a heap write and five index insertions. Lists
-- filtered by status read deliveries_project (project, newest first) and filter on status: cheap
-- for a common status, slower for a rare one in a large project. (An index led by status could not
-- give a page ordered by id for more than one status anyway.)
DROP INDEX IF EXISTS deliveries_status;

-- Room on each page for the updated versions of its rows (new pages only; old ones fill as now).
ALTER TABLE deliveries SET (fillfactor = 70);
