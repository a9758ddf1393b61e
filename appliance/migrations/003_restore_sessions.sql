-- Catalog v3: restore sessions. A restore code (shown in the UI, typed at the restore ISO's console) is
-- stored only as a SHA-256 hash; exchanging it gives the ISO a session credential scoped to this restore.
ALTER TABLE restores ADD COLUMN code_hash BLOB;
ALTER TABLE restores ADD COLUMN code_expires_at TEXT;
-- How many target disks the engineer said the target VM has (checked by the ISO before writing), if given.
ALTER TABLE restores ADD COLUMN target_disks INTEGER;
ALTER TABLE restores ADD COLUMN session_hash BLOB;
ALTER TABLE restores ADD COLUMN phase TEXT;
-- Live progress (JSON), and per disk the first block not yet written and read back: a resumed restore starts there.
ALTER TABLE restores ADD COLUMN progress TEXT;
ALTER TABLE restores ADD COLUMN verified TEXT;
ALTER TABLE restores ADD COLUMN steps TEXT;
ALTER TABLE restores ADD COLUMN error_code TEXT;
ALTER TABLE restores ADD COLUMN error_message TEXT;
ALTER TABLE restores ADD COLUMN updated_at TEXT;
CREATE UNIQUE INDEX restores_code ON restores (code_hash) WHERE code_hash IS NOT NULL;
