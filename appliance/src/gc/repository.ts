import type { Catalog } from '../catalog/catalog.js';

export type CycleStateName = 'running' | 'committed' | 'abandoned' | 'deleted';

/** Why an index is live: a point's, a running cycle's, or the previous point a running cycle compares against. */
export type LiveReason = 'committed' | 'running' | 'previous';

export interface LiveIndex {
  cycleId: number;
  diskId: number;
  reason: LiveReason;
}

/** The catalog reads garbage collection needs. */
export class GcRepository {
  constructor(private readonly db: Catalog) {}

  /**
   * Every index whose chunks must stay: committed points', running cycles', and — whatever their state, should
   * retention ever get that wrong — the previous points running cycles compare against.
   */
  liveIndexes(): LiveIndex[] {
    return this.db
      .prepare(
        `SELECT c.id AS cycleId, cd.disk_id AS diskId, c.state AS reason
           FROM cycles c JOIN cycle_disks cd ON cd.cycle_id = c.id
          WHERE c.state IN ('committed', 'running')
         UNION
         SELECT cd.previous_cycle_id, cd.disk_id, 'previous'
           FROM cycle_disks cd JOIN cycles c ON c.id = cd.cycle_id
          WHERE c.state = 'running' AND cd.previous_cycle_id IS NOT NULL
         ORDER BY 1, 2`,
      )
      .all() as LiveIndex[];
  }

  stateOf(cycleId: number): CycleStateName | undefined {
    const r = this.db.prepare('SELECT state FROM cycles WHERE id = ?').get(cycleId) as { state: CycleStateName } | undefined;
    return r?.state;
  }

  /** State of every cycle the catalog knows. */
  states(): Map<number, CycleStateName> {
    const rows = this.db.prepare('SELECT id, state FROM cycles').all() as { id: number; state: CycleStateName }[];
    return new Map(rows.map((r) => [r.id, r.state]));
  }

  /** Cycles that running cycles compare against: their index directories stay whatever their state. */
  previousOfRunning(): Set<number> {
    const rows = this.db
      .prepare(
        `SELECT DISTINCT cd.previous_cycle_id AS id FROM cycle_disks cd JOIN cycles c ON c.id = cd.cycle_id
          WHERE c.state = 'running' AND cd.previous_cycle_id IS NOT NULL`,
      )
      .all() as { id: number }[];
    return new Set(rows.map((r) => r.id));
  }

  runningIds(): number[] {
    return (this.db.prepare("SELECT id FROM cycles WHERE state = 'running' ORDER BY id").all() as { id: number }[]).map((r) => r.id);
  }
}
