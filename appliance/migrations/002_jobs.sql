-- foreign_keys: off
-- Catalog v2: migration jobs, their transitions and log, restores that pin points, and deleted points.
-- The cycles table is rebuilt (SQLite cannot change a CHECK constraint) to add the 'deleted' state and job_id;
-- the catalog runs this with foreign keys off and checks them before committing.

CREATE TABLE jobs (
  id INTEGER PRIMARY KEY,
  source_id INTEGER NOT NULL REFERENCES sources(id),
  state TEXT NOT NULL CHECK (state IN ('Ready', 'Syncing', 'Waiting', 'Paused', 'InError', 'Suspended', 'Completing', 'Completed', 'Cancelled')),
  phase TEXT CHECK (phase IN ('Comparing', 'Transferring')),
  interval_seconds INTEGER NOT NULL CHECK (interval_seconds BETWEEN 3600 AND 604800),
  -- An interval change waits here until the first cycle that starts after the change completes.
  pending_interval_seconds INTEGER CHECK (pending_interval_seconds BETWEEN 3600 AND 604800),
  pending_interval_armed INTEGER NOT NULL DEFAULT 0,
  max_points INTEGER NOT NULL CHECK (max_points BETWEEN 1 AND 10),
  -- Completing with a last cycle: armed once that cycle has started, so only its commit completes the job.
  last_cycle INTEGER NOT NULL DEFAULT 0,
  last_cycle_armed INTEGER NOT NULL DEFAULT 0,
  next_run_at TEXT,
  last_completed_at TEXT,
  error_code TEXT,
  error_message TEXT,
  throttle TEXT NOT NULL,
  created_at TEXT NOT NULL,
  finished_at TEXT
);
-- One live job per source.
CREATE UNIQUE INDEX jobs_live_source ON jobs (source_id) WHERE state NOT IN ('Completed', 'Cancelled');

CREATE TABLE job_transitions (
  id INTEGER PRIMARY KEY,
  job_id INTEGER NOT NULL REFERENCES jobs(id),
  at TEXT NOT NULL,
  from_state TEXT,
  to_state TEXT NOT NULL,
  cause TEXT NOT NULL,
  code TEXT
);
CREATE INDEX job_transitions_job ON job_transitions (job_id, id);

CREATE TABLE job_log (
  id INTEGER PRIMARY KEY,
  job_id INTEGER NOT NULL REFERENCES jobs(id),
  at TEXT NOT NULL,
  level TEXT NOT NULL CHECK (level IN ('info', 'warn', 'error')),
  code TEXT,
  message TEXT NOT NULL
);
CREATE INDEX job_log_job ON job_log (job_id, id);

CREATE TABLE cycles_v2 (
  id INTEGER PRIMARY KEY,
  source_id INTEGER NOT NULL REFERENCES sources(id),
  job_id INTEGER REFERENCES jobs(id),
  state TEXT NOT NULL CHECK (state IN ('running', 'committed', 'abandoned', 'deleted')),
  started_at TEXT NOT NULL,
  finished_at TEXT,
  deleted_at TEXT,
  point_number INTEGER,
  point_name TEXT,
  chunks_stored INTEGER NOT NULL DEFAULT 0,
  bytes_stored INTEGER NOT NULL DEFAULT 0,
  stats TEXT
);
INSERT INTO cycles_v2 (id, source_id, state, started_at, finished_at, point_number, point_name, chunks_stored, bytes_stored, stats)
  SELECT id, source_id, state, started_at, finished_at, point_number, point_name, chunks_stored, bytes_stored, stats FROM cycles;
DROP TABLE cycles;
ALTER TABLE cycles_v2 RENAME TO cycles;
CREATE UNIQUE INDEX cycles_point_name ON cycles (source_id, point_name) WHERE point_name IS NOT NULL;
CREATE INDEX cycles_source_state ON cycles (source_id, state);
CREATE INDEX cycles_job ON cycles (job_id, state);

-- A restore uses a point: retention never deletes a point while a restore of it is active.
CREATE TABLE restores (
  id INTEGER PRIMARY KEY,
  point_id INTEGER NOT NULL REFERENCES cycles(id),
  state TEXT NOT NULL CHECK (state IN ('active', 'finished', 'cancelled')),
  created_at TEXT NOT NULL,
  finished_at TEXT
);
CREATE INDEX restores_point ON restores (point_id, state);
