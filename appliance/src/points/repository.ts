import type { Catalog } from '../catalog/catalog.js';

/** Why a point cannot be deleted right now, or null when it can. */
export type PointUse = 'restore' | 'running cycle' | null;

export class PointRepository {
  constructor(private readonly db: Catalog) {}

  inUse(pointId: number): PointUse {
    if (this.db.prepare("SELECT 1 FROM restores WHERE point_id = ? AND state = 'active'").get(pointId)) return 'restore';
    const comparing = this.db
      .prepare("SELECT 1 FROM cycle_disks cd JOIN cycles c ON c.id = cd.cycle_id WHERE cd.previous_cycle_id = ? AND c.state = 'running'")
      .get(pointId);
    return comparing ? 'running cycle' : null;
  }

  /** Marks a committed point deleted; only then are its index files removed and its chunks left to GC. */
  markDeleted(pointId: number, at: string): boolean {
    return this.db.prepare("UPDATE cycles SET state = 'deleted', deleted_at = ? WHERE id = ? AND state = 'committed'").run(at, pointId).changes === 1;
  }
}
