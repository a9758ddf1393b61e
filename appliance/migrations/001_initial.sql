-- Catalog v1. Timestamps are ISO-8601 UTC text. Secrets are stored only as SHA-256 hashes.
CREATE TABLE api_tokens (
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL,
  secret_hash BLOB NOT NULL,
  role TEXT NOT NULL CHECK (role IN ('admin')),
  created_at TEXT NOT NULL,
  revoked_at TEXT
);

CREATE TABLE enroll_tokens (
  id INTEGER PRIMARY KEY,
  secret_hash BLOB NOT NULL UNIQUE,
  created_at TEXT NOT NULL,
  expires_at TEXT NOT NULL,
  used_at TEXT,
  agent_id INTEGER
);

CREATE TABLE sources (
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  hostname TEXT NOT NULL,
  os TEXT,
  created_at TEXT NOT NULL,
  last_seen TEXT,
  -- CYCLE_N numbering never reuses a number, even after points are deleted.
  next_point_number INTEGER NOT NULL DEFAULT 1
);

CREATE TABLE agents (
  id INTEGER PRIMARY KEY,
  source_id INTEGER NOT NULL REFERENCES sources(id),
  secret_hash BLOB NOT NULL,
  created_at TEXT NOT NULL,
  revoked_at TEXT
);

CREATE TABLE disks (
  id INTEGER PRIMARY KEY,
  source_id INTEGER NOT NULL REFERENCES sources(id),
  key TEXT NOT NULL,
  size INTEGER NOT NULL,
  layout TEXT,
  used_bytes INTEGER,
  updated_at TEXT NOT NULL,
  UNIQUE (source_id, key)
);

-- A cycle becomes a point when it is committed: its point_name (CYCLE_N) is set in the same transaction.
CREATE TABLE cycles (
  id INTEGER PRIMARY KEY,
  source_id INTEGER NOT NULL REFERENCES sources(id),
  state TEXT NOT NULL CHECK (state IN ('running', 'committed', 'abandoned')),
  started_at TEXT NOT NULL,
  finished_at TEXT,
  point_number INTEGER,
  point_name TEXT,
  chunks_stored INTEGER NOT NULL DEFAULT 0,
  bytes_stored INTEGER NOT NULL DEFAULT 0,
  stats TEXT
);
CREATE UNIQUE INDEX cycles_point_name ON cycles (source_id, point_name) WHERE point_name IS NOT NULL;
CREATE INDEX cycles_source_state ON cycles (source_id, state);

CREATE TABLE cycle_disks (
  cycle_id INTEGER NOT NULL REFERENCES cycles(id),
  slot INTEGER NOT NULL,
  disk_id INTEGER NOT NULL REFERENCES disks(id),
  size INTEGER NOT NULL,
  block_size INTEGER NOT NULL,
  block_count INTEGER NOT NULL,
  -- Every block below next_block is durable in the cycle's index file.
  next_block INTEGER NOT NULL DEFAULT 0,
  previous_cycle_id INTEGER REFERENCES cycles(id),
  layout TEXT,
  data_blocks INTEGER NOT NULL DEFAULT 0,
  zero_blocks INTEGER NOT NULL DEFAULT 0,
  unused_blocks INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (cycle_id, slot),
  UNIQUE (cycle_id, disk_id)
);
