import { statfs } from 'node:fs/promises';
import type { JobView, PassiveSourceView, RestoreView } from '@ferry/protocol';
import type { Catalog } from '../catalog/catalog.js';
import type { DashboardAlert, DashboardSummary } from './types.js';

/** Below these shares of free space the dashboard warns, then raises an error. */
export const LOW_SPACE_WARNING = 0.15;
export const LOW_SPACE_ERROR = 0.05;

export interface StoreTotals {
  points: number;
  logicalBytes: number;
  changedBytes: number;
  /** Chunks the cycles wrote (not those the store held already), before compression: chunk count × block size. */
  newChunkBytes: number;
  storedBytes: number;
}

/** Sums over the live points (committed cycles) for the dashboard. */
export class DashboardRepository {
  constructor(private readonly db: Catalog) {}

  totals(): StoreTotals {
    // A cycle's disks share its block size; a chunk is one block's data.
    const p = this.db
      .prepare(
        `SELECT COUNT(*) AS points, COALESCE(SUM(c.bytes_stored), 0) AS stored,
                COALESCE(SUM(CAST(json_extract(c.stats, '$.bytesChanged') AS INTEGER)), 0) AS changed,
                COALESCE(SUM(c.chunks_stored * (SELECT MAX(d.block_size) FROM cycle_disks d WHERE d.cycle_id = c.id)), 0) AS newChunks
           FROM cycles c WHERE c.state = 'committed'`,
      )
      .get() as { points: number; stored: number; changed: number; newChunks: number };
    const l = this.db
      .prepare(
        `SELECT COALESCE(SUM(d.data_blocks * d.block_size), 0) AS logical
           FROM cycle_disks d JOIN cycles c ON c.id = d.cycle_id WHERE c.state = 'committed'`,
      )
      .get() as { logical: number };
    return { points: p.points, logicalBytes: l.logical, changedBytes: p.changed, newChunkBytes: p.newChunks, storedBytes: p.stored };
  }

  sourceIds(): number[] {
    return (this.db.prepare('SELECT id FROM sources').all() as { id: number }[]).map((r) => r.id);
  }
}

export interface DashboardDeps {
  repo: DashboardRepository;
  dataDir: string;
  jobs: () => JobView[];
  restores: () => RestoreView[];
  /** Passive sources with their SSH state: one that failed or whose host key changed is an alert. */
  passive: () => PassiveSourceView[];
  online: (sourceId: number) => boolean;
}

const ratio = (a: number, b: number): number | null => (a > 0 && b > 0 ? a / b : null);

/** The dashboard's summary: storage, data reduction, what runs, and what needs the engineer's attention. */
export class DashboardService {
  constructor(private readonly deps: DashboardDeps) {}

  async summary(): Promise<DashboardSummary> {
    const fs = await statfs(this.deps.dataDir);
    // As df shows them: Used = blocks − free blocks, Avail = blocks an unprivileged user may still fill. The blocks
    // reserved for root (free, not available) are neither, so used + free = total and the bar is df's Use%.
    const usedBytes = (fs.blocks - fs.bfree) * fs.bsize;
    const freeBytes = fs.bavail * fs.bsize;
    const totalBytes = usedBytes + freeBytes;
    const t = this.deps.repo.totals();
    const jobs = this.deps.jobs();
    const restores = this.deps.restores();
    const alerts: DashboardAlert[] = [];
    for (const j of jobs) {
      if (j.state === 'InError') {
        alerts.push({ level: 'error', kind: 'job-error', message: `${j.sourceName}: ${j.error?.message ?? 'the job failed'}`, jobId: j.id, restoreId: null, sourceId: null });
      } else if (j.state === 'Suspended') {
        alerts.push({ level: 'warning', kind: 'job-suspended', message: `${j.sourceName}: the source has been unreachable; the job resumes by itself when it is back`, jobId: j.id, restoreId: null, sourceId: null });
      }
    }
    for (const r of restores) {
      if (r.phase === 'failed' && r.state === 'active') {
        alerts.push({ level: 'error', kind: 'restore-failed', message: `${r.sourceName} ${r.pointName}: ${r.error?.message ?? 'the restore failed'}`, jobId: null, restoreId: r.id, sourceId: null });
      }
    }
    for (const p of this.deps.passive()) {
      // A refused login or a changed host key waits for the engineer; a failed deploy is retried but needs a look.
      if (p.state === 'failed' || p.state === 'host-key-changed') {
        alerts.push({ level: 'error', kind: 'source-failed', message: `${p.name}: ${p.message ?? p.state}`, jobId: null, restoreId: null, sourceId: p.sourceId });
      }
    }
    const freeShare = totalBytes > 0 ? freeBytes / totalBytes : 1;
    if (freeShare < LOW_SPACE_WARNING) {
      alerts.push({
        level: freeShare < LOW_SPACE_ERROR ? 'error' : 'warning',
        kind: 'storage-low',
        message: `${(freeShare * 100).toFixed(1)} % of the appliance's storage is free`,
        jobId: null,
        restoreId: null,
        sourceId: null,
      });
    }
    const sourceIds = this.deps.repo.sourceIds();
    return {
      storage: {
        totalBytes,
        usedBytes,
        freeBytes,
        storedBytes: t.storedBytes,
        logicalBytes: t.logicalBytes,
        changedBytes: t.changedBytes,
        newChunkBytes: t.newChunkBytes,
        // Both from what the appliance itself wrote: the changed bytes agents report restart with a resumed cycle.
        dedupeRatio: ratio(t.logicalBytes, t.newChunkBytes),
        compressionRatio: ratio(t.newChunkBytes, t.storedBytes),
      },
      sources: { total: sourceIds.length, online: sourceIds.filter((id) => this.deps.online(id)).length },
      jobs: {
        total: jobs.filter((j) => j.state !== 'Completed' && j.state !== 'Cancelled').length,
        running: jobs.filter((j) => j.state === 'Syncing' || j.state === 'Completing').length,
        inError: jobs.filter((j) => j.state === 'InError').length,
        suspended: jobs.filter((j) => j.state === 'Suspended').length,
      },
      points: t.points,
      restores: { active: restores.filter((r) => r.state === 'active').length },
      alerts,
    };
  }
}
