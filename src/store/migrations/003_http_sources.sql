-- HTTP ingest sources are found by the unguessable part of their URL.
ALTER TABLE sources ADD COLUMN mask_id text UNIQUE;
