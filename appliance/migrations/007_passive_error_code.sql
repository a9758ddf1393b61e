-- Catalog v7: a passive source remembers the error code of its last failure (shown translated in the web UI), so
-- a refused login can say what to do instead of retrying a wrong password.
ALTER TABLE passive_sources ADD COLUMN code TEXT;
