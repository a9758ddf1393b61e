import {
  ACTION_STATES,
  actionsFor,
  DEFAULT_THROTTLE,
  FerryError,
  formatInterval,
  type CancelJobRequest,
  type CompleteJobRequest,
  type CreateJobRequest,
  type CycleFailedReport,
  type CycleProgressReport,
  type CycleStoppedReport,
  type CycleLogReport,
  type JobAction,
  type JobActionResult,
  type JobLogEntry,
  type JobPoint,
  type JobProgress,
  type JobSettingsRequest,
  type JobState,
  type JobTransition,
  type JobView,
  type PointStats,
  type Reply,
  type RunCycleCommand,
  type StopCycleCommand,
  type Throttle,
} from '@ferry/protocol';
import type { Logger } from 'pino';
import { iso, type Clock } from '../clock.js';
import type { SourceRepository } from '../sources/repository.js';
import type { JobPatch, JobRepository, JobRow } from './repository.js';
import { ProgressTracker } from './progress.js';

let lastRevision = 0;
/**
 * A job view's revision: one more than the last, and never less than the wall clock in microseconds, so views built
 * after a restart still count as newer than those built before it (while the clock does not go back).
 */
function nextRevision(): number {
  lastRevision = Math.max(lastRevision + 1, Date.now() * 1000);
  return lastRevision;
}

/** Commands to a source's agent over its control channel. */
export interface AgentLink {
  online(sourceId: number): boolean;
  /** Clock time since which the source's agent has been unreachable (appliance start if never seen since). */
  offlineSince(sourceId: number): number;
  run(sourceId: number, cmd: RunCycleCommand): Promise<Reply<{ started: boolean }>>;
  stop(sourceId: number, cmd: StopCycleCommand): Promise<Reply<{ stopped: boolean }>>;
  throttle(sourceId: number, throttle: Throttle): Promise<Reply<{ applied: boolean }>>;
}

/** What browsers are told, live. */
export interface JobEvents {
  jobUpdated(job: JobView): void;
  jobProgress(progress: JobProgress): void;
  jobLog(entry: JobLogEntry): void;
}

/** Deleting points and collecting their chunks belong to other features; jobs only decide when. */
export interface PointKeeper {
  deletePoint(pointId: number): Promise<void>;
  inUse(pointId: number): string | null;
  abandonCycle(cycleId: number): void;
  collectGarbage(reason: string): void;
}

export interface JobServiceOptions {
  /** An agent unreachable for longer than this suspends its job (15 minutes; tests scale it down). */
  suspendAfterMs: number;
}

const LIVE_SYNC: JobState[] = ['Ready', 'Waiting', 'Syncing', 'Completing'];

/**
 * Failures of the link rather than of the cycle: the job keeps syncing and the cycle resumes after a pause.
 * REQUEST_TOO_SLOW is the appliance cutting an upload whose bytes stopped coming: a link that died mid-upload and
 * came back before the agent's own timeout gave up on it.
 */
const TRANSIENT_CODES = new Set(['APPLIANCE_UNREACHABLE', 'REQUEST_TOO_SLOW']);
const TRANSIENT_RETRY_MS = 30_000;
/**
 * A cycle that failed on the appliance's full disk is not started again before this long, even when the job
 * could not be moved to InError because the catalog itself is what is full (SQLITE_FULL): the scheduler would
 * otherwise start it again at every tick.
 */
const DISK_FULL_RETRY_MS = 5 * 60_000;

/**
 * What the engineer looking at a job InError does about failures whose cause is on the appliance, not on the
 * source: added to the agent's message (which only says what broke) in the job's error and log.
 */
const JOB_ADVICE: Partial<Record<string, string>> = {
  APPLIANCE_DISK_FULL:
    "what to do: free space on the appliance's data disk by deleting old points (garbage collection then removes the " +
    'chunks no other point uses) or grow the data disk, then press Retry; the cycle continues from its last acknowledged block',
};

const describeInterval = formatInterval;

/**
 * Migration jobs: the state machine, its actions, and what happens when cycles start, commit or fail.
 * Each state change is stored with its time and cause and sent to browsers.
 */
export class JobService {
  readonly #progress = new ProgressTracker();
  /** Jobs whose cycle an agent is working on right now (it accepted cycle.run or said so in its hello). */
  readonly #dispatched = new Set<number>();
  /** Jobs whose cycle failed for a transient reason, with the clock time to try again. */
  readonly #retryAt = new Map<number, number>();
  #ticking: Promise<void> | null = null;
  /** Refuses starting work (resume, sync now, retry, a new cycle) while the appliance waits for its arrival check. */
  #gate: (() => void) | null = null;

  /** Installs the transport gate: it throws (TRANSPORT_UNCHECKED) while jobs may not start work. */
  setGate(gate: () => void): void {
    this.#gate = gate;
  }

  constructor(
    private readonly repo: JobRepository,
    private readonly sources: SourceRepository,
    private readonly agents: AgentLink,
    private readonly keeper: PointKeeper,
    private readonly events: JobEvents,
    private readonly clock: Clock,
    private readonly log: Logger,
    private readonly opts: JobServiceOptions,
  ) {}

  // ---- queries -------------------------------------------------------------------------------------------

  list(): JobView[] {
    return this.repo.list().map((j) => this.#view(j));
  }

  get(jobId: number): JobView {
    return this.#view(this.#job(jobId));
  }

  sourceOf(jobId: number): number {
    return this.#job(jobId).source_id;
  }

  transitions(jobId: number): JobTransition[] {
    this.#job(jobId);
    return this.repo.transitions(jobId);
  }

  logEntries(jobId: number): JobLogEntry[] {
    this.#job(jobId);
    return this.repo.logEntries(jobId);
  }

  /** The job's log as text, one line per entry, for download. */
  logText(jobId: number): string {
    const job = this.#job(jobId);
    const head = `# Ferry job ${job.id} for source ${this.sources.name(job.source_id)} (created ${job.created_at})\n`;
    return (
      head +
      this.repo
        .logEntries(jobId)
        .map((e) => `${e.at} ${e.level.toUpperCase().padEnd(5)} ${e.code ? `[${e.code}] ` : ''}${e.message}\n`)
        .join('')
    );
  }

  points(jobId: number): JobPoint[] {
    this.#job(jobId);
    return this.repo.points(jobId).map((p) => {
      const stats = p.stats ? (JSON.parse(p.stats) as Omit<PointStats, 'bytesStored'>) : null;
      return {
        id: p.id,
        name: p.point_name,
        createdAt: p.finished_at,
        startedAt: p.started_at,
        sizeBytes: p.size_bytes,
        bytesChanged: stats?.bytesChanged ?? 0,
        bytesSent: stats?.bytesSent ?? 0,
        bytesStored: p.bytes_stored,
        seconds: stats?.seconds ?? 0,
        pinned: p.pinned === 1,
      };
    });
  }

  // ---- actions -------------------------------------------------------------------------------------------

  create(req: CreateJobRequest): JobActionResult {
    if (!this.sources.exists(req.sourceId)) throw new FerryError('SOURCE_NOT_FOUND', `source ${req.sourceId} does not exist`);
    const live = this.repo.liveForSource(req.sourceId);
    if (live) throw new FerryError('JOB_EXISTS', `source ${this.sources.name(req.sourceId)} already has job ${live.id} (${live.state})`);
    const throttle: Throttle = { ...DEFAULT_THROTTLE, ...req.throttle };
    const at = this.#now();
    // Paused from its first row, in one transaction: the scheduler never sees it Ready, so no cycle is sent.
    const state = req.startPaused ? 'Paused' : 'Ready';
    const id = this.repo.transaction(() => {
      const id = this.repo.create(req.sourceId, state, req.intervalSeconds, req.maxPoints, throttle, req.exclusions ?? [], req.hooks ?? { pre: null, post: null }, at);
      this.repo.recordCreation(id, state, at, req.startPaused ? 'job created paused: the full cycle runs first, once resumed' : 'job created: the full cycle runs first');
      return id;
    });
    const every = `every ${describeInterval(req.intervalSeconds)}, at most ${req.maxPoints} point(s)`;
    if (req.startPaused) {
      this.#log(id, 'info', `job created paused: ${every}; no cycle runs until it is resumed`);
      this.#changed(id);
      return this.#result(id, 'Created paused: no cycle runs until you resume the job; the full cycle runs first.');
    }
    this.#log(id, 'info', `job created: ${every}; the full cycle starts when the agent is connected`);
    this.#changed(id);
    this.#kick();
    return this.#result(id, this.agents.online(req.sourceId) ? 'The full cycle starts now.' : 'The full cycle starts as soon as the agent of this source connects.');
  }

  syncNow(jobId: number): JobActionResult {
    const job = this.#allow(jobId, 'sync-now');
    this.repo.update(jobId, { next_run_at: this.#now() });
    this.#log(jobId, 'info', 'cycle asked for now');
    this.#kick();
    return this.#result(jobId, this.agents.online(job.source_id) ? 'A cycle starts now.' : 'A cycle starts as soon as the agent connects.');
  }

  async pause(jobId: number): Promise<JobActionResult> {
    const job = this.#allow(jobId, 'pause');
    this.#move(job, 'Paused', 'paused by the user', { phase: null });
    await this.#stopAgent(job, 'pause');
    return this.#result(jobId, 'Paused. No cycle runs until the job is resumed; a cycle in progress keeps its acknowledged blocks and continues from them.');
  }

  resume(jobId: number): JobActionResult {
    const job = this.#allow(jobId, 'resume');
    const to = this.#resumeState(job);
    this.#move(job, to, 'resumed by the user');
    this.#kick();
    return this.#result(jobId, `Resumed: ${to}.`);
  }

  retry(jobId: number): JobActionResult {
    const job = this.#allow(jobId, 'retry');
    const to = this.#resumeState(job);
    this.#move(job, to, 'retry asked by the user', { error_code: null, error_message: null });
    this.#retryAt.delete(jobId);
    this.#kick();
    const running = this.repo.runningCycle(jobId);
    return this.#result(jobId, running ? `Retrying: cycle ${running.id} continues from its last acknowledged block.` : `Retrying: ${to}.`);
  }

  async complete(jobId: number, req: CompleteJobRequest): Promise<JobActionResult> {
    const job = this.#allow(jobId, 'complete');
    if (req.lastCycle) {
      this.#move(job, 'Completing', 'complete asked with one last cycle', { last_cycle: 1, last_cycle_armed: 0 });
      this.#kick();
      const busy = this.repo.runningCycle(jobId) !== undefined;
      return this.#result(
        jobId,
        busy
          ? 'Completing: the cycle in progress finishes, then one last cycle runs, then the job is Completed.'
          : 'Completing: one last cycle runs now, then the job is Completed. Stop the services on the source first so the last cycle holds their final data.',
      );
    }
    if (this.repo.pointCount(jobId) === 0) throw new FerryError('JOB_NO_POINT', `job ${jobId} has no point to keep`);
    await this.#stopAgent(job, 'complete');
    this.#abandonRunning(job, 'the job was completed without a last cycle');
    this.#move(job, 'Completed', 'completed by the user (no last cycle)', { phase: null, next_run_at: null, finished_at: this.#now() });
    return this.#result(jobId, 'Completed. No cycle runs again for this job; its points stay for restores.');
  }

  async cancel(jobId: number, req: CancelJobRequest): Promise<JobActionResult> {
    const job = this.#allow(jobId, 'cancel');
    const points = this.repo.points(jobId);
    const own = new Set(points.map((p) => p.id));
    const foreign = req.keepPoints.filter((id) => !own.has(id));
    if (foreign.length > 0) throw new FerryError('BAD_REQUEST', `keepPoints names point(s) ${foreign.join(', ')}, which are not points of job ${jobId}`);
    await this.#stopAgent(job, 'cancel');
    this.#abandonRunning(job, 'the job was cancelled');
    this.#move(job, 'Cancelled', `cancelled by the user${req.keepPoints.length ? `, keeping point(s) ${req.keepPoints.join(', ')}` : ''}`, {
      phase: null,
      next_run_at: null,
      finished_at: this.#now(),
    });
    const kept: string[] = [];
    for (const p of points) {
      if (req.keepPoints.includes(p.id)) continue;
      const use = this.keeper.inUse(p.id);
      if (use) {
        kept.push(`${p.point_name} (in use by a ${use})`);
        this.#log(jobId, 'warn', `kept ${p.point_name}: it is in use by a ${use}`, 'POINT_IN_USE');
        continue;
      }
      await this.keeper.deletePoint(p.id);
      this.#log(jobId, 'info', `deleted ${p.point_name} (job cancelled)`);
    }
    this.keeper.collectGarbage(`job ${jobId} cancelled`);
    return this.#result(jobId, `Cancelled.${kept.length ? ` Kept ${kept.join(', ')}.` : ''} Everything else the job created is being removed.`);
  }

  async settings(jobId: number, req: JobSettingsRequest): Promise<JobActionResult> {
    const job = this.#allow(jobId, 'settings');
    const said: string[] = [];
    const patch: JobPatch = {};
    if (req.intervalSeconds !== undefined) {
      if (req.intervalSeconds === job.interval_seconds) {
        Object.assign(patch, { pending_interval_seconds: null, pending_interval_armed: 0 });
        said.push(`The interval stays ${describeInterval(job.interval_seconds)}.`);
      } else {
        Object.assign(patch, { pending_interval_seconds: req.intervalSeconds, pending_interval_armed: 0 });
        said.push(
          `The interval changes from ${describeInterval(job.interval_seconds)} to ${describeInterval(req.intervalSeconds)} after the next cycle completes; ` +
            `the next cycle still runs ${job.next_run_at && job.state === 'Waiting' ? `at ${job.next_run_at}` : 'on the current schedule'}.`,
        );
      }
      this.#log(jobId, 'info', `interval change to ${describeInterval(req.intervalSeconds)} asked; it applies after the next cycle completes`);
    }
    if (req.maxPoints !== undefined) {
      patch.max_points = req.maxPoints;
      said.push(`At most ${req.maxPoints} point(s) are kept from now on.`);
      this.#log(jobId, 'info', `max points set to ${req.maxPoints}`);
    }
    let throttle: Throttle | null = null;
    if (req.throttle !== undefined) {
      throttle = { ...(JSON.parse(job.throttle) as Throttle), ...req.throttle };
      patch.throttle = JSON.stringify(throttle);
      said.push(`Throttle: ${throttle.networkMbps === 0 ? 'unlimited network' : `${throttle.networkMbps} Mbit/s`}, ${throttle.diskPercent} % disk time, ${throttle.queueDepth} reads in flight; applies at once.`);
      this.#log(jobId, 'info', `throttle set to ${JSON.stringify(throttle)}`);
    }
    if (req.exclusions !== undefined) {
      patch.exclusions = JSON.stringify(req.exclusions);
      said.push(
        req.exclusions.length === 0
          ? 'No paths are excluded from the next cycle on.'
          : `From the next cycle on, the blocks of files under ${req.exclusions.join(', ')} are not copied (they restore as zeros).`,
      );
      this.#log(jobId, 'info', `exclusions set to ${req.exclusions.length === 0 ? 'none' : req.exclusions.join(', ')}`);
    }
    if (req.hooks !== undefined) {
      Object.assign(patch, { pre_hook: req.hooks.pre, post_hook: req.hooks.post });
      said.push(`Final cycle commands: before ${req.hooks.pre ?? '(none)'}, after ${req.hooks.post ?? '(none)'}.`);
      this.#log(jobId, 'info', `final cycle commands set: before ${req.hooks.pre ?? '(none)'}, after ${req.hooks.post ?? '(none)'}`);
    }
    this.repo.update(jobId, patch);
    if (throttle && this.agents.online(job.source_id)) {
      const r = await this.agents.throttle(job.source_id, throttle).catch((err: unknown) => this.#failedReply(err));
      if (!r.ok) this.#log(jobId, 'warn', `the agent did not take the new throttle: ${r.message}; it gets it with the next cycle`, r.code);
    }
    if (req.maxPoints !== undefined) await this.#retention(this.#job(jobId));
    this.#changed(jobId);
    return this.#result(jobId, said.join(' '));
  }

  // ---- what agents and cycles report ---------------------------------------------------------------------

  /**
   * Called before a cycle starts for a source (whoever started it). Returns the job it belongs to, or null
   * for a source without a live job. A paused or completed job refuses new cycles.
   */
  beforeCycleStart(sourceId: number): number | null {
    this.#gate?.();
    const latest = this.repo.latestForSource(sourceId);
    if (!latest || latest.state === 'Cancelled') return null;
    if (latest.state === 'Paused') throw new FerryError('JOB_PAUSED', `job ${latest.id} of this source is paused`);
    if (latest.state === 'Completed') throw new FerryError('JOB_COMPLETED', `job ${latest.id} of this source was completed at ${latest.finished_at ?? '?'}`);
    return latest.id;
  }

  /** A cycle of the job started (or resumed). A new cycle arms a pending interval change and the last cycle. */
  cycleStarted(jobId: number, cycleId: number, resumed: boolean): void {
    const job = this.#job(jobId);
    this.repo.linkCycle(cycleId, jobId);
    this.#dispatched.add(jobId);
    const patch: JobPatch = {};
    if (!resumed && job.pending_interval_seconds !== null) patch.pending_interval_armed = 1;
    if (!resumed && job.last_cycle === 1) patch.last_cycle_armed = 1;
    this.#log(jobId, 'info', `${resumed ? 'resumed' : 'started'} cycle ${cycleId}`);
    if (job.state === 'Syncing' || job.state === 'Completing') {
      this.repo.update(jobId, patch);
      this.#changed(jobId);
    } else {
      this.#move(job, job.last_cycle ? 'Completing' : 'Syncing', `cycle ${cycleId} ${resumed ? 'resumed' : 'started'} by the agent`, {
        ...patch,
        phase: 'Comparing',
        error_code: null,
        error_message: null,
      });
    }
  }

  /** A cycle of the job became a point: schedule the next one (or complete), then apply retention. */
  async cycleCommitted(jobId: number, cycleId: number, pointName: string): Promise<void> {
    const job = this.#job(jobId);
    this.#dispatched.delete(jobId);
    this.#progress.clear(jobId);
    const now = this.clock.now();
    const patch: JobPatch = { last_completed_at: iso(now), phase: null };
    let interval = job.interval_seconds;
    if (job.pending_interval_armed === 1 && job.pending_interval_seconds !== null) {
      interval = job.pending_interval_seconds;
      Object.assign(patch, { interval_seconds: interval, pending_interval_seconds: null, pending_interval_armed: 0 });
      this.#log(jobId, 'info', `the interval is now ${describeInterval(interval)}`);
    }
    this.#log(jobId, 'info', `cycle ${cycleId} committed as ${pointName}`);
    if (job.state === 'Completing' && job.last_cycle_armed === 1) {
      this.#move(job, 'Completed', `last cycle committed as ${pointName}`, { ...patch, next_run_at: null, finished_at: iso(now) });
    } else if (job.state === 'Completing') {
      // The cycle that finished began before "complete" was asked: the last cycle still has to run.
      this.repo.update(jobId, patch);
      this.#changed(jobId);
      this.#kick();
    } else if (job.state === 'Syncing') {
      this.#move(job, 'Waiting', `${pointName} committed; next cycle in ${describeInterval(interval)}`, { ...patch, next_run_at: iso(now + interval * 1000) });
    } else {
      this.repo.update(jobId, patch);
      this.#changed(jobId);
    }
    await this.#retention(this.#job(jobId));
  }

  cycleProgress(sourceId: number, report: CycleProgressReport): void {
    const job = this.repo.liveForSource(sourceId);
    if (job?.id !== report.jobId || (job.state !== 'Syncing' && job.state !== 'Completing')) return;
    this.#dispatched.add(job.id);
    const progress = this.#progress.update(report, JSON.parse(job.throttle) as Throttle, this.#now());
    if (job.phase !== report.phase) {
      this.repo.update(job.id, { phase: report.phase });
      this.#changed(job.id);
    }
    this.events.jobProgress(progress);
  }

  cycleFailed(sourceId: number, report: CycleFailedReport): void {
    const job = this.repo.liveForSource(sourceId);
    if (job?.id !== report.jobId) return;
    this.#dispatched.delete(job.id);
    this.#progress.clear(job.id);
    // Held back before anything is written: the writes below fail too when the catalog's disk is full.
    if (report.code === 'APPLIANCE_DISK_FULL') this.#retryAt.set(job.id, this.clock.now() + DISK_FULL_RETRY_MS);
    if ((job.state === 'Syncing' || job.state === 'Completing') && TRANSIENT_CODES.has(report.code)) {
      this.#retryAt.set(job.id, this.clock.now() + TRANSIENT_RETRY_MS);
      this.#log(job.id, 'warn', `cycle ${report.cycleId ?? '(not started)'} interrupted: ${report.message}; it continues in ${TRANSIENT_RETRY_MS / 1000} s`, report.code);
      return;
    }
    const advice = JOB_ADVICE[report.code];
    const message = advice ? `${report.message}; ${advice}` : report.message;
    this.#log(job.id, 'error', `cycle ${report.cycleId ?? '(not started)'} failed: ${message}`, report.code);
    if (job.state === 'Syncing' || job.state === 'Completing') {
      this.#move(job, 'InError', `cycle failed: ${message}`, { phase: null, error_code: report.code, error_message: message }, report.code);
    }
  }

  cycleStopped(sourceId: number, report: CycleStoppedReport): void {
    const job = this.repo.liveForSource(sourceId);
    if (job?.id !== report.jobId) return;
    this.#dispatched.delete(job.id);
    this.#progress.clear(job.id);
    this.#log(job.id, 'info', `the agent stopped cycle ${report.cycleId ?? '(not started)'} (${report.reason})`);
  }

  /** A line the agent logged about its cycle (snapshot or live read, exclusions, hooks). */
  cycleLog(sourceId: number, report: CycleLogReport): void {
    // Also for a job that just ended: the post-hook of the last cycle runs after its commit.
    const job = this.repo.get(report.jobId);
    if (job?.source_id !== sourceId) return;
    this.#log(job.id, report.level, `agent: ${report.message}`);
  }

  agentConnected(sourceId: number, busyJobId: number | null): void {
    const job = this.repo.liveForSource(sourceId);
    if (!job) return;
    if (busyJobId === job.id) this.#dispatched.add(job.id);
    this.#log(job.id, 'info', 'the agent connected');
    if (job.state === 'Suspended') this.#move(job, this.#resumeState(job), 'the agent is reachable again');
    this.#kick();
  }

  agentDisconnected(sourceId: number): void {
    const job = this.repo.liveForSource(sourceId);
    if (!job) return;
    this.#dispatched.delete(job.id);
    this.#log(job.id, 'warn', `the agent disconnected; the job is suspended if it stays away for ${describeInterval(this.opts.suspendAfterMs / 1000)}`);
    this.#changed(job.id);
  }

  // ---- the scheduler -------------------------------------------------------------------------------------

  /** Starts due cycles and suspends jobs whose agent stayed away too long. Runs once at a time. */
  tick(): Promise<void> {
    this.#ticking ??= this.#tick().finally(() => {
      this.#ticking = null;
    });
    return this.#ticking;
  }

  async #tick(): Promise<void> {
    for (const job of this.repo.live()) {
      // One job's trouble must not keep the others from running.
      await this.#tickJob(job).catch((err: unknown) => this.log.error({ err, job: job.id }, 'scheduling the job failed'));
    }
  }

  async #tickJob(job: JobRow): Promise<void> {
    const now = this.clock.now();
    if (!LIVE_SYNC.includes(job.state)) return;
    if (!this.agents.online(job.source_id)) {
      const since = this.agents.offlineSince(job.source_id);
      if (now - since > this.opts.suspendAfterMs) {
        this.#dispatched.delete(job.id);
        this.#progress.clear(job.id);
        this.#move(job, 'Suspended', `the agent has been unreachable since ${iso(since)} (more than ${describeInterval(this.opts.suspendAfterMs / 1000)})`, { phase: null });
      }
      return;
    }
    if (this.#dispatched.has(job.id) || (this.#retryAt.get(job.id) ?? 0) > now) return;
    this.#retryAt.delete(job.id);
    const due =
      job.state === 'Ready' ||
      job.state === 'Syncing' ||
      job.state === 'Completing' ||
      (job.state === 'Waiting' && job.next_run_at !== null && Date.parse(job.next_run_at) <= now);
    if (due) await this.#dispatch(job);
  }

  async #dispatch(job: JobRow): Promise<void> {
    const reason =
      job.state === 'Ready' ? 'first (full) cycle' : job.state === 'Completing' ? 'last cycle' : job.state === 'Syncing' ? 'continuing the cycle in progress' : 'scheduled';
    this.#dispatched.add(job.id);
    const r = await this.agents
      .run(job.source_id, {
        jobId: job.id,
        reason,
        throttle: JSON.parse(job.throttle) as Throttle,
        exclusions: JSON.parse(job.exclusions) as string[],
        // The hooks (stop services, then start them again) belong to the final cycle only.
        ...(job.state === 'Completing' && (job.pre_hook !== null || job.post_hook !== null) ? { hooks: { pre: job.pre_hook, post: job.post_hook } } : {}),
      })
      .catch((err: unknown) => this.#failedReply(err));
    if (!r.ok) {
      this.#dispatched.delete(job.id);
      this.#log(job.id, 'warn', `could not start the cycle on the agent: ${r.message}; trying again shortly`, r.code);
      return;
    }
    const current = this.#job(job.id);
    if (current.state === 'Ready' || current.state === 'Waiting') this.#move(current, 'Syncing', `cycle started (${reason})`, { phase: 'Comparing' });
  }

  // ---- internals -----------------------------------------------------------------------------------------

  async #retention(job: JobRow): Promise<void> {
    const points = this.repo.points(job.id);
    let excess = points.length - job.max_points;
    if (excess <= 0) return;
    let deleted = 0;
    // Oldest first; never the newest point, never one a restore or a running cycle uses.
    for (const p of points.slice(0, -1)) {
      if (excess === 0) break;
      const use = p.pinned ? 'restore' : this.keeper.inUse(p.id);
      if (use) {
        this.#log(job.id, 'info', `kept ${p.point_name} beyond the limit of ${job.max_points}: it is in use by a ${use}`);
        continue;
      }
      await this.keeper.deletePoint(p.id);
      this.#log(job.id, 'info', `deleted ${p.point_name} (at most ${job.max_points} point(s) are kept)`);
      excess--;
      deleted++;
    }
    if (deleted > 0) {
      this.keeper.collectGarbage(`retention of job ${job.id}`);
      this.#changed(job.id);
    }
  }

  #resumeState(job: JobRow): JobState {
    if (job.last_cycle === 1) return 'Completing';
    if (this.repo.runningCycle(job.id)) return 'Syncing';
    return this.repo.pointCount(job.id) === 0 ? 'Ready' : 'Waiting';
  }

  async #stopAgent(job: JobRow, reason: StopCycleCommand['reason']): Promise<void> {
    this.#dispatched.delete(job.id);
    this.#progress.clear(job.id);
    if (!this.agents.online(job.source_id)) return;
    const r = await this.agents.stop(job.source_id, { jobId: job.id, reason }).catch((err: unknown) => this.#failedReply(err));
    if (!r.ok) this.#log(job.id, 'warn', `the agent did not confirm the stop: ${r.message}`, r.code);
  }

  #abandonRunning(job: JobRow, why: string): void {
    const running = this.repo.runningCycle(job.id);
    if (!running) return;
    this.keeper.abandonCycle(running.id);
    this.#log(job.id, 'info', `abandoned cycle ${running.id}: ${why}`);
  }

  #failedReply(err: unknown): Reply<never> {
    if (err instanceof FerryError) return { ok: false, code: err.code, message: err.message };
    return { ok: false, code: 'APPLIANCE_UNREACHABLE', message: `the agent did not answer: ${(err as Error).message}` };
  }

  #allow(jobId: number, action: JobAction): JobRow {
    const job = this.#job(jobId);
    if (action === 'resume' || action === 'sync-now' || action === 'retry') this.#gate?.();
    const states = ACTION_STATES[action];
    if (!states.includes(job.state)) {
      throw new FerryError('JOB_ACTION_INVALID', `cannot ${action} job ${jobId}: it is ${job.state}; ${action} applies to ${states.join(', ')}`);
    }
    return job;
  }

  #move(job: JobRow, to: JobState, cause: string, patch: JobPatch = {}, code: string | null = null): void {
    this.repo.transition(job.id, job.state, to, cause, this.#now(), patch, code);
    if (job.state !== to) this.#log(job.id, code ? 'error' : 'info', `${job.state} → ${to}: ${cause}`, code);
    job.state = to;
    this.#changed(job.id);
  }

  #log(jobId: number, level: JobLogEntry['level'], message: string, code: string | null = null): void {
    const entry = this.repo.log(jobId, this.#now(), level, message, code);
    this.log[level]({ job: jobId, code }, message);
    this.events.jobLog(entry);
  }

  #changed(jobId: number): void {
    this.events.jobUpdated(this.#view(this.#job(jobId)));
  }

  /** Runs the scheduler soon, outside the current action, so an action never waits on an agent round trip. */
  #kick(): void {
    setImmediate(() => {
      this.tick().catch((err: unknown) => this.log.error({ err }, 'scheduler tick failed'));
    });
  }

  #result(jobId: number, message: string): JobActionResult {
    return { job: this.get(jobId), message };
  }

  #now(): string {
    return iso(this.clock.now());
  }

  #job(jobId: number): JobRow {
    const job = this.repo.get(jobId);
    if (!job) throw new FerryError('JOB_NOT_FOUND', `job ${jobId} does not exist`);
    return job;
  }

  #view(j: JobRow): JobView {
    const source = this.sources.get(j.source_id);
    return {
      id: j.id,
      sourceId: j.source_id,
      sourceName: source?.name ?? `source ${j.source_id}`,
      state: j.state,
      phase: j.phase,
      intervalSeconds: j.interval_seconds,
      pendingIntervalSeconds: j.pending_interval_seconds,
      maxPoints: j.max_points,
      throttle: JSON.parse(j.throttle) as Throttle,
      exclusions: JSON.parse(j.exclusions) as string[],
      hooks: { pre: j.pre_hook, post: j.post_hook },
      lastCycle: j.last_cycle === 1,
      nextRunAt: j.next_run_at,
      lastCompletedAt: j.last_completed_at,
      createdAt: j.created_at,
      finishedAt: j.finished_at,
      error: j.error_code ? { code: j.error_code, message: j.error_message ?? '' } : null,
      agentOnline: this.agents.online(j.source_id),
      lastSeen: source?.last_seen ?? null,
      pointCount: this.repo.pointCount(j.id),
      progress: this.#progress.get(j.id),
      allowedActions: actionsFor(j.state),
      revision: nextRevision(),
    };
  }
}
