import type { DiskInfo, SourceSummary } from '@ferry/protocol';
import type { Catalog } from '../catalog/catalog.js';
import { now } from '../catalog/catalog.js';

export interface DiskRow {
  id: number;
  source_id: number;
  key: string;
  size: number;
  layout: string | null;
}

/** A disk's layout and used bytes as its agent last reported them (the web UI's source page). */
export interface SourceDiskDetail {
  layout: unknown;
  usedBytes: number | null;
  updatedAt: string | null;
}

export class SourceRepository {
  constructor(private readonly db: Catalog) {}

  /** Source names are unique; a second host with the same name gets a numeric suffix. */
  create(hostname: string, os: string | null): number {
    let name = hostname;
    for (let i = 2; this.db.prepare('SELECT 1 FROM sources WHERE name = ?').get(name); i++) name = `${hostname}-${i}`;
    const r = this.db.prepare('INSERT INTO sources (name, hostname, os, created_at, last_seen) VALUES (?, ?, ?, ?, ?)').run(name, hostname, os, now(), now());
    return Number(r.lastInsertRowid);
  }

  touch(sourceId: number): void {
    this.db.prepare('UPDATE sources SET last_seen = ? WHERE id = ?').run(now(), sourceId);
  }

  exists(sourceId: number): boolean {
    return this.db.prepare('SELECT 1 FROM sources WHERE id = ?').get(sourceId) !== undefined;
  }

  get(sourceId: number): { id: number; name: string; last_seen: string | null } | undefined {
    return this.db.prepare('SELECT id, name, last_seen FROM sources WHERE id = ?').get(sourceId) as { id: number; name: string; last_seen: string | null } | undefined;
  }

  name(sourceId: number): string {
    return (this.db.prepare('SELECT name FROM sources WHERE id = ?').get(sourceId) as { name: string }).name;
  }

  upsertDisk(sourceId: number, d: DiskInfo): number {
    this.db
      .prepare(
        `INSERT INTO disks (source_id, key, size, layout, used_bytes, updated_at) VALUES (?, ?, ?, ?, ?, ?)
         ON CONFLICT (source_id, key) DO UPDATE SET size = excluded.size, layout = excluded.layout,
           used_bytes = excluded.used_bytes, updated_at = excluded.updated_at`,
      )
      .run(sourceId, d.key, d.size, d.layout ? JSON.stringify(d.layout) : null, d.usedBytes ?? null, now());
    return (this.db.prepare('SELECT id FROM disks WHERE source_id = ? AND key = ?').get(sourceId, d.key) as { id: number }).id;
  }

  disk(diskId: number): DiskRow | undefined {
    return this.db.prepare('SELECT id, source_id, key, size, layout FROM disks WHERE id = ?').get(diskId) as DiskRow | undefined;
  }

  list(): SourceSummary[] {
    const rows = this.db.prepare('SELECT id, name, hostname, os, last_seen FROM sources ORDER BY id').all() as {
      id: number;
      name: string;
      hostname: string;
      os: string | null;
      last_seen: string | null;
    }[];
    const disks = this.db.prepare('SELECT id, key, size FROM disks WHERE source_id = ? ORDER BY id');
    return rows.map((r) => ({
      id: r.id,
      name: r.name,
      hostname: r.hostname,
      os: r.os,
      lastSeen: r.last_seen,
      disks: disks.all(r.id) as { id: number; key: string; size: number }[],
    }));
  }

  diskDetails(sourceId: number): (SourceDiskDetail & { id: number })[] {
    const rows = this.db.prepare('SELECT id, layout, used_bytes, updated_at FROM disks WHERE source_id = ? ORDER BY id').all(sourceId) as {
      id: number;
      layout: string | null;
      used_bytes: number | null;
      updated_at: string | null;
    }[];
    return rows.map((r) => ({ id: r.id, layout: r.layout ? (JSON.parse(r.layout) as unknown) : null, usedBytes: r.used_bytes, updatedAt: r.updated_at }));
  }

  /** Active (its agent dials in) unless the catalog says passive; read loosely so older catalogs work too. */
  mode(sourceId: number): 'active' | 'passive' {
    const row = this.db.prepare('SELECT * FROM sources WHERE id = ?').get(sourceId) as { mode?: string } | undefined;
    return row?.mode === 'passive' ? 'passive' : 'active';
  }
}
