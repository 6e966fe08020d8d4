-- Cost per webhook (issue 15). An attempt's project and endpoint are its delivery's, which every
-- reader joins anyway (the API, the portal, the dashboard) or can (retention). Written into each
-- attempt they cost 45–75 bytes a webhook, in WAL and on disk, and two arrays more to send per
-- recorded batch. New attempts leave them NULL, which takes no bytes (a bit of the null bitmap the
-- row already has). They stay for the rows written before, and for a replica still on the
-- previous version during a rolling deploy, which writes them as it always did; a later migration
-- can drop them once no such replica can be running.
ALTER TABLE delivery_attempts ALTER COLUMN project_id DROP NOT NULL, ALTER COLUMN endpoint_id DROP NOT NULL;
