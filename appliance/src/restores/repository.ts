import type { Catalog } from '../catalog/catalog.js';

export interface RestoreRow {
  id: number;
  point_id: number;
  state: 'active' | 'finished' | 'cancelled';
  created_at: string;
  finished_at: string | null;
  code_hash: Buffer | null;
  code_expires_at: string | null;
  target_disks: number | null;
  session_hash: Buffer | null;
  phase: string | null;
  progress: string | null;
  verified: string | null;
  steps: string | null;
  error_code: string | null;
  error_message: string | null;
  updated_at: string | null;
}

export type RestorePatch = Partial<Pick<RestoreRow, 'phase' | 'progress' | 'verified' | 'steps' | 'error_code' | 'error_message' | 'session_hash'>>;

const PATCHABLE = new Set(['phase', 'progress', 'verified', 'steps', 'error_code', 'error_message', 'session_hash']);

/** Restores of points. An active restore pins its point: retention and deletion leave it alone. */
export class RestoreRepository {
  constructor(private readonly db: Catalog) {}

  create(pointId: number, at: string, code?: { hash: Buffer; expiresAt: string; targetDisks: number | null }): number {
    return Number(
      this.db
        .prepare("INSERT INTO restores (point_id, state, created_at, code_hash, code_expires_at, target_disks, phase) VALUES (?, 'active', ?, ?, ?, ?, 'waiting')")
        .run(pointId, at, code?.hash ?? null, code?.expiresAt ?? null, code?.targetDisks ?? null).lastInsertRowid,
    );
  }

  get(id: number): RestoreRow | undefined {
    return this.db.prepare('SELECT * FROM restores WHERE id = ?').get(id) as RestoreRow | undefined;
  }

  byCode(hash: Buffer): RestoreRow | undefined {
    return this.db.prepare('SELECT * FROM restores WHERE code_hash = ?').get(hash) as RestoreRow | undefined;
  }

  list(): RestoreRow[] {
    return this.db.prepare('SELECT * FROM restores ORDER BY id').all() as RestoreRow[];
  }

  update(id: number, patch: RestorePatch, at: string): void {
    const keys = Object.keys(patch).filter((k) => PATCHABLE.has(k));
    const sets = [...keys.map((k) => `${k} = ?`), 'updated_at = ?'].join(', ');
    this.db.prepare(`UPDATE restores SET ${sets} WHERE id = ?`).run(...keys.map((k) => patch[k as keyof RestorePatch] ?? null), at, id);
  }

  finish(id: number, state: 'finished' | 'cancelled', at: string): boolean {
    return this.db.prepare("UPDATE restores SET state = ?, finished_at = ?, updated_at = ?, session_hash = NULL WHERE id = ? AND state = 'active'").run(state, at, at, id).changes === 1;
  }
}
