-- Which versions of the schema are applied (the files beside this one, by number).
CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL);
