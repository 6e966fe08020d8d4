-- Which project reads which broker address (a queue, a topic for a consumer group, a
-- subscription): one address belongs to one project, so a tenant cannot consume what another
-- tenant's source reads. Sources store their settings sealed, so the address is derived by the
-- application when a source is saved and kept here in the clear (it holds no credentials).
CREATE TABLE broker_claims (
  project_id text NOT NULL,
  source_id  text NOT NULL,
  address    text NOT NULL,
  PRIMARY KEY (project_id, source_id, address),
  FOREIGN KEY (project_id, source_id) REFERENCES sources (project_id, id) ON DELETE CASCADE
);
CREATE INDEX broker_claims_address ON broker_claims (address);
