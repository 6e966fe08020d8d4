-- Retention set through the API (GET/PUT /api/v1/projects/{id}, src/api/project-routes.ts): a
-- project's own ages by kind, {"events": "14d", ...}, as the config file writes them. NULL: none of
-- its own. Never written by the config reconcile, so a reload keeps it. The purge keeps each kind
-- for the shorter of this and the operator's policy (src/store/retention.ts, `inForce`): a project
-- may keep its history for less time than the operator allows, never for more. A nullable column
-- with no default: no rewrite of the table, and a replica still on the previous version ignores it.
ALTER TABLE projects ADD COLUMN retention jsonb;
