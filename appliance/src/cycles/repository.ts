import type { PointStats } from '@ferry/protocol';
import type { Catalog } from '../catalog/catalog.js';
import { now } from '../catalog/catalog.js';

export interface CycleRow {
  id: number;
  source_id: number;
  job_id: number | null;
  state: 'running' | 'committed' | 'abandoned' | 'deleted';
  started_at: string;
  finished_at: string | null;
  point_name: string | null;
  chunks_stored: number;
  bytes_stored: number;
  stats: string | null;
}

export interface CycleDiskRow {
  cycle_id: number;
  slot: number;
  disk_id: number;
  key: string;
  size: number;
  block_size: number;
  block_count: number;
  next_block: number;
  previous_cycle_id: number | null;
  layout: string | null;
  data_blocks: number;
  zero_blocks: number;
  unused_blocks: number;
}

export interface NewCycleDisk {
  diskId: number;
  size: number;
  blockSize: number;
  blockCount: number;
  previousCycleId: number | null;
  layout: string | null;
}

export class CycleRepository {
  constructor(private readonly db: Catalog) {}

  get(id: number): CycleRow | undefined {
    return this.db.prepare('SELECT * FROM cycles WHERE id = ?').get(id) as CycleRow | undefined;
  }

  running(sourceId: number): CycleRow | undefined {
    return this.db.prepare("SELECT * FROM cycles WHERE source_id = ? AND state = 'running' ORDER BY id DESC LIMIT 1").get(sourceId) as CycleRow | undefined;
  }

  runningIds(): number[] {
    return (this.db.prepare("SELECT id FROM cycles WHERE state = 'running' ORDER BY id").all() as { id: number }[]).map((r) => r.id);
  }

  disks(cycleId: number): CycleDiskRow[] {
    return this.db
      .prepare('SELECT cd.*, d.key FROM cycle_disks cd JOIN disks d ON d.id = cd.disk_id WHERE cd.cycle_id = ? ORDER BY cd.slot')
      .all(cycleId) as CycleDiskRow[];
  }

  /** The newest committed point of a source that holds this disk with this block size. */
  previousPointFor(sourceId: number, diskId: number, blockSize: number): number | null {
    const r = this.db
      .prepare(
        `SELECT c.id FROM cycles c JOIN cycle_disks cd ON cd.cycle_id = c.id
         WHERE c.source_id = ? AND c.state = 'committed' AND cd.disk_id = ? AND cd.block_size = ?
         ORDER BY c.id DESC LIMIT 1`,
      )
      .get(sourceId, diskId, blockSize) as { id: number } | undefined;
    return r?.id ?? null;
  }

  create(sourceId: number, disks: NewCycleDisk[]): number {
    return this.db.transaction(() => {
      const r = this.db.prepare("INSERT INTO cycles (source_id, state, started_at) VALUES (?, 'running', ?)").run(sourceId, now());
      const id = Number(r.lastInsertRowid);
      const ins = this.db.prepare(
        'INSERT INTO cycle_disks (cycle_id, slot, disk_id, size, block_size, block_count, previous_cycle_id, layout) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
      );
      disks.forEach((d, slot) => ins.run(id, slot, d.diskId, d.size, d.blockSize, d.blockCount, d.previousCycleId, d.layout));
      return id;
    })();
  }

  abandon(id: number): void {
    this.db.prepare("UPDATE cycles SET state = 'abandoned', finished_at = ? WHERE id = ? AND state = 'running'").run(now(), id);
  }

  /** Called only after the blocks' chunks and index entries are durable on disk. */
  acknowledge(cycleId: number, progress: { slot: number; nextBlock: number }[], chunksStored: number, bytesStored: number): void {
    this.db.transaction(() => {
      const upd = this.db.prepare('UPDATE cycle_disks SET next_block = ? WHERE cycle_id = ? AND slot = ?');
      for (const p of progress) upd.run(p.nextBlock, cycleId, p.slot);
      this.db
        .prepare('UPDATE cycles SET chunks_stored = chunks_stored + ?, bytes_stored = bytes_stored + ? WHERE id = ?')
        .run(chunksStored, bytesStored, cycleId);
    })();
  }

  /** Turns a running cycle into the source's next CYCLE_N point, in one transaction. */
  commit(cycleId: number, counts: { slot: number; data: number; zero: number; unused: number }[], stats: Omit<PointStats, 'bytesStored'>): string {
    return this.db.transaction(() => {
      const c = this.get(cycleId)!;
      const { next_point_number: n } = this.db.prepare('SELECT next_point_number FROM sources WHERE id = ?').get(c.source_id) as {
        next_point_number: number;
      };
      const name = `CYCLE_${n}`;
      const upd = this.db.prepare('UPDATE cycle_disks SET data_blocks = ?, zero_blocks = ?, unused_blocks = ? WHERE cycle_id = ? AND slot = ?');
      for (const k of counts) upd.run(k.data, k.zero, k.unused, cycleId, k.slot);
      this.db
        .prepare("UPDATE cycles SET state = 'committed', finished_at = ?, point_number = ?, point_name = ?, stats = ? WHERE id = ? AND state = 'running'")
        .run(now(), n, name, JSON.stringify(stats), cycleId);
      this.db.prepare('UPDATE sources SET next_point_number = ? WHERE id = ?').run(n + 1, c.source_id);
      return name;
    })();
  }

  points(sourceId?: number): CycleRow[] {
    if (sourceId === undefined) return this.db.prepare("SELECT * FROM cycles WHERE state = 'committed' ORDER BY id").all() as CycleRow[];
    return this.db.prepare("SELECT * FROM cycles WHERE state = 'committed' AND source_id = ? ORDER BY id").all(sourceId) as CycleRow[];
  }
}
