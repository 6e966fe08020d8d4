-- Who made each signing secret: the credential that created the endpoint or rotated its secret
-- (never the credential's value). A JSON object {type: api_key | operator | portal_link, id, via:
-- api | dashboard | portal}; NULL for secrets made before this migration and for those the config
-- file declares. The secret's own created_at says when.
ALTER TABLE endpoint_secrets ADD COLUMN IF NOT EXISTS created_by jsonb;
