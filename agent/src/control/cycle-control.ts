import {
  FerryError,
  formatBytes,
  RunCycleCommandSchema,
  StopCycleCommandSchema,
  ThrottleSchema,
  type CycleFailedReport,
  type CycleProgressReport,
  type CycleStoppedReport,
  type CycleLogReport,
  type Hooks,
  type RunCycleCommand,
  type StopCycleCommand,
  type Throttle,
} from '@ferry/protocol';
import type { CycleProgress, CycleResult } from '../backup/cycle.js';
import type { LiveThrottle } from '../backup/throttle.js';
import type { Log } from './log.js';


/** What one cycle of a job needs; the daemon's runner opens the disks and calls runCycle. */
export interface CycleRequest {
  jobId: number;
  throttle: LiveThrottle;
  signal: AbortSignal;
  onProgress: (p: CycleProgress) => void;
  /** From the job's settings: paths whose files' blocks are not read or sent. */
  exclusions?: string[] | undefined;
  /** Set for the final cycle only: commands to run before reading and after the cycle. */
  hooks?: Hooks | undefined;
  /** The cycle's log (snapshots, exclusions, hooks). */
  log?: Log | undefined;
}

export type CycleRunner = (req: CycleRequest) => Promise<CycleResult>;

/** Where the outcome of cycles goes: the control channel in the daemon, a list in tests. */
export interface CycleReports {
  progress(report: CycleProgressReport): void;
  failed(report: CycleFailedReport): void;
  stopped(report: CycleStoppedReport): void;
  /** A line for the job log on the appliance (how disks are read, exclusions, hooks). */
  log(report: CycleLogReport): void;
}

/** How long 'cycle.run' waits for a cycle that is stopping to end before it refuses (the appliance's ack timeout is longer). */
export const STOPPING_WAIT_MS = 10_000;

const SHUTDOWN = 'the agent is shutting down';
// The appliance checks reports against its schema, which caps messages.
const MAX_MESSAGE = 4000;

interface Running {
  jobId: number;
  controller: AbortController;
  cycleId: number | null;
  /** Set when the appliance asked for the stop; null while running or when the agent itself shuts down. */
  stopReason: StopCycleCommand['reason'] | null;
  command: RunCycleCommand;
  shuttingDown: boolean;
  done: Promise<void>;
}

export function describeThrottle(t: Throttle): string {
  return `network ${t.networkMbps === 0 ? 'unlimited' : `${t.networkMbps} Mbit/s`}, disk ${t.diskPercent} % of its time, queue depth ${t.queueDepth}`;
}

/**
 * The agent's side of the control channel: at most one cycle at a time, started, stopped and throttled by the
 * appliance. Handlers return the reply data or throw FerryError; the caller turns that into the one reply shape.
 */
export class CycleControl {
  readonly #runner: CycleRunner;
  readonly #reports: CycleReports;
  readonly #throttle: LiveThrottle;
  readonly #log: Log;
  #running: Running | null = null;

  constructor(runner: CycleRunner, reports: CycleReports, throttle: LiveThrottle, log: Log) {
    this.#runner = runner;
    this.#reports = reports;
    this.#throttle = throttle;
    this.#log = log;
  }

  /** The job whose cycle runs now; 'agent.hello' tells the appliance after a reconnect. */
  get busyJobId(): number | null {
    return this.#running?.jobId ?? null;
  }

  /** 'cycle.run': starts the job's cycle; a second request for the same job while it runs changes nothing. */
  async run(input: unknown): Promise<{ started: boolean }> {
    const cmd = RunCycleCommandSchema.parse(input);
    const busy = this.#running;
    if (busy && (busy.stopReason !== null || busy.shuttingDown)) {
      // Pause then resume in quick succession: let the old cycle end, then start afresh.
      const ended = await Promise.race([busy.done.then(() => true), new Promise<false>((r) => setTimeout(r, STOPPING_WAIT_MS, false).unref())]);
      if (!ended) throw new FerryError('BAD_REQUEST', `the cycle of job ${busy.jobId} is still stopping; send cycle.run again in a moment`);
      return this.run(input);
    }
    if (busy?.jobId === cmd.jobId) return { started: false };
    if (busy) {
      throw new FerryError('BAD_REQUEST', `this agent is running a cycle of job ${busy.jobId}; stop it before starting one of job ${cmd.jobId}`);
    }
    this.#throttle.set(cmd.throttle);
    const running: Running = { jobId: cmd.jobId, command: cmd, controller: new AbortController(), cycleId: null, stopReason: null, shuttingDown: false, done: Promise.resolve() };
    this.#running = running;
    this.#log(`job ${cmd.jobId}: starting a cycle (${cmd.reason}); throttle: ${describeThrottle(cmd.throttle)}`);
    running.done = this.#drive(running);
    return { started: true };
  }

  /** 'cycle.stop': asks the job's running cycle to stop; 'cycle.stopped' follows once it has. */
  stop(input: unknown): { stopped: boolean } {
    const cmd = StopCycleCommandSchema.parse(input);
    const running = this.#running;
    if (running?.jobId !== cmd.jobId) return { stopped: false };
    if (running.stopReason === null) {
      running.stopReason = cmd.reason;
      this.#log(`job ${cmd.jobId}: stopping the cycle (${cmd.reason})`);
      running.controller.abort(cmd.reason);
    }
    return { stopped: true };
  }

  /** 'throttle.set': applies to the running cycle at once and to later ones until the next 'cycle.run'. */
  setThrottle(input: unknown): { applied: boolean } {
    const throttle = ThrottleSchema.parse(input);
    this.#throttle.set(throttle);
    this.#log(`throttle now: ${describeThrottle(throttle)}`);
    return { applied: true };
  }

  /** Stops the running cycle, if any, and waits for it to end. The appliance keeps its acknowledged blocks. */
  async shutdown(): Promise<void> {
    const running = this.#running;
    if (!running) return;
    running.shuttingDown = true;
    running.controller.abort(SHUTDOWN);
    await running.done;
  }

  /** Runs one cycle to its end and reports how it ended; never rejects. */
  async #drive(r: Running): Promise<void> {
    const { jobId } = r;
    try {
      const result = await this.#runner({
        jobId,
        throttle: this.#throttle,
        signal: r.controller.signal,
        exclusions: r.command.exclusions,
        hooks: r.command.hooks,
        log: (line) => {
          this.#log(`job ${jobId}: ${line}`);
          this.#reports.log({ jobId, level: 'info', message: line.slice(0, 4000) });
        },
        onProgress: (p) => {
          r.cycleId = p.cycleId;
          this.#reports.progress({ jobId, ...p });
        },
      });
      this.#log(
        `job ${jobId}: ${result.point.name} committed (point ${result.point.id}, cycle ${r.cycleId ?? '?'}): read ${formatBytes(result.bytesRead)}, ` +
          `changed ${formatBytes(result.bytesChanged)}, sent ${formatBytes(result.bytesSent)} in ${result.seconds.toFixed(1)} s`,
      );
    } catch (err) {
      this.#ended(r, err);
    } finally {
      if (this.#running === r) this.#running = null;
    }
  }

  #ended(r: Running, err: unknown): void {
    const { jobId, cycleId } = r;
    const cycle = `cycle ${cycleId ?? '(not started)'}`;
    if (r.shuttingDown) {
      // No report: the reasons of 'cycle.stopped' are the appliance's; it sees the link drop and resumes the cycle later.
      this.#log(`job ${jobId}: ${cycle} stopped because ${SHUTDOWN}; acknowledged blocks stay on the appliance`);
      return;
    }
    if (r.stopReason !== null) {
      // Whatever the stop broke off (an upload mid-stream) ends as a stop, not as a failure of the job.
      this.#log(`job ${jobId}: ${cycle} stopped (${r.stopReason}); acknowledged blocks stay on the appliance`);
      this.#reports.stopped({ jobId, cycleId, reason: r.stopReason });
      return;
    }
    const code = err instanceof FerryError ? err.code : 'INTERNAL';
    const message = err instanceof Error ? err.message : String(err);
    const detail = err instanceof FerryError ? `what to do: ${err.hint}` : `this is a bug; please report it:\n${err instanceof Error ? (err.stack ?? message) : message}`;
    this.#log(`job ${jobId}: ${cycle} failed: ${message} (error ${code}); ${detail}`);
    this.#reports.failed({ jobId, cycleId, code, message: message.slice(0, MAX_MESSAGE) });
  }
}
