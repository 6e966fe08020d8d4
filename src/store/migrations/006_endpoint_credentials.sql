-- An endpoint's outbound authentication, client certificate and CA bundle, as JSON sealed by the
-- application (AES-256-GCM, like secrets); NULL when it has none.
ALTER TABLE endpoints ADD COLUMN credentials_enc text;
