import Database from 'better-sqlite3';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

export type Catalog = Database.Database;

const MIGRATIONS_DIR = fileURLToPath(new URL('../../migrations/', import.meta.url));

/**
 * Opens (creating if needed) the SQLite catalog and applies numbered migrations in one transaction each.
 * WAL lets the CLI (tokens, verify) read and write while the server runs; synchronous=FULL because the box
 * can lose power at any moment and a committed point must stay committed.
 */
export function openCatalog(file: string, migrationsDir = MIGRATIONS_DIR): Catalog {
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  db.pragma('foreign_keys = ON');
  db.pragma('busy_timeout = 5000');
  db.exec('CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)');
  const applied = new Set((db.prepare('SELECT version FROM schema_migrations').all() as { version: number }[]).map((r) => r.version));
  const files = readdirSync(migrationsDir)
    .filter((f) => /^\d{3}_[a-z0-9_]+\.sql$/.test(f))
    .sort();
  for (const f of files) {
    const version = Number(f.slice(0, 3));
    if (applied.has(version)) continue;
    const sql = readFileSync(path.join(migrationsDir, f), 'utf8');
    // A migration that rebuilds a table runs with foreign keys off (SQLite's documented procedure); they are
    // checked before its transaction commits, so a bad migration changes nothing.
    const rebuild = sql.startsWith('-- foreign_keys: off');
    if (rebuild) db.pragma('foreign_keys = OFF');
    try {
      db.transaction(() => {
        db.exec(sql);
        if (rebuild) {
          const broken = db.prepare('PRAGMA foreign_key_check').all();
          if (broken.length > 0) throw new Error(`migration ${f} breaks foreign keys: ${JSON.stringify(broken.slice(0, 5))}`);
        }
        db.prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)').run(version, f, new Date().toISOString());
      })();
    } finally {
      if (rebuild) db.pragma('foreign_keys = ON');
    }
  }
  return db;
}

export function now(): string {
  return new Date().toISOString();
}
