-- foreign_keys: off
-- Catalog v6: auth hardening. Web UI users get a role (admin, operator, viewer: docs/api.md, "Roles"); an
-- enrollment token may be bound to an existing source (re-enrolling a source whose agent was revoked); the audit
-- log records every state-changing action. users is rebuilt because SQLite cannot change a CHECK constraint.
CREATE TABLE users_v6 (
  id INTEGER PRIMARY KEY,
  username TEXT NOT NULL UNIQUE COLLATE NOCASE,
  password_hash TEXT NOT NULL,
  role TEXT NOT NULL CHECK (role IN ('admin', 'operator', 'viewer')),
  created_at TEXT NOT NULL,
  last_login_at TEXT
);
INSERT INTO users_v6 (id, username, password_hash, role, created_at, last_login_at)
  SELECT id, username, password_hash, role, created_at, last_login_at FROM users;
DROP TABLE users;
ALTER TABLE users_v6 RENAME TO users;

ALTER TABLE enroll_tokens ADD COLUMN source_id INTEGER REFERENCES sources(id);

CREATE TABLE audit_log (
  id INTEGER PRIMARY KEY,
  at TEXT NOT NULL,
  -- "user:alice", "token:3", "enroll", "anonymous" (a refused request without a valid credential).
  actor TEXT NOT NULL,
  role TEXT,
  address TEXT NOT NULL,
  -- "POST /api/v1/jobs/4/pause", or a named action such as "login".
  action TEXT NOT NULL,
  outcome TEXT NOT NULL CHECK (outcome IN ('ok', 'refused', 'failed')),
  status INTEGER NOT NULL,
  code TEXT
);
CREATE INDEX audit_log_at ON audit_log (at);
