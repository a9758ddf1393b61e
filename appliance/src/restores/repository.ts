import type { Catalog } from '../catalog/catalog.js';

export interface RestoreRow {
  id: number;
  point_id: number;
  state: 'active' | 'finished' | 'cancelled';
  created_at: string;
  finished_at: string | null;
}

/** Restores of points. An active restore pins its point: retention and deletion leave it alone. */
export class RestoreRepository {
  constructor(private readonly db: Catalog) {}

  create(pointId: number, at: string): number {
    return Number(this.db.prepare("INSERT INTO restores (point_id, state, created_at) VALUES (?, 'active', ?)").run(pointId, at).lastInsertRowid);
  }

  get(id: number): RestoreRow | undefined {
    return this.db.prepare('SELECT * FROM restores WHERE id = ?').get(id) as RestoreRow | undefined;
  }

  list(): RestoreRow[] {
    return this.db.prepare('SELECT * FROM restores ORDER BY id').all() as RestoreRow[];
  }

  finish(id: number, state: 'finished' | 'cancelled', at: string): boolean {
    return this.db.prepare("UPDATE restores SET state = ?, finished_at = ? WHERE id = ? AND state = 'active'").run(state, at, id).changes === 1;
  }
}
