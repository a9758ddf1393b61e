import type { Hooks, JobLogEntry, JobPhase, JobState, JobTransition, Throttle } from '@ferry/protocol';
import type { Catalog } from '../catalog/catalog.js';

export interface JobRow {
  id: number;
  source_id: number;
  state: JobState;
  phase: JobPhase | null;
  interval_seconds: number;
  pending_interval_seconds: number | null;
  pending_interval_armed: number;
  max_points: number;
  last_cycle: number;
  last_cycle_armed: number;
  next_run_at: string | null;
  last_completed_at: string | null;
  error_code: string | null;
  error_message: string | null;
  throttle: string;
  /** JSON array of paths. */
  exclusions: string;
  pre_hook: string | null;
  post_hook: string | null;
  created_at: string;
  finished_at: string | null;
}

/** Columns a job change may set besides its state. */
export type JobPatch = Partial<
  Pick<
    JobRow,
    | 'phase'
    | 'interval_seconds'
    | 'pending_interval_seconds'
    | 'pending_interval_armed'
    | 'max_points'
    | 'last_cycle'
    | 'last_cycle_armed'
    | 'next_run_at'
    | 'last_completed_at'
    | 'error_code'
    | 'error_message'
    | 'throttle'
    | 'exclusions'
    | 'pre_hook'
    | 'post_hook'
    | 'finished_at'
  >
>;

const PATCHABLE = new Set<string>([
  'phase',
  'interval_seconds',
  'pending_interval_seconds',
  'pending_interval_armed',
  'max_points',
  'last_cycle',
  'last_cycle_armed',
  'next_run_at',
  'last_completed_at',
  'error_code',
  'error_message',
  'throttle',
  'exclusions',
  'pre_hook',
  'post_hook',
  'finished_at',
]);

export interface PointRow {
  id: number;
  point_name: string;
  started_at: string;
  finished_at: string;
  bytes_stored: number;
  stats: string | null;
  size_bytes: number;
  pinned: number;
}

export class JobRepository {
  constructor(private readonly db: Catalog) {}

  transaction<T>(fn: () => T): T {
    return this.db.transaction(fn)();
  }

  create(sourceId: number, state: 'Ready' | 'Paused', intervalSeconds: number, maxPoints: number, throttle: Throttle, exclusions: string[], hooks: Hooks, at: string): number {
    const r = this.db
      .prepare(
        'INSERT INTO jobs (source_id, state, interval_seconds, max_points, throttle, exclusions, pre_hook, post_hook, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)',
      )
      .run(sourceId, state, intervalSeconds, maxPoints, JSON.stringify(throttle), JSON.stringify(exclusions), hooks.pre, hooks.post, at);
    return Number(r.lastInsertRowid);
  }

  get(id: number): JobRow | undefined {
    return this.db.prepare('SELECT * FROM jobs WHERE id = ?').get(id) as JobRow | undefined;
  }

  list(): JobRow[] {
    return this.db.prepare('SELECT * FROM jobs ORDER BY id').all() as JobRow[];
  }

  live(): JobRow[] {
    return this.db.prepare("SELECT * FROM jobs WHERE state NOT IN ('Completed', 'Cancelled') ORDER BY id").all() as JobRow[];
  }

  /** The source's job that is neither Completed nor Cancelled, if any. */
  liveForSource(sourceId: number): JobRow | undefined {
    return this.db.prepare("SELECT * FROM jobs WHERE source_id = ? AND state NOT IN ('Completed', 'Cancelled')").get(sourceId) as JobRow | undefined;
  }

  /** The source's newest job of any state. */
  latestForSource(sourceId: number): JobRow | undefined {
    return this.db.prepare('SELECT * FROM jobs WHERE source_id = ? ORDER BY id DESC LIMIT 1').get(sourceId) as JobRow | undefined;
  }

  /** Changes a job's state (and other columns) and records the transition with its cause, in one transaction. */
  transition(id: number, from: JobState, to: JobState, cause: string, at: string, patch: JobPatch = {}, code: string | null = null): void {
    const keys = Object.keys(patch).filter((k) => PATCHABLE.has(k));
    const sets = ['state = ?', ...keys.map((k) => `${k} = ?`)].join(', ');
    const values = keys.map((k) => patch[k as keyof JobPatch] ?? null);
    this.transaction(() => {
      this.db.prepare(`UPDATE jobs SET ${sets} WHERE id = ?`).run(to, ...values, id);
      if (from !== to) {
        this.db.prepare('INSERT INTO job_transitions (job_id, at, from_state, to_state, cause, code) VALUES (?, ?, ?, ?, ?, ?)').run(id, at, from, to, cause, code);
      }
    });
  }

  recordCreation(id: number, state: 'Ready' | 'Paused', at: string, cause: string): void {
    this.db.prepare('INSERT INTO job_transitions (job_id, at, from_state, to_state, cause) VALUES (?, ?, NULL, ?, ?)').run(id, at, state, cause);
  }

  /** Changes columns without a state change. */
  update(id: number, patch: JobPatch): void {
    const keys = Object.keys(patch).filter((k) => PATCHABLE.has(k));
    if (keys.length === 0) return;
    this.db.prepare(`UPDATE jobs SET ${keys.map((k) => `${k} = ?`).join(', ')} WHERE id = ?`).run(...keys.map((k) => patch[k as keyof JobPatch] ?? null), id);
  }

  transitions(jobId: number): JobTransition[] {
    return (
      this.db.prepare('SELECT id, at, from_state, to_state, cause, code FROM job_transitions WHERE job_id = ? ORDER BY id').all(jobId) as {
        id: number;
        at: string;
        from_state: JobState | null;
        to_state: JobState;
        cause: string;
        code: string | null;
      }[]
    ).map((r) => ({ id: r.id, at: r.at, from: r.from_state, to: r.to_state, cause: r.cause, code: r.code }));
  }

  log(jobId: number, at: string, level: JobLogEntry['level'], message: string, code: string | null): JobLogEntry {
    const r = this.db.prepare('INSERT INTO job_log (job_id, at, level, code, message) VALUES (?, ?, ?, ?, ?)').run(jobId, at, level, code, message);
    return { id: Number(r.lastInsertRowid), jobId, at, level, code, message };
  }

  logEntries(jobId: number): JobLogEntry[] {
    return (
      this.db.prepare('SELECT id, job_id, at, level, code, message FROM job_log WHERE job_id = ? ORDER BY id').all(jobId) as {
        id: number;
        job_id: number;
        at: string;
        level: JobLogEntry['level'];
        code: string | null;
        message: string;
      }[]
    ).map((r) => ({ id: r.id, jobId: r.job_id, at: r.at, level: r.level, code: r.code, message: r.message }));
  }

  /** Links a cycle to the job that asked for it. */
  linkCycle(cycleId: number, jobId: number): void {
    this.db.prepare('UPDATE cycles SET job_id = ? WHERE id = ?').run(jobId, cycleId);
  }

  runningCycle(jobId: number): { id: number } | undefined {
    return this.db.prepare("SELECT id FROM cycles WHERE job_id = ? AND state = 'running' ORDER BY id DESC LIMIT 1").get(jobId) as { id: number } | undefined;
  }

  /** The job's committed points, oldest first, with their data size and whether an active restore uses them. */
  points(jobId: number): PointRow[] {
    return this.db
      .prepare(
        `SELECT c.id, c.point_name, c.started_at, c.finished_at, c.bytes_stored, c.stats,
           (SELECT COALESCE(SUM(MIN(cd.block_size * cd.data_blocks, cd.size)), 0) FROM cycle_disks cd WHERE cd.cycle_id = c.id) AS size_bytes,
           EXISTS (SELECT 1 FROM restores r WHERE r.point_id = c.id AND r.state = 'active') AS pinned
         FROM cycles c WHERE c.job_id = ? AND c.state = 'committed' ORDER BY c.id`,
      )
      .all(jobId) as PointRow[];
  }

  pointCount(jobId: number): number {
    return (this.db.prepare("SELECT COUNT(*) AS n FROM cycles WHERE job_id = ? AND state = 'committed'").get(jobId) as { n: number }).n;
  }
}
