-- Catalog v5: passive sources, which the appliance reaches over SSH (the agent runs there, started by the
-- appliance, and its traffic comes back through the SSH connection).
ALTER TABLE sources ADD COLUMN mode TEXT NOT NULL DEFAULT 'active' CHECK (mode IN ('active', 'passive'));

CREATE TABLE passive_sources (
  source_id INTEGER PRIMARY KEY REFERENCES sources(id),
  host TEXT NOT NULL,
  port INTEGER NOT NULL,
  username TEXT NOT NULL,
  auth_kind TEXT NOT NULL CHECK (auth_kind IN ('password', 'key')),
  -- The password or private key. Stored as given until encryption at rest lands; never sent to browsers.
  auth_secret TEXT NOT NULL,
  -- JSON array of disk paths on the source, or NULL for every disk found at each cycle.
  disks TEXT,
  -- The host key the engineer confirmed (trust on first use), and one presented but not trusted yet.
  host_key_algorithm TEXT,
  host_key_sha256 TEXT,
  presented_key_algorithm TEXT,
  presented_key_sha256 TEXT,
  -- The agent credential the appliance hands the agent over SSH at each start (nothing is kept on the source).
  agent_id INTEGER REFERENCES agents(id),
  agent_credential TEXT,
  agent_version TEXT,
  state TEXT NOT NULL,
  message TEXT,
  updated_at TEXT NOT NULL
);

-- Jobs: paths whose files' blocks are not copied (JSON array), and commands around the final cycle.
ALTER TABLE jobs ADD COLUMN exclusions TEXT NOT NULL DEFAULT '[]';
ALTER TABLE jobs ADD COLUMN pre_hook TEXT;
ALTER TABLE jobs ADD COLUMN post_hook TEXT;
