import type { CycleProgressReport, JobProgress, Throttle } from '@ferry/protocol';

/** How far back the rate looks: long enough to smooth batch bursts, short enough to follow a throttle change. */
const RATE_WINDOW_MS = 15_000;

interface Sample {
  at: number;
  bytes: number;
}

/**
 * Live progress of running cycles, kept in memory only (a restart loses the rate, not data). The rate uses real
 * elapsed time, not the scheduler's clock, so it stays right when tests move that clock by hand.
 */
export class ProgressTracker {
  readonly #progress = new Map<number, JobProgress>();
  readonly #samples = new Map<number, Sample[]>();

  constructor(private readonly elapsed: () => number = () => performance.now()) {}

  update(report: CycleProgressReport, throttle: Throttle, at: string): JobProgress {
    const t = this.elapsed();
    const prior = this.#progress.get(report.jobId);
    let samples = this.#samples.get(report.jobId) ?? [];
    // A new cycle, or a resumed one that counts again from zero, starts a new rate window.
    if (!prior || prior.cycleId !== report.cycleId || report.bytesDone < prior.bytesDone) samples = [];
    samples.push({ at: t, bytes: report.bytesDone });
    while (samples.length > 2 && t - samples[0]!.at > RATE_WINDOW_MS) samples.shift();
    this.#samples.set(report.jobId, samples);
    const first = samples[0]!;
    const seconds = (t - first.at) / 1000;
    const rate = seconds >= 1 ? (report.bytesDone - first.bytes) / seconds : null;
    const left = Math.max(0, report.bytesTotal - report.bytesDone);
    const progress: JobProgress = {
      jobId: report.jobId,
      cycleId: report.cycleId,
      phase: report.phase,
      bytesDone: report.bytesDone,
      bytesTotal: report.bytesTotal,
      bytesChanged: report.bytesChanged,
      bytesSent: report.bytesSent,
      rate,
      // Everything read while changed blocks still upload (a slow link): the time left is the upload's, which the
      // read rate cannot tell, so no ETA rather than a wrong "0 s" until the cycle commits.
      etaSeconds: left === 0 ? (report.phase === 'Transferring' ? null : 0) : rate && rate > 0 ? Math.round(left / rate) : null,
      resumed: report.resumed,
      throttle,
      disks: report.disks.map((d) => ({ ...d })),
      updatedAt: at,
    };
    this.#progress.set(report.jobId, progress);
    return progress;
  }

  get(jobId: number): JobProgress | null {
    return this.#progress.get(jobId) ?? null;
  }

  clear(jobId: number): void {
    this.#progress.delete(jobId);
    this.#samples.delete(jobId);
  }
}
